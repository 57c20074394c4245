"""Figures: each returns a titled Figure with units on its time axes, one site palette
everywhere, labels that do not collide, and saves to a path."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure, SubFigure
from matplotlib.image import AxesImage
from matplotlib.text import Text
from PIL import Image

from analysis import (
    Run,
    catchment,
    compare_outages,
    control_plane,
    load_run,
    load_runs,
    node_colors,
    rtt_cdf,
    rtt_timeline,
    save_figure,
    site_colors,
    timeline,
    timeline_zooms,
)
from analysis.lanes import lane_raster
from analysis.style import LOST_COLOR, SITE_PALETTE, TimeAxis
from tests.unit.test_analysis_data import (
    MS,
    SAMPLE_BFD,
    SAMPLE_HOLD,
    SAMPLE_ISOLATE,
    T0,
    injector,
    lane,
    runner,
    write_run,
)


@pytest.fixture(scope="module")
def bfd() -> Run:
    return load_run(SAMPLE_BFD)


@pytest.fixture(scope="module")
def isolate() -> Run:
    return load_run(SAMPLE_ISOLATE)


FIGURES: dict[str, Callable[[Run], Figure]] = {
    "timeline": lambda r: timeline(r),
    "timeline-zoom": lambda r: timeline(r, around=r.fault_events[0], window_s=3),
    "timeline-nodes": lambda r: timeline(r, color_by="node"),
    "timeline-zooms": lambda r: timeline_zooms(r),
    "rtt": lambda r: rtt_timeline(r),
    "rtt-zoom": lambda r: rtt_timeline(r, around=r.fault_events[0]),
    "rtt-cdf": lambda r: rtt_cdf(r),
    "catchment": lambda r: catchment(r),
    "control-plane": lambda r: control_plane(r),
    "control-plane-zoom": lambda r: control_plane(r, around=r.fault_events[0], window_s=3),
}
TIME_AXES = {"timeline", "timeline-zoom", "timeline-nodes", "timeline-zooms", "rtt", "rtt-zoom",
             "control-plane", "control-plane-zoom"}


def _tick_labels(ax: Axes, which: str) -> Iterable[Text]:
    """The tick labels matplotlib draws: those of ticks inside the view limits."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if which == "y" else ax.get_xlim())
    span = (hi - lo) * 1e-9
    locs = axis.get_majorticklocs()
    for loc, tick in zip(locs, axis.get_major_ticks(len(locs)), strict=True):
        for label in (tick.label1, tick.label2):
            if label.get_visible() and label.get_text() and lo - span <= loc <= hi + span:
                yield label


def _texts(ax: Axes) -> Iterable[Text]:
    if ax.xaxis.get_visible():
        yield from _tick_labels(ax, "x")
    if ax.yaxis.get_visible():
        yield from _tick_labels(ax, "y")
    yield from (t for t in ax.texts if t.get_text())
    yield from (t for t in (ax.xaxis.label, ax.yaxis.label, ax.title) if t.get_text())


def _all_texts(fig: Figure | SubFigure) -> Iterable[Text]:
    for ax in fig.axes:
        yield from _texts(ax)
    for sub in fig.subfigs:
        yield from _all_texts(sub)
    if fig._suptitle is not None and fig._suptitle.get_text():
        yield fig._suptitle


def _overlapping(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of visible texts anywhere in the figure (tick labels, axis labels, titles,
    annotations, panel titles) whose boxes overlap."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    texts = list({id(t): t for t in _all_texts(fig) if t.get_visible()}.values())
    boxes = [t.get_window_extent(renderer).shrunk(0.98, 0.9) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text())
            for i in range(len(texts)) for j in range(i + 1, len(texts))
            if boxes[i].overlaps(boxes[j])]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure(bfd: Run, name: str, tmp_path: Path) -> None:
    fig = FIGURES[name](bfd)
    assert isinstance(fig, Figure)
    assert fig.get_suptitle()
    labels = [ax.get_xlabel() for ax in fig.get_axes() if ax.get_xlabel()]
    if name in TIME_AXES:
        assert labels and all(label.endswith(("(s)", "(ms)")) for label in labels), labels
    assert _overlapping(fig) == []
    path = save_figure(fig, tmp_path / f"{name}.png")
    with Image.open(path) as image:
        assert image.size[0] == 1000


def test_time_units(bfd: Run) -> None:
    assert timeline(bfd).get_axes()[1].get_xlabel() == "time since trial start (s)"
    zoom = timeline(bfd, around=bfd.fault_events[0], window_s=3).get_axes()[1]
    assert zoom.get_xlabel() == "time from node-crash nyc-k8s-n1 (ms)"
    assert zoom.get_xlim() == pytest.approx((-750.0, 2250.0))
    assert TimeAxis(0, 6_000_000_000, "x").unit == "s"


def test_site_palette_is_fixed_and_sorted(bfd: Run, isolate: Run) -> None:
    colors = site_colors(["sin", "nyc", "ams"])
    assert colors == {"ams": SITE_PALETTE[0], "nyc": SITE_PALETTE[1], "sin": SITE_PALETTE[2]}
    assert site_colors(bfd.sites) == site_colors(isolate.sites) == colors
    shades = node_colors(bfd.node_sites, bfd.sites)
    assert len(set(shades.values())) == 12


def _image_colors(fig: Figure) -> list[str]:
    (image,) = [a for ax in fig.get_axes() for a in ax.get_children()
                if isinstance(a, AxesImage)]
    cmap = image.get_cmap()
    return [to_hex(cmap(i)) for i in range(cmap.N)]


def test_same_site_colours_in_every_figure(isolate: Run) -> None:
    colors = site_colors(isolate.sites)
    assert _image_colors(timeline(isolate))[:3] == [colors[s] for s in isolate.sites]
    assert _image_colors(timeline(isolate))[3] == LOST_COLOR
    fig = rtt_timeline(isolate)
    used = {to_hex(c) for ax in fig.get_axes() for a in ax.collections
            if isinstance(a, PathCollection) for c in a.get_facecolors()}
    assert used == {colors["ams"], colors["nyc"], colors["sin"]}
    cdf = rtt_cdf(isolate)
    us = next(ax for ax in cdf.get_axes() if ax.get_title(loc="left") == "us-c1")
    assert [to_hex(line.get_color()) for line in us.get_lines()] == [colors["nyc"],
                                                                      colors["ams"]]


def test_timeline_marks_loss_and_site(isolate: Run) -> None:
    fig = timeline(isolate)
    image = next(a for ax in fig.get_axes() for a in ax.get_children()
                 if isinstance(a, AxesImage))
    codes = np.asarray(image.get_array())
    assert (codes == 3).any()  # lost (after the three sites)
    rows_us = codes[:4]  # us-c1 and us-c2, two flows each
    assert {0, 1, 3} <= set(np.unique(rows_us)) <= {0, 1, 3, 5}  # ams, nyc, lost, some loss


def test_lane_raster_buckets(tmp_path: Path) -> None:
    """Majority site per bucket; lost when half or more of a bucket was lost; a single lost
    probe still shows (some loss); sub-interval buckets are filled, not left blank."""
    run = load_run(write_run(tmp_path / "r", [
        lane("c1", count=1000, lost=[*range(100, 200), 500], sites={700: "ams"})], []))
    raster = lane_raster(run.probes, T0, T0 + 1000 * MS, 10, run.interval_ns)
    names = dict(enumerate(raster.names))
    names.update({raster.lost_code: "lost", raster.partial_code: "some",
                  raster.nodata_code: "none"})
    assert [names[c] for c in raster.codes[0]] == [
        "nyc", "lost", "nyc", "nyc", "nyc", "some", "nyc", "ams", "ams", "ams"]
    fine = lane_raster(run.probes, T0, T0 + 10 * MS, 40, run.interval_ns)
    assert fine.codes.shape == (1, 10)  # never finer than the probe interval
    sparse = lane_raster(run.probes.iloc[::2], T0, T0 + 20 * MS, 20, run.interval_ns)
    assert raster.nodata_code not in sparse.codes[0][1:]


def test_compare(tmp_path: Path) -> None:
    runs = load_runs([SAMPLE_BFD, SAMPLE_HOLD])
    fig = compare_outages(runs)
    (ax,) = fig.get_axes()
    assert ax.get_ylabel() == "outage (longest loss window) (s)"
    assert [t.get_text() for t in ax.get_xticklabels()] == runs[0].clients
    assert _overlapping(fig) == []
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["node-crash-bfd (1 trial)", "node-crash-hold (3 trials)"]
    fig = compare_outages(runs, metric="tcp_broken", labels=["BFD", "hold timer"])
    assert fig.get_axes()[0].get_ylabel() == "TCP flows broken"
    save_figure(fig, tmp_path / "compare.svg")
    assert (tmp_path / "compare.svg").read_text().startswith("<?xml")


def test_empty_cases(tmp_path: Path) -> None:
    root = write_run(tmp_path / "r", [lane("c1", count=500)],
                     [runner("trial_start", T0), runner("trial_end", T0 + 500 * MS)])
    run = load_run(root)
    assert "no fault" in rtt_cdf(run).get_axes()[0].texts[0].get_text()
    assert "no FIB change" in control_plane(run).get_axes()[0].texts[0].get_text()
    assert "no injector action" in timeline_zooms(run).get_axes()[0].texts[0].get_text()
    assert timeline(run).get_suptitle()


def test_many_actions_keep_labels_apart(tmp_path: Path) -> None:
    events = [runner("trial_start", T0)]
    for k in range(4):  # a flapping link: four faults and undos within 2 s
        events += [injector("fault", T0 + (1000 + 500 * k) * MS, fault="link-flap",
                            target="a--b"),
                   injector("undo", T0 + (1200 + 500 * k) * MS, fault="link-flap",
                            target="a--b")]
    events.append(runner("trial_end", T0 + 4000 * MS))
    run = load_run(write_run(tmp_path / "r", [lane("c1", count=4000)], events))
    fig = timeline(run)
    assert _overlapping(fig) == []
    assert len(timeline_zooms(run).subfigs) == 8


def test_bad_color_by(bfd: Run) -> None:
    with pytest.raises(ValueError, match="color_by"):
        timeline(bfd, color_by="pod")


def test_the_overlap_check_sees_collisions() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "one")
    ax.text(0.5, 0.5, "two")
    assert _overlapping(fig) == [("one", "two")]
