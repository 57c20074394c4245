"""Round-trip times: over time per client (bucket medians coloured by the answering site,
loss as black ticks as tall as its share), and as CDFs before and after an action."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.actions import FaultEvent
from analysis.lanes import bucket_medians
from analysis.run import NS_PER_S, Run
from analysis.style import (
    LOST_COLOR,
    TimeAxis,
    action_handles,
    draw_actions,
    empty_figure,
    new_figure,
    site_colors,
    site_handles,
)
from lab.plan.model import service_label

BUCKETS = 500
PANEL_IN = 1.05  # height of one client's RTT panel


def _window(run: Run, trial: int, around: FaultEvent | None,
            window_s: float) -> tuple[int, int, TimeAxis]:
    if around is None:
        lo, hi = run.trial_bounds(trial)
        return lo, hi, TimeAxis(lo, hi - lo, "since trial start")
    lo = around.t_ns - round(0.25 * window_s * NS_PER_S)
    hi = around.t_ns + round(0.75 * window_s * NS_PER_S)
    return lo, hi, TimeAxis(around.t_ns, hi - lo, f"from {around.label}")


def _rtt_panel(ax: Axes, answered: pd.DataFrame, lost: pd.DataFrame, axis: TimeAxis,
               colors: dict[str, str]) -> None:
    for site, group in answered.groupby("site", observed=True):
        ax.scatter(axis(group["t_ns"].to_numpy()), group["rtt_ms"], s=4, lw=0,
                   color=colors.get(str(site), "#999999"), zorder=3)
    if len(lost):  # taller where a larger share of the bucket's probes was lost
        heights = 0.03 + 0.15 * lost["lost"].to_numpy()
        ax.vlines(axis(lost["t_ns"].to_numpy()), 0, heights, color=LOST_COLOR, lw=0.8,
                  transform=ax.get_xaxis_transform(), zorder=4)
    top = float(answered["rtt_ms"].max()) if len(answered) else 1.0
    ax.set_ylim(0, top * 1.18 if top > 0 else 1.0)
    ax.grid(axis="y", color="#dddddd", lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _rows(frame: pd.DataFrame, client: str, service: str) -> pd.DataFrame:
    return frame[(frame["client"] == client) & (frame["service"] == service)]


def rtt_timeline(run: Run, *, trial: int = 0, around: FaultEvent | None = None,
                 window_s: float = 3.0, clients: Sequence[str] | None = None,
                 services: Sequence[str] | None = None) -> Figure:
    """Median RTT per time bucket (about 2 px wide) for each client (rows) and probed
    service (columns; a dual-stack service's IPv4 and IPv6 side by side), coloured by the
    answering site; black ticks mark buckets with loss."""
    trial = around.trial if around is not None else trial
    lo, hi, axis = _window(run, trial, around, window_s)
    probes = run.trial_probes(trial)
    wanted_clients = [c for c in run.clients if clients is None or c in clients]
    wanted_services = [service_label(s, f) for s in run.services for f in run.families
                       if (services is None or s in services)
                       and ((probes["service"] == s) & (probes["family"] == f)).any()]
    title = f"Round-trip time per client - {run.label}, trial {trial}"
    if probes.empty or not wanted_services:
        return empty_figure(title, "no probes in this trial")
    medians, lost = bucket_medians(probes, lo, hi, BUCKETS)
    colors = site_colors(run.sites)
    fig = new_figure(PANEL_IN * len(wanted_clients) + 1.5)
    axes = fig.subplots(len(wanted_clients), len(wanted_services), sharex=True, squeeze=False)
    for row, client in enumerate(wanted_clients):
        for col, service in enumerate(wanted_services):
            ax = axes[row][col]
            _rtt_panel(ax, _rows(medians, client, service), _rows(lost, client, service), axis,
                       colors)
            ax.set_xlim(axis(lo), axis(hi))
            name = client if len(wanted_services) == 1 else f"{client} {service}"
            ax.set_title(name, loc="left", fontsize=9, pad=2)
            draw_actions([ax], run.trial_actions(trial), axis,
                         label_ax=ax if row == 0 else None)
            if row == len(wanted_clients) - 1:
                ax.set_xlabel(axis.label)
    fig.supylabel("RTT (ms), median per bucket", fontsize=10)
    handles = [*site_handles(colors), *action_handles()]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
               fontsize=9)
    fig.suptitle(title, fontsize=12)
    return fig


CDF_POINTS = 400


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF, at most CDF_POINTS steps (quantiles) whatever the sample size."""
    if len(values) <= CDF_POINTS:
        ordered = np.sort(values)
        return ordered, np.arange(1, len(ordered) + 1) / len(ordered)
    shares = np.linspace(0.0, 1.0, CDF_POINTS)
    return np.quantile(values, shares), shares


def _majority(frame: pd.DataFrame) -> str | None:
    sites = frame["site"].dropna()
    return str(sites.value_counts().index[0]) if len(sites) else None


def rtt_cdf(run: Run, event: FaultEvent | None = None, *, service: str | None = None,
            window_s: float = 1.0, clients: Sequence[str] | None = None,
            family: str = "ipv4") -> Figure:
    """Per client, the RTT distribution of one service and family in the ``window_s`` seconds
    before an action (solid) and before its window ends (dashed: the state it converged to),
    coloured by the site that answered most of each."""
    event = event or (run.fault_events[0] if run.fault_events else None)
    title = f"RTT before and after - {run.label}"
    if event is None:
        return empty_figure(title, "no fault in this run")
    probes = run.trial_probes(event.trial)
    probes = probes[probes["family"] == family]
    probed = [s for s in run.services if (probes["service"] == s).any()]
    service = service or (probed[0] if probed else None)
    wanted = [c for c in run.clients if clients is None or c in clients]
    if service is None or not wanted:
        return empty_figure(title, "no probes in this trial")
    span = round(window_s * NS_PER_S)
    mine = probes[(probes["service"] == service) & ~probes["lost"]]
    phases = {"before": mine[(mine["send_ns"] >= event.t_ns - span)
                             & (mine["send_ns"] < event.t_ns)],
              "after": mine[(mine["send_ns"] >= event.end_ns - span)
                            & (mine["send_ns"] < event.end_ns)]}
    colors = site_colors(run.sites)
    ncols = min(3, len(wanted))
    nrows = -(-len(wanted) // ncols)
    fig = new_figure(2.3 * nrows + 1.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, client in enumerate(wanted):
        ax = axes[i // ncols][i % ncols]
        _cdf_panel(ax, client, phases, colors)
        ax.set_xlabel("RTT (ms)" if i // ncols == nrows - 1 else "")
        ax.set_ylabel("share of probes" if i % ncols == 0 else "")
    for j in range(len(wanted), nrows * ncols):
        axes[j // ncols][j % ncols].set_axis_off()
    handles = [Line2D([], [], color="#444444", lw=1.6, label=f"{window_s:g} s before the action"),
               Line2D([], [], color="#444444", lw=1.6, ls="--",
                      label=f"last {window_s:g} s of its window"),
               *site_handles(colors, lost=False)]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
               fontsize=9)
    fig.suptitle(f"{service_label(service, family)} RTT before and after {event.label} - "
                 f"{run.label}, "
                 f"trial {event.trial}", fontsize=12)
    return fig


def _cdf_panel(ax: Axes, client: str, phases: dict[str, pd.DataFrame],
               colors: dict[str, str]) -> None:
    for phase, style in (("before", "-"), ("after", "--")):
        rows = phases[phase][phases[phase]["client"] == client]
        if rows.empty:
            continue
        x, y = _cdf(rows["rtt_ms"].to_numpy())
        site = _majority(rows)
        ax.step(x, y, where="post", ls=style, lw=1.6, color=colors.get(site or "", "#444444"),
                label=f"{phase} ({site})")
    values = [phases[p].loc[phases[p]["client"] == client, "rtt_ms"].to_numpy()
              for p in ("before", "after")]
    both = np.concatenate(values)
    if len(both):  # the body of the distribution: rare spikes would squash it
        lo, hi = np.quantile(both, [0.001, 0.995])
        pad = max((hi - lo) * 0.08, 0.05)
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_title(client, loc="left", fontsize=10)
    ax.set_ylim(0, 1.02)
    ax.grid(color="#e5e5e5", lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


__all__ = ["rtt_cdf", "rtt_timeline"]
