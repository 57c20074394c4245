"""One self-contained HTML report over one or several run directories.

Figures are embedded as base64 PNG and the styles inline, so the file opens in any browser
from disk, with no server and nothing to fetch. The page is rendered with Jinja2, autoescape
on: every string from a run directory (descriptions, names) is escaped; only the tables that
pandas has already escaped are marked safe.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from matplotlib.figure import Figure

from analysis import figures
from analysis.actions import FaultEvent
from analysis.catchment import catchment_table
from analysis.metrics import (
    aggregate_table,
    client_table,
    event_table,
    flow_table,
    instrument_table,
    run_labels,
)
from analysis.run import Run, load_runs
from analysis.style import figure_bytes
from analysis.tables import (
    HIDDEN,
    compact_client_table,
    compact_event_table,
    families_side_by_side,
    meta_rows,
    steps_table,
    text_table_html,
    timers_table,
    to_html,
)
from lab.plan.model import service_label

REPORT_DPI = 130  # crisp on high-density screens, shown at most 1000 px wide


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


@dataclass(frozen=True)
class ReportFigure:
    title: str
    caption: str
    src: str  # data: URI
    kind: str = "figure"

    @property
    def anchor(self) -> str:
        return _slug(self.title)


@dataclass(frozen=True)
class ReportTable:
    title: str
    caption: str
    html: Markup
    collapsed: bool = False
    kind: str = "table"

    @property
    def anchor(self) -> str:
        return _slug(self.title)


@dataclass(frozen=True)
class ReportRow:
    """Small tables side by side."""

    tables: list[ReportTable]
    kind: str = "row"


Block = ReportFigure | ReportTable | ReportRow


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def contents(self) -> list[ReportFigure | ReportTable]:
        """The blocks worth a link in the navigation (not the collapsed ones)."""
        return [b for b in self.blocks if isinstance(b, ReportFigure)
                or (isinstance(b, ReportTable) and not b.collapsed)]


def _png(fig: Figure) -> str:
    data = base64.b64encode(figure_bytes(fig, "png", REPORT_DPI)).decode("ascii")
    return f"data:image/png;base64,{data}"


def _figure(title: str, caption: str, draw: Callable[[], Figure]) -> ReportFigure:
    return ReportFigure(title, caption, _png(draw()))


def _table(title: str, caption: str, frame: pd.DataFrame, collapsed: bool = False,
           share_columns: tuple[str, ...] = (), hide: tuple[str, ...] = HIDDEN) -> ReportTable:
    html = to_html(frame, share_columns=share_columns, hide=hide)
    return ReportTable(title, caption, Markup(html), collapsed)


def _text_table(title: str, caption: str, frame: pd.DataFrame,
                collapsed: bool = False) -> ReportTable:
    return ReportTable(title, caption, Markup(text_table_html(frame)), collapsed)


def _warnings(run: Run) -> list[str]:
    out = []
    if not run.complete:
        out.append("This run is incomplete" + (" (interrupted)" if run.interrupted else "")
                   + ": figures cover what was recorded.")
    if run.missing_files:
        out.append(f"Missing files: {', '.join(run.missing_files)}.")
    if len(run.trials) > 1:
        out.append(f"{len(run.trials)} trials: the figures show trial {run.trials[0]}; the "
                   "tables cover every trial.")
    for trial in run.summary.get("trials", []):
        if trial.get("valid") is False:
            out.append(f"Trial {trial.get('trial')} is not valid: "
                       + "; ".join(trial.get("warnings") or ["see events.jsonl"]) + ".")
    return out


def _run_tables(run: Run) -> list[Block]:
    blocks: list[Block] = [
        ReportRow([_table("Scenario steps", "As written in the scenario file.",
                          steps_table(run)),
                   _table("Timers", "BGP and BFD, per site (wan: transit sessions).",
                          timers_table(run))]),
        _text_table("Events", "Detection: the first BFD or BGP session down after the "
                    "action. FIB changes: first to last change of a service prefix, in any "
                    "router. Times from the action.", compact_event_table(event_table(run))),
        _text_table("Clients after each fault", "Per client and service: flows (source "
                    "ports) that lost probes; the worst flow's lost probes, loss windows (runs of "
                    "consecutive losses) and outage (its longest loss window), the rate-"
                    "derived figure (fault to the first answer after the last loss) and the "
                    "loss-derived one (lost x interval); answering "
                    "site and median RTT in the second before the fault and the last second "
                    f"of its window; flip: first answer from another site. Resolution "
                    f"{run.interval_ms:g} ms.",
                    compact_client_table(client_table(run, phases=("fault",))))]
    if len(run.families) > 1:
        blocks.append(_text_table(
            "IPv4 and IPv6 side by side", "Per client and dual-stack service, the same "
            "figures for each family: the outage of the worst flow, where the client lands "
            "(before \u2192 after the fault) and the median RTT. The two families have their "
            "own sessions and routes, so they may land and converge differently.",
            families_side_by_side(client_table(run, phases=("fault",)))))
    instrument = instrument_table(run)
    if not instrument.empty:
        blocks.append(_table(
            "Instrument", "How well the lab's own parts kept time in each trial: CPU busy, "
            "steal and pressure (share of time a runnable task waited) of the machine and "
            "packets its kernel dropped from a full receive backlog; frames "
            "the link emulator forwarded, sent more than 0.5, 2 and 10 ms late, and lost "
            "because it fell behind (overruns); probe ticks, ticks sent more than 0.5 ms "
            "late, slots skipped and the longest stall of the probers; UDP datagrams dropped "
            "for lack of socket buffer in the clients and pods; BGP and BFD sessions that "
            "went down before the fault (none should); the RTT error before the "
            "first fault (measured median minus the configured round trip, over every "
            "client's paths: median and largest). A trial beyond the limits of "
            "docs/run-format.md is marked invalid.", instrument,
            share_columns=("cpu_busy", "cpu_steal", "cpu_pressure")))
    if len(run.trials) > 1:
        blocks.append(_table("Outage over trials", "Outage (longest loss window, ms) per "
                             "client: median, 95th percentile and interquartile range over "
                             "trials.",
                             aggregate_table(run), hide=("run",)))
    return blocks


def _run_details(run: Run) -> list[Block]:
    trial = run.trials[0] if run.trials else 0
    first = next((a for a in run.fault_events if a.trial == trial), None)
    flows = flow_table(run, first) if first is not None else pd.DataFrame()
    return [
        _text_table("Clients after each undo (reversion)", "The same figures, measured from "
                    "the undo.", compact_client_table(client_table(run, phases=("undo",))),
                    collapsed=True),
        _table("Flows in the first fault", "Every flow of every client: which node answered "
               "before and after shows the ECMP rehash.", flows, collapsed=True,
               hide=("last_lost_ns", "recovered_ns")),
        _table("Catchment", "Share of probes answered by each site, or lost, per phase.",
               catchment_table(run, trial), collapsed=True, share_columns=(*run.sites, "lost")),
        _table("FIB changes", "Every change of a service prefix in trial "
               f"{trial}, from the trial start.", figures.changes_table(run, trial),
               collapsed=True)]


def _run_figures(run: Run) -> list[Block]:
    trial = run.trials[0] if run.trials else 0
    first = next((a for a in run.fault_events if a.trial == trial), None)
    return [
        _figure("Timeline", "Each row is one flow (source port) of a client; colour is the "
                "site that answered, black a lost probe (grey: some of the probes a pixel "
                "covers were lost). Red lines: faults (solid) and undos (dashed); ticks above: "
                "FIB changes of the service prefixes.",
                lambda: figures.timeline(run, trial=trial)),
        _figure("Around each action", "The same, 3 s around each fault and undo.",
                lambda: figures.timeline_zooms(run, trial=trial)),
        _figure("Round-trip time", "Median RTT per time bucket, coloured by the answering "
                "site; black ticks mark buckets with lost probes, as tall as the share lost.",
                lambda: figures.rtt_timeline(run, trial=trial)),
        *(_rtt_cdf_figure(run, first, family) for family in run.families),
        _figure("Catchment", "Share of probes answered by each site, per phase.",
                lambda: figures.catchment(run, trial=trial)),
        _figure("Control plane", "Next hops of each service prefix in the routers whose FIB "
                "changed.", lambda: figures.control_plane(run, trial=trial))]


def _rtt_cdf_figure(run: Run, first: FaultEvent | None, family: str) -> ReportFigure:
    return _figure(service_label("RTT before and after", family),
                   "RTT distribution in the second before the first fault and in the last "
                   "second of its window.", lambda: figures.rtt_cdf(run, first, family=family))


def run_section(run: Run, anchor: str) -> Section:
    return Section(anchor=anchor, title=run.label, description=run.description,
                   warnings=_warnings(run), facts=meta_rows(run),
                   blocks=[*_run_tables(run), *_run_figures(run), *_run_details(run)])


def comparison_section(runs: Sequence[Run]) -> Section:
    labels = run_labels(runs)
    overview = pd.DataFrame([{"label": label, "run": r.run_id, "scenario": r.scenario,
                              "trials": len(r.trials), "complete": r.complete,
                              "interval_ms": r.interval_ms}
                             for label, r in zip(labels, runs, strict=True)])
    blocks: list[Block] = [
        _table("Runs", "The runs compared.", overview),
        _figure("Outage per client", "Outage (longest loss window) after each fault, every trial a "
                "point; boxes (quartiles, 5th-95th percentile whiskers) from 3 trials on.",
                lambda: figures.compare_outages(runs, labels=labels)),
        _table("Outage over trials", "Outage (longest loss window, ms) per run and client.",
               aggregate_table(runs, labels=labels))]
    return Section(anchor="comparison", title=f"Comparison of {len(runs)} runs",
                   blocks=blocks)


def _analysis_version() -> str:
    try:
        return version("anycast-lab")
    except PackageNotFoundError:
        return "unknown"


def render_report(runs: Sequence[Run], *, title: str | None = None) -> str:
    """The report's HTML text."""
    if not runs:
        raise ValueError("a report needs at least one run")
    sections = [comparison_section(runs)] if len(runs) > 1 else []
    sections += [run_section(run, f"run-{i}") for i, run in enumerate(runs)]
    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    template = env.get_template("report.html.j2")
    heading = title or (f"anycast-lab: {runs[0].label}" if len(runs) == 1
                        else f"anycast-lab: {len(runs)} runs compared")
    return template.render(title=heading, sections=sections, single=len(runs) == 1,
                           generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                           version=_analysis_version())


def write_report(run_dirs: Sequence[str | Path], out: str | Path, *,
                 title: str | None = None, require_complete: bool = False) -> Path:
    """Load the run directories and write one self-contained HTML file to ``out``
    (directories created as needed). Raises :class:`analysis.RunError` for unreadable runs."""
    runs = load_runs(run_dirs, require_complete=require_complete)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(runs, title=title), encoding="utf-8")
    return path


__all__ = ["render_report", "write_report"]
