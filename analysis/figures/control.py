"""Control plane: for each router and service prefix whose FIB entry changed, the number of
next hops over time (a lane per router, shaded by the count, the count written in), with
the injector actions as lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis.actions import FaultEvent
from analysis.run import NS_PER_S, Run
from analysis.style import (
    TimeAxis,
    action_handles,
    draw_actions,
    empty_figure,
    new_figure,
)

NO_ROUTE_COLOR = "#000000"
UNKNOWN_COLOR = "#eeeeee"
LANE_IN = 0.3


@dataclass(frozen=True)
class Segment:
    start_ns: int
    end_ns: int
    nexthops: int | None  # None: not known (no record before the window)
    nexthop_list: str = ""


def lane_segments(rows: pd.DataFrame, start_ns: int, end_ns: int) -> list[Segment]:
    """The next-hop count of one router/prefix over ``[start_ns, end_ns)``, from its FIB
    records (the last one before the window gives the initial state)."""
    earlier = rows[rows["t_ns"] < start_ns]
    inside = rows[(rows["t_ns"] >= start_ns) & (rows["t_ns"] < end_ns)]
    state: tuple[int | None, str] = (None, "")
    if len(earlier):
        last = earlier.iloc[-1]
        state = (int(last["n_nexthops"]), str(last["nexthops"]))
    segments, cursor = [], start_ns
    for t, n, hops in zip(inside["t_ns"], inside["n_nexthops"], inside["nexthops"], strict=True):
        if int(t) > cursor:
            segments.append(Segment(cursor, int(t), state[0], state[1]))
        cursor, state = int(t), (int(n), str(hops))
    segments.append(Segment(cursor, end_ns, state[0], state[1]))
    return segments


def _changed_lanes(run: Run, start_ns: int, end_ns: int,
                   prefixes: Sequence[str] | None) -> list[tuple[str, str]]:
    routes = run.routes
    if prefixes is not None:
        routes = routes[routes["prefix"].isin(list(prefixes))]
    inside = routes[(routes["t_ns"] >= start_ns) & (routes["t_ns"] < end_ns)]
    first = inside.groupby(["router", "prefix"])["t_ns"].min().reset_index()
    first = first.sort_values(["t_ns", "router", "prefix"])
    return list(zip(first["router"], first["prefix"], strict=True))


def _draw_lane(ax: Axes, y: int, segments: list[Segment], axis: TimeAxis, vmax: int,
               min_text: float) -> None:
    cmap = matplotlib.colormaps["Blues"]
    for seg in segments:
        x0, x1 = axis(seg.start_ns), axis(seg.end_ns)
        color: str | tuple[float, float, float, float]
        if seg.nexthops is None:
            color = UNKNOWN_COLOR
        elif seg.nexthops == 0:
            color = NO_ROUTE_COLOR
        else:
            color = cmap(0.3 + 0.6 * seg.nexthops / max(vmax, 1))
        ax.broken_barh([(x0, x1 - x0)], (y - 0.4, 0.8), facecolors=color, edgecolor="white",
                       lw=0.6)
        if seg.nexthops is not None and (x1 - x0) >= min_text:
            dark = seg.nexthops == 0 or seg.nexthops / max(vmax, 1) > 0.5
            text = str(seg.nexthops)
            detailed = f"{text}: {seg.nexthop_list.replace(',', ', ')}"
            if seg.nexthop_list and (x1 - x0) >= min_text * len(detailed) / 2.5:
                text = detailed
            ax.text((x0 + x1) / 2, y, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "#1a1a1a")


def control_plane(run: Run, *, trial: int = 0, around: FaultEvent | None = None,
                  window_s: float = 3.0, prefixes: Sequence[str] | None = None) -> Figure:
    """Next-hop count of the service prefixes per router over a trial (or a window around
    one action), for the routers whose FIB entry changed in it."""
    if around is not None:
        trial = around.trial
        lo = around.t_ns - round(0.25 * window_s * NS_PER_S)
        hi = around.t_ns + round(0.75 * window_s * NS_PER_S)
        axis = TimeAxis(around.t_ns, hi - lo, f"from {around.label}")
    else:
        lo, hi = run.trial_bounds(trial)
        axis = TimeAxis(lo, hi - lo, "since trial start")
    title = f"Next hops of the service prefixes per router - {run.label}, trial {trial}"
    lanes = _changed_lanes(run, lo, hi, prefixes)
    if not lanes:
        return empty_figure(title, "no FIB change of a service prefix in this window")
    names = run.service_prefixes
    fig = new_figure(LANE_IN * len(lanes) + 1.9)
    ax = fig.add_subplot()
    vmax = int(run.routes["n_nexthops"].max())
    drawn: set[int | None] = set()
    for y, (router, prefix) in enumerate(lanes):
        rows = run.routes[(run.routes["router"] == router) & (run.routes["prefix"] == prefix)]
        segments = lane_segments(rows, lo, hi)
        drawn |= {s.nexthops for s in segments}
        _draw_lane(ax, y, segments, axis, vmax, min_text=0.02 * (axis(hi) - axis(lo)))
    ax.set_yticks(range(len(lanes)), [f"{r} {names.get(p, p)}" for r, p in lanes])
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(axis(lo), axis(hi))
    ax.set_xlabel(axis.label)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    draw_actions([ax], run.trial_actions(trial), axis, label_ax=ax)
    handles = [*_count_handles(drawn, vmax), *action_handles()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8),
               frameon=False, fontsize=9, title="next hops in the FIB", title_fontsize=9)
    fig.suptitle(title, fontsize=12)
    return fig


def _count_handles(drawn: set[int | None], vmax: int) -> list[Patch]:
    cmap = matplotlib.colormaps["Blues"]
    counts = sorted(n for n in drawn if n is not None)
    handles = [Patch(facecolor=NO_ROUTE_COLOR if n == 0 else cmap(0.3 + 0.6 * n / max(vmax, 1)),
                     label="none" if n == 0 else str(n)) for n in counts]
    if None in drawn:
        handles.append(Patch(facecolor=UNKNOWN_COLOR, label="unknown"))
    return handles


def changes_table(run: Run, trial: int = 0) -> pd.DataFrame:
    """The FIB changes of a trial with their time from the trial start, for display."""
    lo, hi = run.trial_bounds(trial)
    routes = run.routes[(run.routes["t_ns"] >= lo) & (run.routes["t_ns"] < hi)].copy()
    routes.insert(0, "t_s", (routes["t_ns"] - lo) / NS_PER_S)
    routes["service"] = [run.service_prefixes.get(p, "") for p in routes["prefix"]]
    return routes.drop(columns=["t_ns"]).reset_index(drop=True)


__all__ = ["changes_table", "control_plane", "lane_segments"]
