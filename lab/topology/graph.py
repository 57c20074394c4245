"""Draw a lab plan as a README picture: sites, fabrics, clusters, WAN, clients, services.

The layout is computed here, so a plan always gives the same picture: sites side by side (two
tiers around the WAN when there are many), transits by the sites they serve, clients above.
Rows too crowded to label collapse into one box ("32 nodes"). Units are inches from the top
left corner (y < 0 below it) and fonts are points, so text keeps its size at any scale.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch, PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextPath

from lab.plan.model import ClusterPlan, LabPlan, LinkKind, LinkPlan, Role, SitePlan

DPI = 150
FONT = 8.0
MARGIN = 0.35
SITE_GAP = 0.35
MIN_WIDTH, MAX_WIDTH = 8.0, 13.5  # inches; wider topologies collapse rows, wrap sites
MIN_SITE_W = 3.0
SITE_H = 3.45
TIER_LIMIT = 5  # more sites than this: two tiers of sites, above and below the WAN
ROWS = {False: {"spine": 0.85, "leaf": 1.8, "node": 2.7},  # depth below the site's top edge
        True: {"node": 1.2, "leaf": 2.1, "spine": 3.0}}  # mirrored: spines face the WAN below
INK, MUTED, SITE_FILL, SITE_EDGE = "#263238", "#607D8B", "#F5F8FA", "#B0BEC5"
ROUND = "round,pad=0,rounding_size=0.08"
DASH = (0, (3, 2))
STYLE = {  # style key (role, or speaker for k8s nodes) -> (legend label, colour, marker)
    "transit": ("transit router", "#7B3294", "h"),
    "spine": ("spine", "#1F4E79", "s"),
    "leaf": ("leaf", "#2E86C1", "s"),
    "border": ("border leaf", "#D68910", "p"),
    "gobgp": ("k8s node (GoBGP)", "#229954", "o"),
    "frr": ("k8s node (FRR)", "#229954", "D"),
    "client": ("client", "#C0392B", "^"),
}
LINKS = {  # link kind -> (legend label, colour, width, dashed)
    LinkKind.WAN: ("WAN link (one-way delay)", "#7B3294", 2.2, False),
    LinkKind.UPLINK: ("site uplink", "#546E7A", 1.4, False),
    LinkKind.FABRIC: ("fabric / node link", "#A7B4BF", 0.8, False),
    LinkKind.NODE: ("fabric / node link", "#A7B4BF", 0.8, False),
    LinkKind.ACCESS: ("client access", "#C0392B", 1.0, True),
}
Point = tuple[float, float]


@dataclass(frozen=True)
class Anchor:
    """Where links attach: a marker (w == 0) or a box (a transit, a collapsed group)."""

    x: float
    y: float
    w: float = 0.0
    h: float = 0.0

    def end_toward(self, other: Anchor) -> Point:
        if self.w == 0:
            return self.x, self.y
        half = max(self.w / 2 - 0.12, 0.0)
        x = min(max(other.x, self.x - half), self.x + half)
        return x, self.y + (self.h / 2 if other.y > self.y else -self.h / 2)


def draw_topology(plan: LabPlan, out: Path, title: str | None = None) -> Path:
    """Write a picture of the plan to ``out`` (.png or .svg, by suffix) and return ``out``."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"{out}: the picture must be a .png or .svg file")
    fig = Figure(dpi=DPI)
    FigureCanvasAgg(fig)  # Agg, never a display
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    width, height = _Picture(plan, ax).draw(title)
    fig.set_size_inches(width, height)
    ax.set_xlim(0.0, width)
    ax.set_ylim(-height, 0.0)
    with matplotlib.rc_context({"svg.hashsalt": "anycast-lab", "svg.fonttype": "none"}):
        fig.savefig(out, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else {})
    return out


@lru_cache(maxsize=4096)
def _text_w(text: str, size: float = FONT, bold: bool = False) -> float:
    """Width in inches of the widest line of ``text``."""
    prop = FontProperties(weight="bold" if bold else "normal")
    widths = [TextPath((0, 0), line, size=size, prop=prop).get_extents().width
              for line in text.split("\n") if line.strip()]
    return max(widths, default=0.0) / 72


def _pitch(labels: Sequence[str]) -> float:
    return max(0.34, max((_text_w(label) for label in labels), default=0.0) + 0.16)


def _ms(value: float) -> str:
    return f"{value:g} ms"


def _spread(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * (i + 0.5) / n for i in range(n)]


def _spread_out(wanted: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """Keep each x near where it is wanted but at least ``gap`` apart, inside [lo, hi]."""
    if len(wanted) > 1:
        gap = min(gap, (hi - lo) / (len(wanted) - 1))
    xs = list(wanted)
    for i in range(len(xs)):
        xs[i] = max(xs[i], lo if i == 0 else xs[i - 1] + gap)
    for i in reversed(range(len(xs))):
        xs[i] = min(xs[i], hi if i == len(xs) - 1 else xs[i + 1] - gap)
    return xs


def _natural_width(plan: LabPlan, site: SitePlan) -> float:
    """Width a site needs to show every router and node with its full name."""
    nodes = [n for c in site.clusters for n in plan.cluster(c).nodes]
    rows = [len(site.spines) * _pitch(site.spines),
            len(site.leafs + site.borders) * _pitch(site.leafs + site.borders),
            (len(nodes) + 0.6 * (len(site.clusters) - 1)) * _pitch(nodes)]
    return max(rows) + 0.3


class _Picture:
    def __init__(self, plan: LabPlan, ax: Axes) -> None:
        self.plan, self.ax = plan, ax
        self.anchors: dict[str, Anchor] = {}
        self.taken: list[tuple[float, float, float, float]] = []  # x, y, w, h of placed tags
        count = len(plan.sites)
        self.tiers = 1 if count <= TIER_LIMIT else 2
        per_row = math.ceil(count / self.tiers)
        fixed = (per_row - 1) * SITE_GAP + 2 * MARGIN  # the width that is not sites
        natural = max(max(_natural_width(plan, s) for s in plan.sites), MIN_SITE_W)
        self.site_w = max(min(natural, (MAX_WIDTH - fixed) / per_row),
                          (MIN_WIDTH - fixed) / per_row, 1.9)  # 1.9: a box still fits "32 nodes"
        self.width = per_row * self.site_w + fixed
        self.site_x: dict[str, tuple[int, float]] = {}  # site -> (tier, left edge)
        for index, site in enumerate(plan.sites):
            tier, column = divmod(index, per_row)
            in_row = min(per_row, count - tier * per_row)
            left = (self.width - in_row * (self.site_w + SITE_GAP) + SITE_GAP) / 2
            self.site_x[site.name] = (tier, left + column * (self.site_w + SITE_GAP))
        self.clients: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for link in plan.links:
            if link.kind is LinkKind.ACCESS:
                self.clients[link.a.node].append((link.b.node, link.impairment.delay_ms))
        self.transits = [n.name for n in plan.nodes_with_role(Role.TRANSIT)]
        self.fold = self.tiers > 1  # clients counted inside the transit boxes, not drawn
        self.tx, self.trow = self._transit_positions()
        if not self.fold and any(len(c) * 0.6 > self._room(t) for t, c in self.clients.items()):
            self.fold = True
            self.tx, self.trow = self._transit_positions()

    def draw(self, title: str | None) -> tuple[float, float]:
        y = self._title(title)
        arcs = [self._arc(row) for row in (0, 1)]
        if self.tiers == 1:
            if not self.fold and self.clients:
                self._clients(y - 0.3)
                y -= 1.05
            ty = [y - arcs[0] - 0.45] * 2
            y = ty[0] - 1.25
        else:
            y = self._site_tier(0, y - 0.1) - max(1.1, arcs[0] + 0.65)
            ty = [y, y - 1.2 if 1 in self.trow.values() else y]
            y = ty[1] - max(1.1, arcs[1] + 0.65)
        self._transit_rows(ty, ty[0] + arcs[0] + 0.42, ty[1] - arcs[1] - 0.42)
        y = self._site_tier(self.tiers - 1, y)
        self._wan()
        self._links()
        return self.width, -self._footer(y - 0.3) + 0.2

    def _room(self, transit: str) -> float:
        """Horizontal room around a transit: most of the way to its nearest neighbour."""
        others = [abs(x - self.tx[transit]) for t, x in self.tx.items() if t != transit]
        return min(others, default=self.width / 2) * 0.8

    def _transit_positions(self) -> tuple[dict[str, float], dict[str, int]]:
        """Each transit by the middle of the sites it serves, in the row of their tier."""
        wanted: dict[str, float] = {}
        rows: dict[str, int] = {}
        for name in self.transits:
            homes = [self.site_x[s.name] for s in self.plan.sites if name in s.transits]
            rows[name] = homes[0][0] if homes else 0
            wanted[name] = (sum(x + self.site_w / 2 for _, x in homes) / len(homes)
                            if homes else self.width)
        half = max(self._pill(t)[0] for t in self.transits) / 2
        xs: dict[str, float] = {}
        for row in (0, 1):
            order = sorted((t for t in self.transits if rows[t] == row),
                           key=lambda t: (wanted[t], self.transits.index(t)))
            spread = _spread_out([wanted[t] for t in order], 2 * half + 0.6,
                                 MARGIN + 0.3 + half, self.width - MARGIN - half)
            xs.update(zip(order, spread, strict=True))
        return xs, rows

    def _pill(self, name: str) -> tuple[float, list[str]]:
        """A transit box's width and the lines under its name (location, folded clients)."""
        lines = [self.plan.node(name).location or ""]
        delays = sorted({delay for _, delay in self.clients.get(name, [])})
        if self.fold and delays:
            count = len(self.clients[name])
            span = _ms(delays[0]) if len(delays) == 1 else f"{delays[0]:g}-{_ms(delays[-1])}"
            lines.append(f"{count} client{'s' * (count > 1)} · {span}")
        lines = [line for line in lines if line]
        return max([_text_w(name, 9, True)] + [_text_w(t, 7.5) for t in lines]) + 0.3, lines

    def _spans(self) -> list[tuple[str, str, str, int]]:
        """WAN links as (a, b, label, span): span counts steps along a row, 0 across rows; the
        label is the delay, and the one family a link carries in a dual-stack lab."""
        index = {t: i for row in (0, 1) for i, t in enumerate(self._row_order(row))}
        dual = len(self.plan.families) > 1

        def label(link: LinkPlan) -> str:
            parts = [_ms(link.impairment.delay_ms)] if link.impairment.delay_ms else []
            if dual and len(link.families) == 1:
                parts.append("IPv4 only" if link.families[0] == "ipv4" else "IPv6 only")
            return ", ".join(parts)

        return [(k.a.node, k.b.node, label(k),
                 abs(index[k.a.node] - index[k.b.node])
                 if self.trow[k.a.node] == self.trow[k.b.node] else 0)
                for k in self.plan.links if k.kind is LinkKind.WAN and k.a.node != k.b.node]

    def _row_order(self, row: int) -> list[str]:
        return sorted((t for t in self.transits if self.trow[t] == row), key=self.tx.__getitem__)

    def _arc(self, row: int, span: int | None = None) -> float:
        """How far a WAN arc bulges (row 0 up, row 1 down); by default a row's widest."""
        if span is None:
            span = max((s for a, _, _, s in self._spans() if self.trow[a] == row), default=1)
        return 0.0 if span <= 1 else 0.35 + 0.2 * (span - 2)

    def _title(self, title: str | None) -> float:
        plan, roles = self.plan, Counter(n.role for n in self.plan.nodes)
        self.ax.text(MARGIN, -0.2, title or f"anycast lab: {plan.topology}", fontsize=15,
                     fontweight="bold", color=INK, va="top")
        counts = {"site": len(plan.sites), "transit": roles[Role.TRANSIT],
                  "fabric router": roles[Role.SPINE] + roles[Role.LEAF] + roles[Role.BORDER],
                  "k8s node": roles[Role.K8S_NODE], "pod": len(plan.pods()),
                  "client": roles[Role.CLIENT], "anycast service": len(plan.services)}
        summary = " · ".join(f"{n} {what}{'s' * (n != 1)}" for what, n in counts.items())
        self.ax.text(MARGIN, -0.6, summary, fontsize=9, color=MUTED, va="top")
        return -0.9

    def _box(self, x: float, y: float, w: float, h: float, **style: Any) -> None:
        """A rounded box centred on (x, y)."""
        style = {"boxstyle": ROUND, **style}
        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, **style))

    def _tag(self, points: Sequence[Point], text: str, colour: str) -> None:
        """Label a link at the first candidate point where it overlaps no other label."""
        w, h = _text_w(text, 7.5) + 0.12, 0.2

        def free(x: float, y: float) -> bool:
            return all(abs(x - ox) * 2 >= w + ow or abs(y - oy) * 2 >= h + oh
                       for ox, oy, ow, oh in self.taken)

        x, y = next((p for p in points if free(*p)), points[0])
        self.taken.append((x, y, w, h))
        self.ax.text(x, y, text, fontsize=7.5, color=colour, ha="center", va="center", zorder=7,
                     bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})

    def _marker(self, name: str, key: str, x: float, y: float, label: str,
                above: bool = False) -> None:
        _, colour, marker = STYLE[key]
        self.ax.plot([x], [y], marker=marker, ms=8 if key == "client" else 9, color=colour,
                     mec="white", mew=0.8, ls="none", zorder=5)
        self.ax.text(x, y + (0.11 if above else -0.11), label, fontsize=FONT, color=INK,
                     ha="center", va="bottom" if above else "top", zorder=6,
                     bbox={"boxstyle": "round,pad=0.08", "ec": "none", "alpha": 0.85,
                           "fc": "white" if key == "client" else SITE_FILL})
        self.anchors[name] = Anchor(x, y)

    def _group(self, names: Sequence[str], key: str, x: float, y: float, w: float,
               text: str) -> None:
        """One box standing for many nodes of a role: links to any of them end on it."""
        colour = STYLE[key][1]
        h = 0.36 + 0.14 * text.count("\n")
        self._box(x, y, w, h, fc=(*to_rgb(colour), 0.14), ec=colour, lw=1.2, zorder=4)
        size = min(FONT, FONT * (w - 0.12) / max(_text_w(text, bold=True), 0.01))
        self.ax.text(x, y, text, fontsize=size, color=colour, fontweight="bold", ha="center",
                     va="center", zorder=6, linespacing=1.3)
        for name in names:
            self.anchors[name] = Anchor(x, y, w, h)

    def _transit_rows(self, ty: Sequence[float], top: float, bottom: float) -> None:
        colour = STYLE["transit"][1]
        self._box(self.width / 2, (top + bottom) / 2, self.width - 2 * MARGIN, top - bottom,
                  fc="#F4EFF8", ec="none", zorder=0)
        self.ax.text(MARGIN + 0.1, (top + bottom) / 2, "WAN", rotation=90, fontsize=8,
                     fontweight="bold", color=colour, alpha=0.6, va="center")
        for name, x in self.tx.items():
            (w, lines), y = self._pill(name), ty[self.trow[name]]
            h = 0.3 + 0.15 * len(lines)
            self._box(x, y, w, h, fc=colour, ec="white", lw=1.0, zorder=5)
            for i, line in enumerate([name, *lines]):
                self.ax.text(x, y + h / 2 - 0.08 - 0.15 * i - 0.03 * (i > 0), line,
                             color="white", fontsize=7.5 if i else 9, ha="center", va="top",
                             fontweight="normal" if i else "bold", zorder=6)
            self.anchors[name] = Anchor(x, y, w, h)
            self.taken.append((x, y, w, h))

    def _clients(self, y: float) -> None:
        for transit, clients in self.clients.items():
            step = min(0.85, self._room(transit) / len(clients))
            for i, (name, _) in enumerate(clients):
                x = self.tx[transit] + (i - (len(clients) - 1) / 2) * step
                self._marker(name, "client", x, y, name, above=True)

    def _site_tier(self, tier: int, top: float) -> float:
        for site in self.plan.sites:
            if self.site_x[site.name][0] == tier:
                self._site(site, self.site_x[site.name][1], top, self.tiers == 2 and tier == 0)
        return top - SITE_H

    def _site(self, site: SitePlan, x0: float, top: float, mirrored: bool) -> None:
        self._box(x0 + self.site_w / 2, top - SITE_H / 2, self.site_w, SITE_H, fc=SITE_FILL,
                  ec=SITE_EDGE, lw=1.2, zorder=0, boxstyle="round,pad=0,rounding_size=0.15")
        self.ax.text(x0 + 0.14, top - 0.12, site.name, fontsize=11, fontweight="bold",
                     color=INK, va="top", zorder=6)
        self.ax.text(x0 + 0.14, top - 0.34, site.location or "", fontsize=8, color=MUTED,
                     va="top", zorder=6)
        rows = ROWS[mirrored]
        lo, hi = x0 + 0.15, x0 + self.site_w - 0.15
        split = hi - (hi - lo) * len(site.borders) / len(site.leafs + site.borders)
        self._row(site.spines, "spine", top - rows["spine"], lo, split, site.name)
        self._row(site.leafs, "leaf", top - rows["leaf"], lo, split, site.name)
        if site.borders:
            self._row(site.borders, "border", top - rows["leaf"], split, hi, site.name)
        self._cluster_row(site, top - rows["node"], lo, hi, mirrored)

    def _row(self, names: Sequence[str], key: str, y: float, lo: float, hi: float,
             prefix: str) -> None:
        for labels in (list(names), [n.removeprefix(f"{prefix}-") for n in names]):
            if len(labels) * _pitch(labels) <= hi - lo + 1e-6:
                for name, label, x in zip(names, labels, _spread(lo, hi, len(names)), strict=True):
                    self._marker(name, key, x, y, label)
                return
        noun = {"spine": "spines", "leaf": "leafs", "border": "border leafs"}[key]
        self._group(names, key, (lo + hi) / 2, y, hi - lo - 0.1, f"{len(names)} {noun}")

    def _cluster_row(self, site: SitePlan, y: float, lo: float, hi: float,
                     mirrored: bool) -> None:
        clusters = [self.plan.cluster(c) for c in site.clusters]
        full = [n for c in clusters for n in c.nodes]
        short = [n.removeprefix(f"{c.name}-") for c in clusters for n in c.nodes]
        units = len(full) + 0.6 * (len(clusters) - 1)
        labels = next((ls for ls in (full, short) if units * _pitch(ls) <= hi - lo + 1e-6), None)
        step = (hi - lo) / (units if labels else max(len(clusters), 1))
        x = lo
        for cluster in clusters:
            width = step * len(cluster.nodes) if labels else step
            caption = self._cluster(cluster, x, width, y, mirrored,
                                    dict(zip(full, labels, strict=True)) if labels else None)
            if _text_w(caption, 7.5) > width:
                caption = caption.replace(" · ", "\n", 1)
            self.ax.text(x + width / 2, y + 0.42 if mirrored else y - 0.42, caption,
                         fontsize=7.5, color=STYLE["gobgp"][1], ha="center", zorder=6,
                         va="bottom" if mirrored else "top", linespacing=1.2)
            x += width + (0.6 * step if labels else 0.0)

    def _cluster(self, cluster: ClusterPlan, x: float, width: float, y: float, mirrored: bool,
                 labels: dict[str, str] | None) -> str:
        """Draw one cluster's nodes (or one box for all of them); return its caption."""
        pods = sum(len(self.plan.node(n).pods) for n in cluster.nodes)
        speaker = {"gobgp": "GoBGP", "frr": "FRR"}[cluster.speaker]
        if labels is None:
            self._group(cluster.nodes, cluster.speaker, x + width / 2, y, width - 0.15,
                        f"{len(cluster.nodes)} nodes\n{pods} pods")
            return f"{cluster.name} · {speaker}"
        colour = STYLE["gobgp"][1]
        self._box(x + width / 2, y + (0.08 if mirrored else -0.08), width - 0.08, 0.52,
                  fc=(*to_rgb(colour), 0.06), ec=colour, ls="--", lw=0.9, zorder=1)
        for name, nx in zip(cluster.nodes, _spread(x, x + width, len(cluster.nodes)),
                            strict=True):
            self._marker(name, cluster.speaker, nx, y, labels[name], above=mirrored)
        return f"{cluster.name} · {speaker} · {pods} pods"

    def _wan(self) -> None:
        _, colour, lw, _ = LINKS[LinkKind.WAN]

        def freedom(link: tuple[str, str, str, int]) -> int:  # label the least free first
            if link[3]:
                return min(link[3], 2) - 1  # along a row: straight, then arcs
            return 2 if abs(self.tx[link[0]] - self.tx[link[1]]) > 0.01 else 0

        for a_name, b_name, text, span in sorted(self._spans(), key=freedom):
            a, b = sorted((self.anchors[a_name], self.anchors[b_name]), key=lambda n: n.x)
            ts, bulge, inset = [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8], 0.0, float(span == 1)
            (x1, y1), (x2, y2) = (a.x + inset * a.w / 2, a.y), (b.x - inset * b.w / 2, b.y)
            if span <= 1:
                self.ax.plot([a.x, b.x], [a.y, b.y], color=colour, lw=lw, zorder=2)
            else:
                sign = 1.0 if self.trow[a_name] == 0 else -1.0
                bulge, y1 = sign * self._arc(0, span), a.y + sign * a.h / 2
                y2 = y1
                path = MplPath([(a.x, y1), ((a.x + b.x) / 2, y1 + 2 * bulge), (b.x, y1)],
                               [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
                self.ax.add_patch(PathPatch(path, fc="none", ec=colour, lw=lw * 0.8, zorder=2))
                xs = [self.tx[t] for t in self._row_order(self.trow[a_name])]
                k = xs.index(a.x) + (span - 1) // 2  # first try over the gap beside the middle
                first = ((xs[k] + xs[k + 1]) / 2 - a.x) / (b.x - a.x)
                ts = [first, 0.5, 1 - first, 0.3, 0.7]
            if text:
                self._tag([(x1 + (x2 - x1) * t, y1 + (y2 - y1) * t + 4 * bulge * t * (1 - t))
                           for t in ts], text, colour)

    def _links(self) -> None:
        drawn: set[tuple[float, ...]] = set()
        tagged: dict[tuple[str, str], list[tuple[Point, Point, float]]] = defaultdict(list)
        for link in self.plan.links:
            if link.kind is LinkKind.WAN or link.b.node not in self.anchors:
                continue  # WAN links are drawn apart; folded clients have no marker
            a, b = self.anchors[link.a.node], self.anchors[link.b.node]
            ends = a.end_toward(b), b.end_toward(a)
            _, colour, lw, dashed = LINKS[link.kind]
            key = tuple(round(v, 3) for end in ends for v in end)
            if key not in drawn:  # links into one collapsed box often coincide
                drawn.add(key)
                self.ax.plot([ends[0][0], ends[1][0]], [ends[0][1], ends[1][1]], color=colour,
                             lw=lw, zorder=2, ls=DASH if dashed else "-")
            if link.impairment.delay_ms and link.kind in (LinkKind.UPLINK, LinkKind.ACCESS):
                group = self.plan.node(link.b.node).site or link.b.node
                tagged[(link.a.node, group)].append((*ends, link.impairment.delay_ms))
        for (_, group), segments in tagged.items():
            colour = LINKS[LinkKind.UPLINK if group in self.site_x else LinkKind.ACCESS][1]
            if len({delay for _, _, delay in segments}) == 1:  # one label for parallel uplinks
                n = len(segments)
                segments = [((sum(s[0][0] for s in segments) / n, segments[0][0][1]),
                             (sum(s[1][0] for s in segments) / n, segments[0][1][1]),
                             segments[0][2])]
            for (x1, y1), (x2, y2), delay in segments:
                self._tag([(x1 + (x2 - x1) * t, y1 + (y2 - y1) * t) for t in (0.4, 0.55, 0.25)],
                          _ms(delay), colour)

    def _footer(self, top: float) -> float:
        """The services box (right) and the legend (left); return the lower edge."""
        services, all_clusters = self.plan.services[:12], {c.name for c in self.plan.clusters}
        name_w = max((len(s.name) for s in services), default=0)
        vips = {s.name: " ".join(str(v) for v in s.vips) for s in services}
        vip_w = max((len(text) for text in vips.values()), default=0)
        lines = [f"{s.name:<{name_w}}  {vips[s.name]:<{vip_w}}  {s.protocol}/{s.port}"
                 + ("" if set(s.clusters) == all_clusters else f"  ({', '.join(s.clusters)})")
                 for s in services]
        lines += [f"... and {len(self.plan.services) - 12} more"] * (len(self.plan.services) > 12)
        common = {"bbox_transform": self.ax.transData, "borderaxespad": 0.0}
        width = height = 0.0
        if lines:
            box = self.ax.legend(
                handles=[Patch(visible=False, label=line) for line in lines], **common,
                loc="upper right", bbox_to_anchor=(self.width - MARGIN, top), handlelength=0,
                handletextpad=0, title="anycast services", alignment="left",
                prop={"family": "DejaVu Sans Mono", "size": FONT}, edgecolor=SITE_EDGE,
                title_fontproperties={"weight": "bold", "size": FONT + 0.5}, framealpha=1.0,
                borderpad=1.0, labelspacing=0.5, fancybox=True)
            self.ax.add_artist(box)
            extent = box.get_window_extent()
            width, height = extent.width / DPI, extent.height / DPI
        present = {(n.speaker or "gobgp") if n.role is Role.K8S_NODE else n.role.value
                   for n in self.plan.nodes} - ({"client"} if self.fold else set())
        kinds = {k.kind for k in self.plan.links} - ({LinkKind.ACCESS} if self.fold else set())
        handles: list[Artist] = [Patch(fc=STYLE["transit"][1], label=STYLE["transit"][0])]
        handles += [Line2D([], [], marker=marker, ls="none", color=colour, ms=8, mec="white",
                           label=label) for key, (label, colour, marker) in STYLE.items()
                    if key in present and key != "transit"]
        handles += [Line2D([], [], color=colour, lw=lw, ls=DASH if dashed else "-", label=label)
                    for label, colour, lw, dashed in dict.fromkeys(
                        style for kind, style in LINKS.items() if kind in kinds)]
        ncol = max(1, min(len(handles), int((self.width - 2 * MARGIN - width - 0.3) // 1.9)))
        legend = self.ax.legend(handles=handles, loc="upper left", ncol=ncol, frameon=False,
                                bbox_to_anchor=(MARGIN, top), fontsize=FONT, columnspacing=1.2,
                                **common)
        return top - max(legend.get_window_extent().height / DPI, height)
