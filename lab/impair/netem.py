"""The netem driver: kernel qdiscs on each end's egress, set through pyroute2.

Per direction, on the sending interface: ``netem`` as root (handle 1:) for
delay, jitter, loss and blackhole (100 % loss), and ``tbf`` below it (parent
1:1, handle 2:) when a rate is set. pyroute2's netem plugin cannot express
delay distributions or Gilbert-Elliott loss, so the netem request is built
here from the kernel's TCA_NETEM_* layout and sent as one netlink message;
tbf goes through ``IPRoute.tc``.

Same semantics as the emulator: jitter is a standard deviation (the uniform
table is widened by sqrt(3) to match), and without ``reorder`` a jittered
link keeps frame order through netem's rate mode at a rate too high to shape
(netem then times each frame from its predecessor's departure).
"""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWQDISC, TC_H_ROOT
from pyroute2.netlink.rtnl.tcmsg import tcmsg
from pyroute2.netlink.rtnl.tcmsg.common import tick_in_usec

from lab.errors import ImpairmentError
from lab.impair.model import (
    CLEAN,
    DIRECTIONS,
    Counters,
    Direction,
    DirectionStatus,
    Impairment,
    LinkEnd,
    LinkRequest,
    LinkStatus,
    VethPair,
    check_link_id,
)
from lab.impair.namespaces import (
    RtnlOpener,
    create_veth,
    delete_link,
    ensure_netns,
    remove_netns,
    require_index,
    rtnl,
)
from lab.impair.registry import LinkRecord, Registry

NETEM_HANDLE = 0x10000  # 1:
NETEM_CLASS = 0x10001  # 1:1, where netem takes its child qdisc
TBF_HANDLE = 0x20000  # 2:
U32_MAX = 2**32 - 1
DIST_SCALE = 8192  # NETEM_DIST_SCALE: table entries are z * 8192
DIST_SIZE = 4096
FIFO_RATE = U32_MAX  # bytes/s: rate mode for ordering, ~0.4 ns per 1500-byte frame
_ENOENT, _EINVAL = 2, 22


class NetemQdiscMsg(tcmsg):  # type: ignore[misc]
    """RTM_NEWQDISC for netem with every option this driver uses."""

    nla_map = (
        ("TCA_UNSPEC", "none"),
        ("TCA_KIND", "asciiz"),
        ("TCA_OPTIONS", "netem_options"),
    )

    class netem_options(nla):  # type: ignore[misc]
        # struct tc_netem_qopt, then nested attributes
        fields = (("delay", "I"), ("limit", "I"), ("loss", "I"), ("gap", "I"),
                  ("duplicate", "I"), ("jitter", "I"))
        nla_map = (
            (2, "TCA_NETEM_DELAY_DIST", "cdata"),
            (5, "TCA_NETEM_LOSS", "netem_loss"),
            (6, "TCA_NETEM_RATE", "netem_rate"),
            (10, "TCA_NETEM_LATENCY64", "int64"),
            (11, "TCA_NETEM_JITTER64", "int64"),
        )

        class netem_loss(nla):  # type: ignore[misc]
            nla_map = ((2, "NETEM_LOSS_GE", "netem_gemodel"),)

            class netem_gemodel(nla):  # type: ignore[misc]
                fields = (("p", "I"), ("r", "I"), ("h", "I"), ("k1", "I"))

        class netem_rate(nla):  # type: ignore[misc]
            fields = (("rate", "I"), ("packet_overhead", "i"), ("cell_size", "I"),
                      ("cell_overhead", "i"))


def pct_to_u32(pct: float) -> int:
    """Kernel probability: 0 % -> 0, 100 % -> 2**32-1 (as tc does)."""
    return min(U32_MAX, max(0, int(U32_MAX * pct / 100.0)))


# Pareto as iproute2 builds its table: shape 3, (x - 1.5) * 4/3, clipped at 4.
# Its exact mean and sd, to present it (like every distribution) with sd = jitter.
PARETO_MEAN = -8.0 / 243.0
PARETO_SD = math.sqrt((16.0 / 9.0) * (23.0 / 9.0 - (1.5 - 2.0 / 81.0) ** 2))


@functools.cache
def dist_table(kind: str) -> bytes:
    """A netem delay distribution table: s16 array of z * 8192, clipped at +-4."""
    values = []
    normal = NormalDist()
    for i in range(DIST_SIZE):
        u = (i + 0.5) / DIST_SIZE
        if kind == "normal":
            z = normal.inv_cdf(u)
        elif kind == "pareto":
            z = ((1.0 - u) ** (-1.0 / 3.0) - 1.5) * (4.0 / 3.0)
        else:
            raise ImpairmentError(f"no netem table for {kind!r}")
        values.append(max(-32768, min(32767, round(z * DIST_SCALE))))
    return b"".join(v.to_bytes(2, "little", signed=True) for v in values)


def netem_delay_jitter(imp: Impairment) -> tuple[int, int]:
    """netem's (latency, sigma) in ns giving mean delay_ms and sd jitter_ms."""
    delay, jitter = imp.delay_ms * 1e6, imp.jitter_ms * 1e6
    if not jitter:
        return round(delay), 0
    if imp.jitter_distribution == "uniform":  # netem's uniform spans +-sigma
        return round(delay), round(jitter * math.sqrt(3.0))
    if imp.jitter_distribution == "pareto":
        sigma = jitter / PARETO_SD
        return round(delay - PARETO_MEAN * sigma), round(sigma)
    return round(delay), round(jitter)


def netem_options(imp: Impairment) -> dict[str, Any]:
    """TCA_OPTIONS of the netem qdisc for ``imp`` (see the module docstring)."""
    delay_ns, jitter_ns = netem_delay_jitter(imp)
    attrs: list[list[Any]] = []
    if jitter_ns and imp.jitter_distribution != "uniform":  # no table: netem is uniform
        attrs.append(["TCA_NETEM_DELAY_DIST", dist_table(imp.jitter_distribution)])
    loss = U32_MAX if imp.blackhole else pct_to_u32(imp.loss_pct)
    if imp.gilbert is not None and not imp.blackhole:
        ge = imp.gilbert
        attrs.append(["TCA_NETEM_LOSS", {"attrs": [["NETEM_LOSS_GE", {
            "p": pct_to_u32(ge.p_pct), "r": pct_to_u32(ge.r_pct),
            "h": pct_to_u32(100.0 - ge.loss_bad_pct), "k1": pct_to_u32(ge.loss_good_pct),
        }]]}])
    if jitter_ns and not imp.reorder:
        attrs.append(["TCA_NETEM_RATE", {"rate": FIFO_RATE, "packet_overhead": 0,
                                         "cell_size": 0, "cell_overhead": 0}])
    attrs.append(["TCA_NETEM_LATENCY64", delay_ns])
    attrs.append(["TCA_NETEM_JITTER64", jitter_ns])
    return {
        "delay": min(U32_MAX, round(delay_ns / 1000 * tick_in_usec)),
        "limit": imp.queue_limit,
        "loss": loss,
        "gap": 0,
        "duplicate": 0,
        "jitter": min(U32_MAX, round(jitter_ns / 1000 * tick_in_usec)),
        "attrs": attrs,
    }


def netem_request(index: int, imp: Impairment) -> NetemQdiscMsg:
    """The RTM_NEWQDISC (create or replace) putting netem at the root of ``index``."""
    msg = NetemQdiscMsg()
    msg["family"] = 0
    msg["index"] = index
    msg["handle"] = NETEM_HANDLE
    msg["parent"] = TC_H_ROOT
    msg["attrs"] = [["TCA_KIND", "netem"], ["TCA_OPTIONS", netem_options(imp)]]
    msg["header"]["type"] = RTM_NEWQDISC
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return msg


def tbf_arguments(imp: Impairment, mtu: int) -> dict[str, Any]:
    """Keyword arguments of ``IPRoute.tc("replace", "tbf", ...)`` for the rate."""
    if imp.rate_bps is None:
        raise ImpairmentError("tbf needs a rate")
    frame = mtu + 18  # Ethernet header and one VLAN tag
    return {
        "parent": NETEM_CLASS,
        "handle": TBF_HANDLE,
        "rate": f"{imp.rate_bps}bit",
        "burst": max(2 * frame, imp.rate_bps // 8 // 250),  # >= 4 ms at HZ 250
        "latency": max(1, round(imp.queue_ms * 1000)),  # microseconds
    }


def apply_impairment(ipr: Any, index: int, imp: Impairment, mtu: int) -> None:
    """Install or change the qdiscs of one direction on interface ``index``."""
    try:
        tuple(ipr.nlm_request_batch([netem_request(index, imp)]))
        if imp.rate_bps is not None:
            ipr.tc("replace", "tbf", index, **tbf_arguments(imp, mtu))
        else:
            try:
                ipr.tc("del", index=index, parent=NETEM_CLASS, handle=TBF_HANDLE)
            except NetlinkError as exc:
                if exc.code not in (_ENOENT, _EINVAL):
                    raise
    except NetlinkError as exc:
        raise ImpairmentError(f"tc on interface {index} failed: {exc}") from exc


def _qdisc_stats(msg: Any) -> tuple[int, int, int, int]:
    """(packets, bytes, drops, qlen) of a qdisc dump message."""
    stats = msg.get_attr("TCA_STATS2")
    if stats is not None:
        basic = stats.get_attr("TCA_STATS_BASIC") or {}
        queue = stats.get_attr("TCA_STATS_QUEUE") or {}
        return (int(basic.get("packets", 0)), int(basic.get("bytes", 0)),
                int(queue.get("drops", 0)), int(queue.get("qlen", 0)))
    old = msg.get_attr("TCA_STATS") or {}
    return (int(old.get("packets", 0)), int(old.get("bytes", 0)), int(old.get("drop", 0)),
            int(old.get("qlen", 0)))


def read_counters(ipr: Any, index: int, imp: Impairment) -> Counters:
    """Counters from the qdisc statistics: netem drops are loss (or blackhole),
    tbf drops are queue drops. Changing blackhole reattributes earlier drops."""
    by_handle = {int(m["handle"]): _qdisc_stats(m) for m in ipr.get_qdiscs(index)}
    netem = by_handle.get(NETEM_HANDLE, (0, 0, 0, 0))
    tbf = by_handle.get(TBF_HANDLE)
    sent = tbf if tbf is not None else netem
    return Counters(
        forwarded=sent[0], forwarded_bytes=sent[1],
        dropped_loss=0 if imp.blackhole else netem[2],
        dropped_blackhole=netem[2] if imp.blackhole else 0,
        dropped_queue=tbf[2] if tbf is not None else 0,
        in_queue=netem[3] + (tbf[3] if tbf is not None else 0),
    )


_available: dict[str, bool] = {}


def netem_available(scratch_netns: str | None = None) -> bool:
    """Whether this kernel runs sch_netem, probed once per process in a scratch namespace."""
    if "result" not in _available:
        name = scratch_netns or f"anylab-probe-{secrets.token_hex(4)}"
        created = ensure_netns(name)
        try:
            with rtnl(name) as ipr:
                tuple(ipr.nlm_request_batch([netem_request(1, CLEAN)]))  # 1: lo
            _available["result"] = True
        except (NetlinkError, ImpairmentError):
            _available["result"] = False
        finally:
            if created:
                remove_netns(name)
    return _available["result"]


class NetemDriver:
    """ImpairmentDriver on kernel qdiscs; one plain veth pair per link."""

    kind = "netem"

    def __init__(self, lab: str, state_dir: Path, *, opener: RtnlOpener = rtnl) -> None:
        self.lab = lab
        self._open = opener
        self._registry = Registry(Path(state_dir).resolve() / "impair" / "links.json",
                                  self.kind)

    def link_veths(self, link_id: str, a: LinkEnd, b: LinkEnd, mtu: int = 1500
                   ) -> list[VethPair]:
        check_link_id(link_id)
        return [VethPair(a.netns, a.ifname, b.netns, b.ifname, mtu, offloads_off=False)]

    def add_link(self, link_id: str, a: LinkEnd, b: LinkEnd, a_to_b: Impairment,
                 b_to_a: Impairment, mtu: int = 1500) -> None:
        record, = self._registry.new_records([LinkRequest(link_id, a, b, a_to_b, b_to_a, mtu)])
        create_veth(a.netns, a.ifname, b.netns, b.ifname, mtu, opener=self._open)
        try:
            self._start(record)
        except BaseException:
            delete_link(a.netns, a.ifname, opener=self._open)
            raise

    def adopt_links(self, links: Sequence[LinkRequest]) -> None:
        self._start(*self._registry.new_records(links))

    def _start(self, *records: LinkRecord) -> None:
        for record in records:
            self._apply(record.a, record.a_to_b, record.mtu)
            self._apply(record.b, record.b_to_a, record.mtu)
        self._registry.put(*records)

    def _apply(self, end: LinkEnd, imp: Impairment, mtu: int) -> None:
        with self._open(end.netns) as ipr:
            apply_impairment(ipr, require_index(ipr, end.ifname, end.netns), imp, mtu)

    def set(self, link_id: str, direction: Direction, imp: Impairment) -> None:
        if direction not in DIRECTIONS:
            raise ImpairmentError(f"direction must be one of {', '.join(DIRECTIONS)}")
        record = self._registry.get(link_id)
        if direction in ("a_to_b", "both"):
            self._apply(record.a, imp, record.mtu)
        if direction in ("b_to_a", "both"):
            self._apply(record.b, imp, record.mtu)
        self._registry.put(record.with_settings(direction, imp))

    def _counters(self, end: LinkEnd, imp: Impairment) -> Counters:
        with self._open(end.netns) as ipr:
            return read_counters(ipr, require_index(ipr, end.ifname, end.netns), imp)

    def get(self, link_id: str) -> LinkStatus:
        r = self._registry.get(link_id)
        return LinkStatus(
            link_id=link_id, a=r.a, b=r.b, mtu=r.mtu, driver=self.kind,
            a_to_b=DirectionStatus(r.a_to_b, self._counters(r.a, r.a_to_b)),
            b_to_a=DirectionStatus(r.b_to_a, self._counters(r.b, r.b_to_a)),
        )

    def link_ids(self) -> list[str]:
        return sorted(self._registry.links)

    def remove_link(self, link_id: str) -> None:
        record = self._registry.get(link_id)
        delete_link(record.a.netns, record.a.ifname, opener=self._open)
        self._registry.drop(link_id)

    def detach(self) -> None:
        """Nothing to release: the qdiscs live in the kernel."""

    def close(self) -> None:
        for link_id in self.link_ids():
            self.remove_link(link_id)
        self._registry.remove_file()
