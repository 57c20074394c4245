"""Tables for people: readable column names, units, sensible precision, and HTML.

The table builders live in :mod:`analysis.metrics` and :mod:`analysis.catchment` and return
plain DataFrames (for code); ``format_table`` turns one into strings for display and
``to_html`` into an escaped HTML ``<table>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis.run import Run
from lab.plan.model import service_label

MISSING = "\u2014"  # em dash
HIDDEN = ("flip_ns", "t_ns", "recovered_ns", "last_lost_ns", "resolution_ms")
LABELS = {
    "outage_ms": "outage (ms)", "loss_derived_ms": "loss-derived (ms)",
    "rate_derived_ms": "rate-derived (ms)", "loss_windows": "loss windows",
    "loss_ratio": "loss ratio",
    "rtt_before_ms": "RTT before (ms)", "rtt_after_ms": "RTT after (ms)",
    "flip_ms": "flip (ms)", "tcp_broken": "TCP broken", "flows_hit": "flows hit",
    "lost_total": "lost (all flows)", "site_before": "site before", "site_after": "site after",
    "detection_ms": "detection (ms)", "detection_source": "detected by",
    "first_fib_ms": "first FIB change (ms)", "last_fib_ms": "last FIB change (ms)",
    "routers_changed": "routers changed", "clients_hit": "client/services hit",
    "worst_outage_ms": "worst outage (ms)", "t_s": "t (s)", "window_s": "window (s)",
    "start_s": "from (s)", "end_s": "to (s)", "n_nexthops": "next hops",
    "cpu_busy": "CPU busy", "cpu_steal": "CPU steal", "cpu_pressure": "CPU pressure",
    "frames": "emulated frames", "late_500us": "late > 0.5 ms", "late_2ms": "late > 2 ms",
    "late_10ms": "late > 10 ms", "late_ticks": "ticks late > 0.5 ms",
    "skipped_slots": "slots skipped", "client_drops": "client buffer drops",
    "pod_drops": "pod buffer drops", "backlog_drops": "backlog drops",
    "early_flaps": "sessions down before the fault",
    "delay_error_ms": "RTT error, median (ms)", "delay_max_error_ms": "RTT error, max (ms)",
}


def column_label(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    if name.endswith("_ms"):
        return f"{name[:-3].replace('_', ' ')} (ms)"
    if name.endswith("_s"):
        return f"{name[:-2].replace('_', ' ')} (s)"
    return name.replace("_", " ")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_value(name: str, value: Any, share: bool = False) -> str:
    """One cell as text: ms to 0.1, s to 0.01, shares as %, missing as an em dash."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if share:
            return f"{value:.1%}" if 0 < value < 0.1 else f"{value:.0%}"
        if name.endswith("_s"):
            return f"{value:.2f}"
        if name.endswith("_ms") or name in ("median", "p95", "iqr", "min", "max"):
            return f"{value:.1f}"
        return f"{value:.0f}" if value.is_integer() else f"{value:g}"  # counts in full
    return str(value)


def format_table(frame: pd.DataFrame, *, share_columns: tuple[str, ...] = (),
                 hide: tuple[str, ...] = HIDDEN) -> pd.DataFrame:
    """A copy with every cell as display text (ms to 0.1, s to 0.01, shares as %, missing
    as an em dash), internal columns dropped and headers made readable."""
    shown = frame.drop(columns=[c for c in hide if c in frame.columns])
    out = pd.DataFrame(index=shown.index)
    for name in shown.columns:
        share = str(name) in share_columns
        out[column_label(str(name))] = [format_value(str(name), v, share)
                                        for v in shown[name].tolist()]
    return out.reset_index(drop=True)


def to_html(frame: pd.DataFrame, *, share_columns: tuple[str, ...] = (),
            hide: tuple[str, ...] = HIDDEN, classes: str = "table") -> str:
    """An HTML table (cells escaped) of :func:`format_table`'s text."""
    if frame.empty:
        return '<p class="empty">no rows</p>'
    shown = format_table(frame, share_columns=share_columns, hide=hide)
    return shown.to_html(index=False, escape=True, classes=classes, border=0)


def meta_rows(run: Run) -> list[tuple[str, str]]:
    """The facts of a run for a two-column table: identity, scenario, probing, host."""
    meta = run.meta
    probe: Mapping[str, Any] = meta.get("probe") or {}
    host: Mapping[str, Any] = meta.get("host") or {}
    scenario: Mapping[str, Any] = meta.get("scenario") or {}
    topology: Mapping[str, Any] = meta.get("topology") or {}
    rows = [("run", run.run_id), ("lab", str(meta.get("lab", ""))),
            ("topology", f"{topology.get('name', '')} ({topology.get('file', '')})"),
            ("scenario", f"{scenario.get('name', '')} ({scenario.get('file', '')})"),
            ("started", str(meta.get("started_wall", ""))),
            ("complete", "yes" if run.complete else
             "NO" + (" (interrupted)" if run.interrupted else "")),
            ("trials", str(meta.get("trials", len(run.trials)))),
            ("probes", f"every {run.interval_ms:g} ms, {probe.get('flows', '?')} UDP flow(s) "
                       f"per client and service, {probe.get('tcp_flows', 0)} TCP flow(s)"),
            ("clients", ", ".join(map(str, probe.get("clients", run.clients)))),
            ("services", ", ".join(map(str, probe.get("services", run.services)))),
            ("host", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in host.items()))]
    versions = meta.get("versions") or {}
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return rows


def timers_table(run: Run) -> pd.DataFrame:
    """BGP and BFD timers per site (or ``wan``), one row each."""
    rows = []
    for scope, timers in sorted((run.meta.get("timers") or {}).items()):
        if not isinstance(timers, Mapping):
            continue
        bfd = timers.get("bfd")
        rows.append({"scope": scope, "keepalive_s": timers.get("keepalive_s"),
                     "hold_s": timers.get("hold_s"),
                     "connect_retry_s": timers.get("connect_retry_s"),
                     "ecmp": timers.get("ecmp"),
                     "bfd": (f"{bfd.get('interval_ms')} ms x {bfd.get('multiplier')}"
                             if isinstance(bfd, Mapping) else "off")})
    return pd.DataFrame(rows)


def steps_table(run: Run) -> pd.DataFrame:
    """The scenario's timeline as written (scenario document ``steps``)."""
    document = (run.meta.get("scenario") or {}).get("document") or {}
    steps = document.get("steps", []) if isinstance(document, Mapping) else []
    rows = [{"step": i, **{k: (v if isinstance(v, str | int | float) else str(v))
                           for k, v in step.items()}}
            for i, step in enumerate(steps) if isinstance(step, Mapping)]
    return pd.DataFrame(rows)


def _varying(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The columns among ``columns`` that take more than one value."""
    return [c for c in columns if c in table.columns and table[c].nunique(dropna=False) > 1]


def _arrow(before: Any, after: Any, fmt: str = "{}") -> str:
    if _is_missing(before) and _is_missing(after):
        return MISSING
    left = MISSING if _is_missing(before) else fmt.format(before)
    right = MISSING if _is_missing(after) else fmt.format(after)
    return left if left == right else f"{left} \u2192 {right}"


def _ms(value: Any, prefix: str = "") -> str:
    return MISSING if _is_missing(value) else f"{prefix}{float(value):.1f}"


def compact_client_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.metrics.client_table` as display text, one column per question:
    how many flows were hit, how long (the longest loss window, then the rate- and
    loss-derived figures), where before and after, RTT, TCP. Columns that do not
    vary (run, trial, step) are left out; ``>=`` marks an outage still running at the end of
    its window."""
    out = pd.DataFrame(index=table.index)
    for name in _varying(table, ["run", "trial", "phase", "fault"]):
        out[name] = table[name].astype(str)
    out["client"] = table["client"].astype(str)
    families = table["family"] if "family" in table else ["ipv4"] * len(table)
    out["service"] = [service_label(str(s), str(f))
                      for s, f in zip(table["service"], families, strict=True)]
    out["flows hit"] = [MISSING if _is_missing(n) else f"{int(h)} of {int(n)}"
                        for h, n in zip(table["flows_hit"], table["flows"], strict=True)]
    out["lost"] = [MISSING if _is_missing(v) else str(int(v)) for v in table["lost"]]
    out["loss windows"] = [MISSING if _is_missing(v) else str(int(v))
                           for v in table["loss_windows"]]
    out["outage (ms)"] = [_ms(v, "" if ok is True or _is_missing(ok) else "\u2265 ")
                          for v, ok in zip(table["outage_ms"], table["recovered"], strict=True)]
    out["rate-derived (ms)"] = [_ms(v, "" if ok is True or _is_missing(ok) else "\u2265 ")
                                for v, ok in zip(table["rate_derived_ms"], table["recovered"],
                                                 strict=True)]
    out["loss-derived (ms)"] = [_ms(v) for v in table["loss_derived_ms"]]
    out["site"] = [_arrow(b, a) for b, a in zip(table["site_before"], table["site_after"],
                                                strict=True)]
    out["flip (ms)"] = [_ms(v) for v in table["flip_ms"]]
    out["RTT (ms)"] = [_arrow(b, a, "{:.1f}") for b, a in
                       zip(table["rtt_before_ms"], table["rtt_after_ms"], strict=True)]
    out["TCP broken"] = [f"{int(b)} of {int(n)}" if not _is_missing(n) and n > 0 else MISSING
                         for b, n in zip(table["tcp_broken"].fillna(0), table["tcp_flows"],
                                         strict=True)]
    if "on_target" in table:
        out["on target"] = [MISSING if _is_missing(on) else f"{int(on)} of {int(n)}"
                            for on, n in zip(table["on_target"], table["flows"], strict=True)]
        out["collateral"] = [_collateral_text(row) for _, row in table.iterrows()]
    return out.reset_index(drop=True)


def _collateral_text(row: pd.Series) -> str:
    """What the flows that were not on the failed element lost (lab.measure.metrics
    .collateral): flows hit, their longest loss window, TCP flows broken."""
    hit, broken = row["collateral_flows_hit"], row["collateral_tcp_broken"]
    if _is_missing(hit):
        return MISSING
    parts = []
    if hit:
        parts.append(f"{int(hit)} flow{'s' * (hit != 1)} lost (longest "
                     f"{row['collateral_longest_ms']:.0f} ms)")
    if not _is_missing(broken) and broken:
        parts.append(f"{int(broken)} TCP broken")
    return ", ".join(parts) or "none"


def families_side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.metrics.client_table` of a dual-stack run as display text, one row per
    action, client and service with its IPv4 and IPv6 figures next to each other: outage,
    where the client lands (before -> after) and RTT. Empty when the run has one family."""
    if "family" not in table or table["family"].nunique() < 2:
        return pd.DataFrame()
    keys = [k for k in ("run", "trial", "phase", "fault", "target", "client", "service")
            if k in table]
    shown = [*_varying(table, ["run", "trial", "phase", "fault"]), "client", "service"]
    rows = []
    for key, group in table.groupby(keys, sort=False, dropna=False):
        by_family = {str(r["family"]): r for _, r in group.iterrows()}
        row = {name: str(value) for name, value in zip(keys, key, strict=True)
               if name in shown}
        for family, name in (("ipv4", "IPv4"), ("ipv6", "IPv6")):
            r = by_family.get(family)
            ok = r is None or r["recovered"] is True or _is_missing(r["recovered"])
            row[f"outage {name} (ms)"] = MISSING if r is None else _ms(
                r["outage_ms"], "" if ok else "\u2265 ")
            row[f"site {name}"] = MISSING if r is None else _arrow(r["site_before"],
                                                                   r["site_after"])
            row[f"RTT {name} (ms)"] = MISSING if r is None else _arrow(
                r["rtt_before_ms"], r["rtt_after_ms"], "{:.1f}")
        rows.append(row)
    return pd.DataFrame(rows)


def compact_event_table(events: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.metrics.event_table` as display text: each action with its detection,
    control-plane convergence (first to last FIB change) and worst data-plane outage."""
    out = pd.DataFrame(index=events.index)
    for name in _varying(events, ["run", "trial"]):
        out[name] = events[name].astype(str)
    out["action"] = [f"{f} {t}" if p == "fault" else f"undo {f}" for p, f, t in
                     zip(events["phase"], events["fault"], events["target"], strict=True)]
    out["at (s)"] = [f"{v:.2f}" for v in events["t_s"]]
    out["detection (ms)"] = [MISSING if _is_missing(d) else f"{d:.1f} ({s})" for d, s in
                             zip(events["detection_ms"], events["detection_source"],
                                 strict=True)]
    out["FIB changes (ms)"] = [
        MISSING if _is_missing(a) else f"{a:.1f} \u2013 {b:.1f} ({n} router{'s' * (n != 1)})"
        for a, b, n in zip(events["first_fib_ms"], events["last_fib_ms"],
                           events["routers_changed"], strict=True)]
    out["worst outage (ms)"] = [_ms(v) for v in events["worst_outage_ms"]]
    out["clients hit"] = events["clients_hit"].astype(str)
    out["TCP broken"] = events["tcp_broken"].astype(str)
    return out.reset_index(drop=True)


def text_table_html(frame: pd.DataFrame, classes: str = "table") -> str:
    """An HTML table of a frame that already holds display text (cells escaped)."""
    if frame.empty:
        return '<p class="empty">no rows</p>'
    return frame.to_html(index=False, escape=True, classes=classes, border=0)


__all__ = ["column_label", "compact_client_table", "compact_event_table",
           "families_side_by_side", "format_table",
           "format_value", "meta_rows", "steps_table", "text_table_html", "timers_table",
           "to_html"]
