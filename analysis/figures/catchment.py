"""Catchment matrices: client x site, one panel per phase, each cell the share of probes
answered by that site (tinted in the site's colour) or lost."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from analysis.catchment import LOST, catchment_table
from analysis.run import Run
from analysis.style import LOST_COLOR, empty_figure, new_figure, site_colors
from lab.plan.model import service_label

MAX_COLUMNS = 3


def _cell_colors(shares: np.ndarray, colors: list[str]) -> np.ndarray:
    """RGB image: each column's colour blended with white by the share."""
    rgb = np.array([to_rgb(c) for c in colors])  # (columns, 3)
    alpha = shares[:, :, None]
    return 1.0 - alpha * (1.0 - rgb[None, :, :])


def _percent(share: float) -> str:
    if share <= 0:
        return ""
    if share < 0.001:
        return "<0.1%"
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def _panel(ax: Axes, rows: pd.DataFrame, columns: list[str], colors: list[str],
           labels: list[str], show_labels: bool) -> None:
    shares = rows[columns].to_numpy(dtype=float)
    ax.imshow(_cell_colors(shares, colors), aspect="auto", interpolation="nearest")
    for (i, j), share in np.ndenumerate(shares):
        text = _percent(share)
        if text:
            dark = share > 0.55
            ax.text(j, i, text, ha="center", va="center", fontsize=8.5,
                    color="white" if dark else "#222222")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(labels)), labels if show_labels else [""] * len(labels))
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(labels)), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    ax.xaxis.tick_top()
    for spine in ax.spines.values():
        spine.set_visible(False)


def catchment(run: Run, *, trial: int = 0) -> Figure:
    """Client x site share of answers per phase (before, during each fault, after each undo);
    the last column is the share of probes lost."""
    table = catchment_table(run, trial)
    title = f"Catchment per phase - {run.label}, trial {trial}"
    if table.empty:
        return empty_figure(title, "no probes in this trial")
    palette = site_colors(run.sites)
    columns = [*run.sites, LOST]
    colors = [*(palette[s] for s in run.sites), LOST_COLOR]
    names = list(dict.fromkeys(table["phase"]))
    table = table.assign(service=[service_label(s, f) for s, f in
                                  zip(table["service"], table["family"], strict=True)])
    single_service = table["service"].nunique() == 1
    ncols = min(MAX_COLUMNS, len(names))
    nrows = -(-len(names) // ncols)
    lanes = table[["client", "service"]].drop_duplicates()
    fig = new_figure(nrows * (0.32 * len(lanes) + 1.0) + 0.8)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k // ncols][k % ncols]
        rows = lanes.merge(table[table["phase"] == name].drop(columns="family"),
                           how="left").fillna(
            dict.fromkeys(columns, 0.0))
        labels = [c if single_service else f"{c} {s}"
                  for c, s in zip(rows["client"], rows["service"], strict=True)]
        _panel(ax, rows, columns, colors, labels, show_labels=k % ncols == 0)
        start, end = rows["start_s"].dropna().iloc[0], rows["end_s"].dropna().iloc[0]
        ax.set_title(f"{name}\n{start:.1f} - {end:.1f} s", fontsize=10)
    for k in range(len(names), nrows * ncols):
        axes[k // ncols][k % ncols].set_axis_off()
    what = f"{table['service'].iloc[0]} probes" if single_service else "probes"
    fig.suptitle(f"{title}\nshare of {what} answered by each site, or lost", fontsize=12)
    return fig


__all__ = ["catchment"]
