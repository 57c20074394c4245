"""Shared look of every figure: the site palette, time units, event lines, saving.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (no global state, no
backend choice, nothing to close), 10 inches wide at 100 dpi: 1000 px, the README width.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.actions import FaultEvent

# Okabe-Ito (colour-blind safe), assigned to site names in sorted order.
SITE_PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
                "#8c564b")
# Paul Tol "muted", for runs in comparisons (never for sites).
RUN_PALETTE = ("#332288", "#cc6677", "#44aa99", "#ddcc77", "#882255", "#88ccee", "#117733",
               "#999933", "#aa4499")
LOST_COLOR = "#000000"
NODATA_COLOR = "#ffffff"
PARTIAL_COLOR = "#9a9a9a"  # a bucket where some (less than half) of the probes were lost
FAULT_COLOR = "#c62828"
FIB_COLOR = "#555555"
WIDTH_IN = 10.0
DPI = 100
MS_AXIS_MAX_S = 5.0  # spans up to this many seconds are labelled in ms


def site_colors(sites: Iterable[str]) -> dict[str, str]:
    """A fixed colour per site: the palette in order of the sorted site names, so the same
    lab gets the same colours in every figure and every run."""
    names = sorted(set(sites))
    return {name: SITE_PALETTE[i % len(SITE_PALETTE)] for i, name in enumerate(names)}


def _shade(color: str, amount: float) -> str:
    """Lighter (amount > 0, towards white) or darker (amount < 0) version of a colour."""
    r, g, b = to_rgb(color)
    target = 1.0 if amount > 0 else 0.0
    k = abs(amount)
    return to_hex((r + (target - r) * k, g + (target - g) * k, b + (target - b) * k))


def node_colors(node_sites: Mapping[str, str], sites: Iterable[str]) -> dict[str, str]:
    """Each node in a shade of its site's colour (darker to lighter in name order), so a
    figure coloured by node still reads by site."""
    base = site_colors([*sites, *node_sites.values()])
    out: dict[str, str] = {}
    for site, color in base.items():
        nodes = sorted(n for n, s in node_sites.items() if s == site)
        for i, node in enumerate(nodes):
            amount = -0.35 + 0.8 * i / max(len(nodes) - 1, 1) if len(nodes) > 1 else 0.0
            out[node] = _shade(color, amount)
    return out


def run_colors(labels: Sequence[str]) -> dict[str, str]:
    return {label: RUN_PALETTE[i % len(RUN_PALETTE)] for i, label in enumerate(labels)}


class TimeAxis:
    """Maps monotonic ns to axis values: seconds, or milliseconds for short spans, from a
    zero (the trial start or an action)."""

    def __init__(self, zero_ns: int, span_ns: int, reference: str) -> None:
        self.zero_ns = zero_ns
        self.unit = "ms" if span_ns <= MS_AXIS_MAX_S * 1e9 else "s"
        self.scale = 1e6 if self.unit == "ms" else 1e9
        self.reference = reference

    def __call__(self, t_ns: Any) -> Any:
        return (t_ns - self.zero_ns) / self.scale

    @property
    def label(self) -> str:
        return f"time {self.reference} ({self.unit})"


def new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    return Figure(figsize=(width_in, height_in), dpi=DPI,
                  layout=ConstrainedLayoutEngine(h_pad=0.06, w_pad=0.06))


def empty_figure(title: str, message: str) -> Figure:
    """A small figure that says why there is nothing to draw."""
    fig = new_figure(2.0)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555555")
    fig.suptitle(title, fontsize=13)
    return fig


LABEL_LEVELS = 3
LABEL_CHAR_PX = 5.6  # width of one character of an action label, at 8.5 pt and 100 dpi


def draw_actions(axes: Sequence[Axes], actions: Sequence[FaultEvent],
                 x_of: Callable[[int], float], label_ax: Axes | None = None) -> None:
    """A vertical line per fault (solid) and undo (dashed) across every axes, labelled above
    ``label_ax``: each label goes to the lowest of three rows where it does not run into an
    earlier one; a label that fits nowhere is left out (the line stays)."""
    lo, hi = axes[0].get_xlim()
    visible = [a for a in actions if lo <= x_of(a.t_ns) <= hi]
    for ax in axes:
        for action in visible:
            ax.axvline(x_of(action.t_ns), color=FAULT_COLOR, lw=1.3, zorder=5,
                       ls="-" if action.kind == "fault" else "--")
    if label_ax is None:
        return
    fig = label_ax.get_figure(root=True)
    width_px = 0.85 * (fig.get_figwidth() * fig.dpi if fig is not None else 1000)
    ends = [-1.0] * LABEL_LEVELS  # right end of the last label in each row, axis fraction
    for action in visible:
        start = (x_of(action.t_ns) - lo) / (hi - lo)
        end = start + (len(action.label) + 2) * LABEL_CHAR_PX / width_px
        level = next((k for k in range(LABEL_LEVELS) if ends[k] < start), None)
        if level is None:
            continue
        ends[level] = end
        label_ax.annotate(action.label, xy=(x_of(action.t_ns), 1.0),
                          xycoords=("data", "axes fraction"), xytext=(3, 2 + 11 * level),
                          textcoords="offset points", fontsize=8.5, color=FAULT_COLOR,
                          va="bottom", ha="left", annotation_clip=False)


def action_handles() -> list[Line2D]:
    return [Line2D([], [], color=FAULT_COLOR, lw=1.3, label="fault"),
            Line2D([], [], color=FAULT_COLOR, lw=1.3, ls="--", label="undo")]


def site_handles(colors: dict[str, str], lost: bool = True) -> list[Any]:
    handles: list[Any] = [Patch(facecolor=c, label=s) for s, c in colors.items()]
    if lost:
        handles.append(Patch(facecolor=LOST_COLOR, label="lost"))
    return handles


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write a figure (format from the suffix: .png, .svg, .pdf) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = DPI) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


__all__ = ["DPI", "FAULT_COLOR", "LOST_COLOR", "PARTIAL_COLOR", "SITE_PALETTE", "TimeAxis",
           "action_handles", "draw_actions", "empty_figure", "figure_bytes", "new_figure",
           "node_colors", "run_colors", "save_figure", "site_colors", "site_handles"]
