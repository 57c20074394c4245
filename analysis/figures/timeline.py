"""Who answered each probe, over time: one lane per client and service (a row per flow),
coloured by the answering site, lost probes in black (grey where only some probes of a pixel
were lost), faults as red lines, FIB changes as ticks on a strip above.
``timeline(run, around=event)`` zooms on one action; ``timeline_zooms`` shows every action
of a trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.actions import FaultEvent
from analysis.lanes import LaneRaster, lane_groups, lane_index, lane_raster
from analysis.run import NS_PER_S, Run
from analysis.style import (
    FAULT_COLOR,
    FIB_COLOR,
    LOST_COLOR,
    NODATA_COLOR,
    PARTIAL_COLOR,
    TimeAxis,
    action_handles,
    draw_actions,
    empty_figure,
    new_figure,
    node_colors,
    site_colors,
    site_handles,
)

ZOOM_BEFORE = 0.25  # share of a zoom window shown before the action
ROW_IN = 0.075  # height of one flow row
GROUP_MIN_IN = 0.26  # minimum height of a client/service band
LANES_MIN_IN = 1.3  # minimum height of the lanes of a panel
ZOOM_COLUMNS = 2
MAX_ZOOMS = 8
BUCKETS_FULL = 720  # about one bucket per pixel of a 1000 px wide figure


def _select(run: Run, trial: int, clients: Sequence[str] | None,
            services: Sequence[str] | None) -> pd.DataFrame:
    probes = run.trial_probes(trial)
    if clients is not None:
        probes = probes[probes["client"].isin(list(clients))]
    if services is not None:
        probes = probes[probes["service"].isin(list(services))]
    return probes


def _lanes_height(groups: list[tuple[str, str, int, int]]) -> float:
    return max(LANES_MIN_IN, sum(max(GROUP_MIN_IN, n * ROW_IN) for *_, n in groups))


def _draw_lanes(ax: Axes, raster: LaneRaster, axis: TimeAxis, colors: dict[str, str],
                labels: bool) -> None:
    palette = [colors.get(s, "#999999") for s in raster.names] + [LOST_COLOR, NODATA_COLOR,
                                                                   PARTIAL_COLOR]
    n_rows = len(raster.rows)
    ax.imshow(raster.codes, aspect="auto", interpolation="nearest", origin="upper",
              cmap=ListedColormap(palette), vmin=-0.5, vmax=len(palette) - 0.5,
              extent=(axis(raster.start_ns), axis(raster.end_ns), n_rows, 0))
    single_service = len({g[1] for g in raster.groups}) == 1
    centers, names = [], []
    for client, service, first, n in raster.groups:
        if first:
            ax.axhline(first, color="white", lw=2.0)
        centers.append(first + n / 2)
        names.append(client if single_service else f"{client} {service}")
    ax.set_yticks(centers, names if labels else [""] * len(names))
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(n_rows, 0)
    ax.set_xlabel(axis.label)
    if labels:
        flows = max(n for *_, n in raster.groups)
        what = f"{raster.groups[0][1]} probes, " if single_service else ""
        ax.set_ylabel(f"{what}client" + (f" ({flows} flows)" if flows > 1 else ""))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _draw_fib(ax: Axes, run: Run, start_ns: int, end_ns: int, axis: TimeAxis,
              labels: bool) -> int:
    routes = run.routes
    changes = routes[(routes["t_ns"] >= start_ns) & (routes["t_ns"] < end_ns)]
    if len(changes):
        ax.eventplot(axis(changes["t_ns"].to_numpy()), colors=FIB_COLOR, lineoffsets=0.5,
                     linelengths=0.8, linewidths=0.9)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.5], ["FIB" if labels else ""])
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelbottom=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return len(changes)


def _panel(fig: Figure | SubFigure, run: Run, probes: pd.DataFrame, window: tuple[int, int],
           axis: TimeAxis, style: _Style, labels: bool = True) -> LaneRaster:
    raster = lane_raster(probes, window[0], window[1], BUCKETS_FULL, run.interval_ns, style.by)
    grid = fig.add_gridspec(2, 1, height_ratios=[0.35, _lanes_height(raster.groups)],
                            hspace=0.02)
    ax_fib = fig.add_subplot(grid[0])
    ax = fig.add_subplot(grid[1], sharex=ax_fib)
    _draw_fib(ax_fib, run, window[0], window[1], axis, labels)
    _draw_lanes(ax, raster, axis, style.colors, labels)
    ax.set_xlim(axis(window[0]), axis(window[1]))
    trial = int(probes["trial"].iloc[0])
    draw_actions([ax_fib, ax], run.trial_actions(trial), axis,
                 label_ax=ax_fib if style.label_actions else None)
    return raster


@dataclass(frozen=True)
class _Style:
    by: str  # "site" or "node"
    colors: dict[str, str]
    label_actions: bool = True


def _style(run: Run, color_by: str, label_actions: bool = True) -> _Style:
    if color_by not in ("site", "node"):
        raise ValueError(f"color_by must be 'site' or 'node', not {color_by!r}")
    colors = (site_colors(run.sites) if color_by == "site"
              else node_colors(run.node_sites, run.sites))
    return _Style(color_by, colors, label_actions)


def _legend(fig: Figure, style: _Style, rasters: Sequence[LaneRaster]) -> None:
    shown = {r.names[c] for r in rasters for c in np.unique(r.codes) if c < len(r.names)}
    colors = {name: c for name, c in style.colors.items()
              if style.by == "site" or name in shown}
    handles: list[Any] = [*site_handles(colors), *action_handles()]
    handles.append(Line2D([], [], color=FIB_COLOR, lw=0, marker="|", markersize=9,
                          label="FIB change"))
    if any((r.codes == r.partial_code).any() for r in rasters):
        handles.insert(len(colors) + 1, Patch(facecolor=PARTIAL_COLOR, label="some loss"))
    if any((r.codes == r.nodata_code).any() for r in rasters):
        handles.append(Patch(facecolor=NODATA_COLOR, edgecolor="#999999", label="no probe"))
    ncols = len(handles) if len(handles) <= 10 else -(-len(handles) // 2)
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False,
               fontsize=9 if len(handles) <= 10 else 8)


def _zoom(action: FaultEvent, window_s: float) -> tuple[int, int]:
    return (action.t_ns - round(ZOOM_BEFORE * window_s * NS_PER_S),
            action.t_ns + round((1 - ZOOM_BEFORE) * window_s * NS_PER_S))


def timeline(run: Run, *, trial: int = 0, around: FaultEvent | None = None,
             window_s: float = 3.0, clients: Sequence[str] | None = None,
             services: Sequence[str] | None = None, color_by: str = "site") -> Figure:
    """The answering site (``color_by="node"``: node, in shades of its site's colour) of
    every probe over a trial, or, with ``around``, over ``window_s`` seconds around one
    action (a quarter of it before)."""
    if around is not None:
        trial = around.trial
        lo, hi = _zoom(around, window_s)
        axis = TimeAxis(around.t_ns, hi - lo, f"from {around.label}")
        title = f"Answering {color_by} around {around.label} - {run.label}, trial {trial}"
    else:
        lo, hi = run.trial_bounds(trial)
        axis = TimeAxis(lo, hi - lo, "since trial start")
        title = f"Answering {color_by} per client and flow - {run.label}, trial {trial}"
    probes = _select(run, trial, clients, services)
    if probes.empty:
        return empty_figure(title, "no probes in this trial")
    style = _style(run, color_by)
    fig = new_figure(_lanes_height(lane_groups(lane_index(probes)[1])) + 1.7)
    raster = _panel(fig, run, probes, (lo, hi), axis, style)
    _legend(fig, style, [raster])
    fig.suptitle(title, fontsize=12)
    return fig


def timeline_zooms(run: Run, *, trial: int = 0, window_s: float = 3.0,
                   clients: Sequence[str] | None = None,
                   services: Sequence[str] | None = None, color_by: str = "site") -> Figure:
    """One zoomed timeline per action of a trial (fault, undo, ...), two per row; the first
    eight actions when there are more."""
    actions = run.trial_actions(trial)
    title = f"Around each action - {run.label}, trial {trial}"
    probes = _select(run, trial, clients, services)
    if not actions or probes.empty:
        return empty_figure(title, "no injector action or no probes in this trial")
    if len(actions) > MAX_ZOOMS:
        title += f" (the first {MAX_ZOOMS} of {len(actions)} actions)"
        actions = actions[:MAX_ZOOMS]
    style = _style(run, color_by, label_actions=False)
    ncols = min(ZOOM_COLUMNS, len(actions))
    nrows = -(-len(actions) // ncols)
    panel_in = _lanes_height(lane_groups(lane_index(probes)[1])) + 1.4
    fig = new_figure(nrows * panel_in + 0.8)
    made = fig.subfigures(nrows, ncols, wspace=0.02, hspace=0.04, squeeze=False)
    subfigs = list(made.flat)
    origin = run.origin_ns(trial)
    rasters = []
    for i, (sub, action) in enumerate(zip(subfigs, actions, strict=False)):
        lo, hi = _zoom(action, window_s)
        axis = TimeAxis(action.t_ns, hi - lo, "from the action")
        rasters.append(_panel(sub, run, probes, (lo, hi), axis, style, labels=i % ncols == 0))
        sub.suptitle(f"{action.label} (t = {(action.t_ns - origin) / NS_PER_S:.1f} s)",
                     fontsize=10, color=FAULT_COLOR)
    _legend(fig, style, rasters)
    fig.suptitle(title, fontsize=12)
    return fig


__all__ = ["timeline", "timeline_zooms"]
