"""Comparison across runs (scenarios, timers, trials): a per-client figure (by default the
outage, the longest loss window, after each fault) as box plots with every trial as a point,
grouped by run label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.metrics import labelled_client_table
from analysis.run import Run
from analysis.style import empty_figure, new_figure, run_colors
from lab.plan.model import service_label

METRIC_NAMES = {"outage_ms": "outage (longest loss window)",
                "rate_derived_ms": "rate-derived outage", "loss_derived_ms": "loss-derived outage",
                "loss_windows": "loss windows", "loss_ratio": "loss ratio",
                "flip_ms": "flip after the action", "tcp_broken": "TCP flows broken",
                "rtt_after_ms": "RTT after"}
BOX_MIN_POINTS = 3


def comparison_data(runs: Sequence[Run], *, metric: str = "outage_ms", phase: str = "fault",
                    labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Every run's per-client rows for one kind of action, labelled, where the metric
    exists."""
    data = labelled_client_table(runs, phase=phase, labels=labels)
    data = data[data[metric].notna()].copy()
    if metric == "tcp_broken":  # only where TCP flows ran
        data = data[data["tcp_flows"] > 0]
    data[metric] = data[metric].astype(float)
    return data


def _unit(metric: str, values: pd.Series) -> tuple[str, float]:
    if not metric.endswith("_ms"):
        return "", 1.0
    return ("s", 1000.0) if len(values) and values.max() >= 2000 else ("ms", 1.0)


def _draw_group(ax: Axes, x: float, values: np.ndarray, color: str, width: float,
                rng: np.random.Generator) -> None:
    if len(values) >= BOX_MIN_POINTS:
        box = ax.boxplot([values], positions=[x], widths=width * 0.8, patch_artist=True,
                         showfliers=False, whis=(5, 95), manage_ticks=False)
        for patch in box["boxes"]:
            patch.set(facecolor=color, alpha=0.25, edgecolor=color)
        for part in ("whiskers", "caps", "medians"):
            for line in box[part]:
                line.set(color=color, lw=1.2)
    jitter = rng.uniform(-width * 0.3, width * 0.3, len(values))
    ax.scatter(x + jitter, values, s=22, color=color, edgecolor="white", lw=0.5, zorder=4)


def compare_outages(runs: Sequence[Run], *, metric: str = "outage_ms", phase: str = "fault",
                    labels: Sequence[str] | None = None,
                    clients: Sequence[str] | None = None) -> Figure:
    """One group per client, one box (5th-95th percentile whiskers) and strip of trials per
    run, a panel per probed service and family."""
    data = comparison_data(runs, metric=metric, phase=phase, labels=labels)
    what = METRIC_NAMES.get(metric, metric)
    title = f"{what[:1].upper()}{what[1:]} per client, by run"
    if data.empty:
        return empty_figure(title, f"no {metric} figures in these runs")
    names = list(dict.fromkeys(data["run"]))
    colors = run_colors(names)
    order = list(dict.fromkeys(c for run in runs for c in run.clients))
    wanted = [c for c in order if (clients is None or c in clients)
              and c in set(data["client"])]
    # a panel per service and family (IPv6 as "service (IPv6)")
    data = data.assign(service=[service_label(s, f) for s, f in
                                zip(data["service"], data["family"], strict=True)])
    services = list(dict.fromkeys(data["service"]))
    unit, scale = _unit(metric, data[metric])
    fig = new_figure(3.6 * len(services) + 1.0)
    axes = fig.subplots(len(services), 1, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)
    width = 0.8 / len(names)
    for ax, service in zip(axes, services, strict=True):
        rows = data[data["service"] == service]
        for i, client in enumerate(wanted):
            for j, name in enumerate(names):
                values = rows.loc[(rows["client"] == client) & (rows["run"] == name), metric]
                x = i - 0.4 + width * (j + 0.5)
                _draw_group(ax, x, values.to_numpy() / scale, colors[name], width, rng)
        ax.set_xticks(range(len(wanted)), wanted)
        ax.set_xlim(-0.6, len(wanted) - 0.4)
        ax.set_ylim(bottom=0)
        if not metric.endswith("_ms"):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{what} ({unit})" if unit else what)
        ax.set_title(f"{service}, after each {phase}", loc="left", fontsize=10)
        ax.grid(axis="y", color="#e2e2e2", lw=0.6)
        for k in range(1, len(wanted)):
            ax.axvline(k - 0.5, color="#eeeeee", lw=0.8, zorder=0)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].set_xlabel("client")
    handles = [Line2D([], [], marker="o", lw=0, color=colors[n], markersize=7,
                      label=f"{n} ({_trials(data, n)})") for n in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3),
               frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=12)
    return fig


def _trials(data: pd.DataFrame, name: str) -> str:
    n = int(data.loc[data["run"] == name, "trial"].nunique())
    return f"{n} trial{'s' if n != 1 else ''}"


__all__ = ["compare_outages", "comparison_data"]
