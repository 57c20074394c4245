"""The netem driver's netlink requests, checked against a fake IPRoute (no root)."""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWQDISC
from pyroute2.netlink.rtnl.tcmsg.common import tick_in_usec

from lab.impair import GilbertElliott, Impairment, ImpairmentError, LinkEnd, LinkRequest
from lab.impair.netem import (
    DIST_SCALE,
    FIFO_RATE,
    NETEM_CLASS,
    NETEM_HANDLE,
    PARETO_MEAN,
    PARETO_SD,
    TBF_HANDLE,
    U32_MAX,
    NetemDriver,
    NetemQdiscMsg,
    dist_table,
    netem_delay_jitter,
    netem_options,
    netem_request,
    pct_to_u32,
    tbf_arguments,
)


def _attrs(options: dict[str, Any]) -> dict[str, Any]:
    return {str(name): value for name, value in options["attrs"]}


def test_plain_delay_options() -> None:
    opts = netem_options(Impairment(delay_ms=35.0))
    assert {k: v for k, v in opts.items() if k != "attrs"} == {
        "delay": round(35_000 * tick_in_usec), "limit": 10_000, "loss": 0, "gap": 0,
        "duplicate": 0, "jitter": 0,
    }
    assert opts["attrs"] == [["TCA_NETEM_LATENCY64", 35_000_000], ["TCA_NETEM_JITTER64", 0]]


def test_jitter_without_reorder_uses_rate_mode_for_order() -> None:
    attrs = _attrs(netem_options(Impairment(delay_ms=10.0, jitter_ms=2.0)))
    assert attrs["TCA_NETEM_RATE"] == {"rate": FIFO_RATE, "packet_overhead": 0,
                                       "cell_size": 0, "cell_overhead": 0}
    assert attrs["TCA_NETEM_DELAY_DIST"] == dist_table("normal")
    assert attrs["TCA_NETEM_JITTER64"] == 2_000_000
    reordering = _attrs(netem_options(Impairment(delay_ms=10.0, jitter_ms=2.0, reorder=True)))
    assert "TCA_NETEM_RATE" not in reordering


def test_uniform_and_pareto_are_scaled_to_the_same_sd() -> None:
    assert netem_delay_jitter(Impairment(delay_ms=10.0, jitter_ms=1.0,
                                         jitter_distribution="uniform")) == (
        10_000_000, round(1e6 * math.sqrt(3.0)))
    delay, sigma = netem_delay_jitter(Impairment(delay_ms=10.0, jitter_ms=1.0,
                                                 jitter_distribution="pareto"))
    assert sigma == round(1e6 / PARETO_SD)
    assert delay == round(10e6 - PARETO_MEAN * 1e6 / PARETO_SD)
    uniform = _attrs(netem_options(Impairment(jitter_ms=1.0, jitter_distribution="uniform")))
    assert "TCA_NETEM_DELAY_DIST" not in uniform  # netem without a table is uniform


@pytest.mark.parametrize(("kind", "mean", "sd"), [("normal", 0.0, 1.0),
                                                  ("pareto", PARETO_MEAN, PARETO_SD)])
def test_distribution_tables(kind: str, mean: float, sd: float) -> None:
    table = dist_table(kind)
    values = [v / DIST_SCALE for (v,) in struct.iter_unpack("<h", table)]
    assert len(values) == 4096
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / len(values))
    assert m == pytest.approx(mean, abs=0.01)
    assert s == pytest.approx(sd, rel=0.03)
    assert max(values) <= 4.0


def test_loss_blackhole_and_gilbert() -> None:
    assert netem_options(Impairment(loss_pct=10.0))["loss"] == pct_to_u32(10.0)
    assert netem_options(Impairment(loss_pct=10.0, blackhole=True))["loss"] == U32_MAX
    ge = GilbertElliott(p_pct=1.0, r_pct=25.0, loss_bad_pct=90.0, loss_good_pct=0.5)
    attrs = _attrs(netem_options(Impairment(gilbert=ge)))
    assert attrs["TCA_NETEM_LOSS"] == {"attrs": [["NETEM_LOSS_GE", {
        "p": pct_to_u32(1.0), "r": pct_to_u32(25.0), "h": pct_to_u32(10.0),
        "k1": pct_to_u32(0.5)}]]}
    assert pct_to_u32(100.0) == U32_MAX and pct_to_u32(0.0) == 0


def test_request_bytes() -> None:
    msg = netem_request(7, Impairment(delay_ms=35.0, queue_limit=1000))
    msg.encode()
    assert msg["header"]["type"] == RTM_NEWQDISC
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    ticks = round(35_000 * tick_in_usec)
    expected = (
        struct.pack("=BBHiIII", 0, 0, 0, 7, NETEM_HANDLE, 0xFFFFFFFF, 0)
        + struct.pack("=HH", 10, 1) + b"netem\0\0\0"
        + struct.pack("=HH", 4 + 24 + 12 + 12, 2)
        + struct.pack("=IIIIII", ticks, 1000, 0, 0, 0, 0)
        + struct.pack("=HHq", 12, 10, 35_000_000)
        + struct.pack("=HHq", 12, 11, 0)
    )
    assert bytes(msg.data[16:]) == expected
    decoded = NetemQdiscMsg(bytes(msg.data))
    decoded.decode()
    assert decoded.get_attr("TCA_OPTIONS").get_attr("TCA_NETEM_LATENCY64") == 35_000_000


def test_tbf_arguments() -> None:
    assert tbf_arguments(Impairment(rate_bps=8_000_000, queue_ms=20.0), 1500) == {
        "parent": NETEM_CLASS, "handle": TBF_HANDLE, "rate": "8000000bit",
        "burst": 4000, "latency": 20_000,
    }
    assert tbf_arguments(Impairment(rate_bps=100_000), 1500)["burst"] == 2 * 1518
    with pytest.raises(ImpairmentError, match="tbf needs a rate"):
        tbf_arguments(Impairment(), 1500)


# ---- the driver against a fake IPRoute ----


class _Stats:
    def __init__(self, basic: dict[str, int], queue: dict[str, int]) -> None:
        self.parts = {"TCA_STATS_BASIC": basic, "TCA_STATS_QUEUE": queue}

    def get_attr(self, name: str) -> dict[str, int]:
        return self.parts[name]


class _Qdisc(dict[str, Any]):
    def __init__(self, handle: int, packets: int, drops: int, qlen: int) -> None:
        super().__init__(handle=handle)
        self.stats = _Stats({"packets": packets, "bytes": packets * 100},
                            {"drops": drops, "qlen": qlen})

    def get_attr(self, name: str) -> Any:
        return self.stats if name == "TCA_STATS2" else None


class FakeIPRoute:
    """Records what the driver sends, per namespace."""

    def __init__(self, world: FakeWorld, ns: str) -> None:
        self.world, self.ns = world, ns

    def link_lookup(self, ifname: str) -> list[int]:
        index = self.world.links.get((self.ns, ifname))
        return [index] if index else []

    def link(self, command: str, **kw: Any) -> None:
        self.world.calls.append((self.ns, "link", command, kw))
        if command == "add":
            self.world.add(self.ns, kw["ifname"])
            self.world.add(kw["peer"]["net_ns_fd"], kw["peer"]["ifname"])
        if command == "del":
            self.world.links = {k: v for k, v in self.world.links.items() if v != kw["index"]}

    def nlm_request_batch(self, msgs: list[Any]) -> list[Any]:
        for msg in msgs:
            self.world.calls.append((self.ns, "netem", msg["index"], msg.get_attr("TCA_OPTIONS")))
        return []

    def tc(self, command: str, kind: str | None = None, index: int | None = None,
           **kw: Any) -> None:
        self.world.calls.append((self.ns, "tc", command, kind, index, kw))
        if command == "del":
            raise NetlinkError(2, "No such file or directory")

    def get_qdiscs(self, index: int) -> list[_Qdisc]:
        return [_Qdisc(NETEM_HANDLE, 90, 10, 1), _Qdisc(TBF_HANDLE, 80, 5, 2)]


class FakeWorld:
    def __init__(self) -> None:
        self.links: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[Any, ...]] = []

    def add(self, ns: str, ifname: str) -> None:
        self.links[(ns, ifname)] = len(self.links) + 2

    @contextlib.contextmanager
    def open(self, ns: str) -> Iterator[FakeIPRoute]:
        yield FakeIPRoute(self, ns)


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


A, B = LinkEnd("nsa", "eth0"), LinkEnd("nsb", "eth1")


def test_add_link_sends_veth_and_qdiscs(world: FakeWorld, tmp_path: Path) -> None:
    driver = NetemDriver("lab", tmp_path, opener=world.open)
    driver.add_link("l1", A, B, Impairment(delay_ms=35.0),
                    Impairment(delay_ms=5.0, rate_bps=8_000_000), mtu=1400)
    calls = [c[:3] if c[1] != "tc" else c for c in world.calls]
    assert calls[0] == ("nsa", "link", "add")
    assert world.calls[0][3] == {"ifname": "eth0", "kind": "veth", "mtu": 1400,
                                 "peer": {"ifname": "eth1", "net_ns_fd": "nsb", "mtu": 1400}}
    assert calls[1:3] == [("nsa", "link", "set"), ("nsb", "link", "set")]
    ia, ib = world.links[("nsa", "eth0")], world.links[("nsb", "eth1")]
    assert world.calls[3][:3] == ("nsa", "netem", ia)
    assert _attrs(world.calls[3][3])["TCA_NETEM_LATENCY64"] == 35_000_000
    assert world.calls[4] == ("nsa", "tc", "del", None, ia,
                              {"parent": NETEM_CLASS, "handle": TBF_HANDLE})
    assert world.calls[5][:3] == ("nsb", "netem", ib)
    assert world.calls[6] == ("nsb", "tc", "replace", "tbf", ib,
                              tbf_arguments(Impairment(rate_bps=8_000_000), 1400))
    assert driver.link_ids() == ["l1"]


def test_set_changes_only_the_chosen_direction(world: FakeWorld, tmp_path: Path) -> None:
    driver = NetemDriver("lab", tmp_path, opener=world.open)
    driver.add_link("l1", A, B, Impairment(), Impairment())
    world.calls.clear()
    driver.set("l1", "b_to_a", Impairment(blackhole=True))
    assert [c[:2] for c in world.calls] == [("nsb", "netem"), ("nsb", "tc")]
    assert world.calls[0][3]["loss"] == U32_MAX
    status = driver.get("l1")
    assert status.b_to_a.impairment.blackhole and not status.a_to_b.impairment.blackhole
    assert status.b_to_a.counters.dropped_blackhole == 10
    assert status.a_to_b.counters.dropped_loss == 10
    assert status.a_to_b.counters.forwarded == 80  # what left tbf
    assert status.a_to_b.counters.dropped_queue == 5
    assert status.a_to_b.counters.in_queue == 3
    with pytest.raises(ImpairmentError, match="direction must be one of"):
        driver.set("l1", "up", Impairment())  # type: ignore[arg-type]
    with pytest.raises(ImpairmentError, match="no link 'nope'"):
        driver.set("nope", "both", Impairment())


def test_remove_and_close(world: FakeWorld, tmp_path: Path) -> None:
    driver = NetemDriver("lab", tmp_path, opener=world.open)
    driver.add_link("l1", A, B, Impairment(), Impairment())
    driver.add_link("l2", LinkEnd("nsa", "eth2"), LinkEnd("nsb", "eth3"), Impairment(),
                    Impairment())
    # another process sees the same links through the state directory
    assert NetemDriver("lab", tmp_path, opener=world.open).link_ids() == ["l1", "l2"]
    driver.remove_link("l1")
    assert driver.link_ids() == ["l2"]
    driver.close()
    assert [c for c in world.calls if c[2] == "del" and c[1] == "link"] == [
        ("nsa", "link", "del", {"index": 2}), ("nsa", "link", "del", {"index": 4})]
    assert not (tmp_path / "impair" / "links.json").exists()


def test_duplicate_link_is_refused(world: FakeWorld, tmp_path: Path) -> None:
    driver = NetemDriver("lab", tmp_path, opener=world.open)
    driver.add_link("l1", A, B, Impairment(), Impairment())
    with pytest.raises(ImpairmentError, match="link 'l1' exists"):
        driver.add_link("l1", A, B, Impairment(), Impairment())


def test_adopted_links_get_qdiscs_and_no_new_veth(world: FakeWorld, tmp_path: Path) -> None:
    driver = NetemDriver("lab", tmp_path, opener=world.open)
    pairs = driver.link_veths("l1", A, B, mtu=1400)
    assert [(p.netns, p.ifname, p.peer_netns, p.peer_ifname, p.mtu, p.offloads_off)
            for p in pairs] == [("nsa", "eth0", "nsb", "eth1", 1400, False)]
    world.add("nsa", "eth0")  # the caller created the pair
    world.add("nsb", "eth1")
    c = LinkEnd("nsa", "eth2"), LinkEnd("nsb", "eth3")
    world.add(*astuple(c[0]))
    world.add(*astuple(c[1]))
    driver.adopt_links([LinkRequest("l1", A, B, Impairment(delay_ms=35.0), Impairment(), 1400),
                        LinkRequest("l2", *c, Impairment(), Impairment(loss_pct=1.0))])
    assert not [call for call in world.calls if call[1] == "link"]
    assert [call[:2] for call in world.calls if call[1] == "netem"] == [
        ("nsa", "netem"), ("nsb", "netem"), ("nsa", "netem"), ("nsb", "netem")]
    assert driver.link_ids() == ["l1", "l2"]
    assert driver.get("l1").mtu == 1400
    with pytest.raises(ImpairmentError, match="link 'l1' exists"):
        driver.adopt_links([LinkRequest("l1", A, B, Impairment(), Impairment())])
    with pytest.raises(ImpairmentError, match="exists"):
        driver.adopt_links([LinkRequest("l3", A, B, Impairment(), Impairment())] * 2)
