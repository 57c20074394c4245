"""What an impaired link does, measured, for every driver (root; own namespaces only).

Same settings, same tests, whichever driver runs: netem is skipped where the
kernel lacks sch_netem. One-way delays come from CLOCK_MONOTONIC stamps
written by the sender and read by the receiver (one kernel, one clock).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.impair import (
    CLEAN,
    GilbertElliott,
    Impairment,
    ImpairmentDriver,
    LinkEnd,
    make_driver,
    netem_available,
)
from lab.impair.emulator import emulator_pids, stop_pid
from lab.impair.measure import (
    ProbeResult,
    UdpProbe,
    address_link,
    scratch_namespaces,
    tcp_transfer,
    unique_name,
)
from lab.impair.namespaces import remove_netns, require_index, rtnl, socket_in_netns
from lab.impair.userspace import UserspaceDriver
from tests.conftest import require_root
from tests.integration.quiet import on_a_quiet_machine

pytestmark = pytest.mark.integration

A_IP, B_IP = "198.18.0.1", "198.18.0.2"  # benchmarking range, only inside our namespaces
LINK = "l1"
SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID, ETH_P_ALL = 263, 8, 0x10, 3


@dataclass
class Setup:
    driver: ImpairmentDriver
    a: str
    b: str


@pytest.fixture(scope="module", params=["userspace", "netem"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Setup]:
    require_root()
    kind = request.param
    if kind == "netem" and not netem_available(unique_name("probe")):
        pytest.skip("sch_netem not available in this kernel")
    lab, hidden = unique_name("lab"), unique_name("hid")
    state: Path = tmp_path_factory.mktemp("impair-state")
    with scratch_namespaces("a", "b") as (a, b):
        driver = make_driver(kind, lab, state, hidden)
        try:
            driver.add_link(LINK, LinkEnd(a, "eth0"), LinkEnd(b, "eth0"), CLEAN, CLEAN)
            address_link(LinkEnd(a, "eth0"), LinkEnd(b, "eth0"), A_IP, B_IP)
            yield Setup(driver, a, b)
        finally:
            with contextlib.suppress(Exception):
                driver.close()
            for pid in emulator_pids(lab):
                stop_pid(pid, lab)
            remove_netns(hidden)


def probe(s: Setup, *, pps: float = 2000, count: int = 2000, size: int = 64) -> ProbeResult:
    return UdpProbe(s.a, s.b, B_IP, pps=pps, count=count, size=size).run()


@pytest.mark.parametrize("delay_ms", [10.0, 35.0, 100.0])
def test_added_delay_median(setup: Setup, delay_ms: float) -> None:
    setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=delay_ms))

    def check(_attempt: int) -> None:
        result = probe(setup)
        assert result.lost == 0
        assert result.reordered == 0
        assert abs(result.median_ms() - delay_ms) < 1.0, result.median_ms()

    on_a_quiet_machine(check)


def _assert_median(setup: Setup, expected_ms: float) -> None:
    median = probe(setup, count=600).median_ms()
    assert abs(median - expected_ms) < 1.0, median


def test_compensation_is_taken_off_every_frame_and_kept_across_settings(setup: Setup) -> None:
    if not isinstance(setup.driver, UserspaceDriver):
        pytest.skip("only the userspace emulator compensates")
    setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=10.0))
    setup.driver.compensate(LINK, 2000.0)
    try:
        assert setup.driver.compensation(LINK) == 2000.0
        on_a_quiet_machine(lambda _n: _assert_median(setup, 8.0))
        setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=20.0))  # a fault's new setting
        on_a_quiet_machine(lambda _n: _assert_median(setup, 18.0))
        setup.driver.compensate(LINK, 50_000.0)  # more than the delay: never below zero
        on_a_quiet_machine(lambda _n: _assert_median(setup, 0.0))
    finally:
        setup.driver.compensate(LINK, 0.0)
        setup.driver.set(LINK, "a_to_b", CLEAN)


@pytest.mark.parametrize("dist", ["normal", "uniform", "pareto"])
def test_jitter_spread(setup: Setup, dist: str) -> None:
    imp = Impairment(delay_ms=35.0, jitter_ms=5.0, jitter_distribution=dist,  # type: ignore[arg-type]
                     reorder=True)
    setup.driver.set(LINK, "a_to_b", imp)

    def check(_attempt: int) -> None:
        delays = probe(setup).delays_ms
        assert statistics.stdev(delays) == pytest.approx(5.0, rel=0.2)
        assert statistics.mean(delays) == pytest.approx(35.0, abs=1.0)

    on_a_quiet_machine(check)


def test_jitter_keeps_order_unless_reorder(setup: Setup) -> None:
    setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=20.0, jitter_ms=5.0))
    ordered = probe(setup, count=1000)
    setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=20.0, jitter_ms=5.0, reorder=True))
    shuffled = probe(setup, count=1000)
    assert ordered.reordered == 0 and ordered.lost == 0
    assert shuffled.reordered > 100


def _binomial_99(n: int, p: float) -> tuple[float, float]:
    half = 2.576 * math.sqrt(n * p * (1 - p))
    return n * p - half, n * p + half


def test_random_loss_rate_and_counters(setup: Setup) -> None:
    setup.driver.set(LINK, "a_to_b", Impairment(loss_pct=10.0))
    before = setup.driver.get(LINK).a_to_b.counters
    result = probe(setup, pps=5000, count=10_000)
    after = setup.driver.get(LINK).a_to_b.counters
    low, high = _binomial_99(10_000, 0.10)
    assert low <= result.lost <= high
    # The counters saw the same frames (plus at most a few of the namespaces' own).
    assert 0 <= (after.dropped_loss - before.dropped_loss) - result.lost <= 5
    assert 0 <= (after.forwarded - before.forwarded) - result.received <= 5
    assert after.dropped_blackhole == before.dropped_blackhole


def test_gilbert_elliott_loss_is_bursty(setup: Setup) -> None:
    ge = GilbertElliott(p_pct=1.0, r_pct=10.0)
    setup.driver.set(LINK, "a_to_b", Impairment(gilbert=ge))
    result = probe(setup, pps=5000, count=10_000)
    assert result.lost / 100 == pytest.approx(ge.mean_loss_pct, abs=4.0)
    assert statistics.mean(result.loss_runs()) > 4  # random loss at 9 % gives ~1.1


def test_rate_limit(setup: Setup) -> None:
    rate = 4_000_000
    setup.driver.set(LINK, "a_to_b", Impairment(rate_bps=rate))
    before = setup.driver.get(LINK).a_to_b.counters
    # 1000-byte datagrams (1042-byte frames) at ~8.3 Mbit/s: twice the rate.
    result = probe(setup, pps=1000, count=2000, size=1000)
    arrivals = [t for _, t in result.arrivals]
    measured = (len(arrivals) - 1) * 1042 * 8 / ((arrivals[-1] - arrivals[0]) / 1e9)
    assert measured == pytest.approx(rate, rel=0.10)
    assert setup.driver.get(LINK).a_to_b.counters.dropped_queue > before.dropped_queue


def test_runtime_changes_take_effect_within_one_packet(setup: Setup) -> None:
    """A change made while packets flow applies from the next packet on; the delays are
    checked on a quiet machine (tests.integration.quiet)."""
    def check(_attempt: int) -> None:
        interval = 1e9 / 2000
        setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=35.0))
        steps = [(0.5, Impairment(delay_ms=80.0)), (1.0, Impairment(delay_ms=80.0, blackhole=True)),
                 (1.5, Impairment(delay_ms=80.0))]
        results: list[ProbeResult] = []
        stream = threading.Thread(target=lambda: results.append(probe(setup, count=4000)))
        start = time.monotonic_ns()
        stream.start()
        marks = []  # (just before, just after) each set() call
        for at, imp in steps:
            time.sleep(max(0.0, (start + at * 1e9 - time.monotonic_ns()) / 1e9))
            before = time.monotonic_ns()
            setup.driver.set(LINK, "a_to_b", imp)
            marks.append((before, time.monotonic_ns()))
        stream.join()
        result = results[0]
        delays = result.delays_by_seq()
        (slow_b, slow_a), (hole_b, hole_a), (open_b, open_a) = marks
        for seq, sent in enumerate(result.send_ns):
            if sent < slow_b - interval:
                assert delays[seq] < 57.5, (seq, "before the change")
            elif slow_a < sent < hole_b - interval or sent > open_a:
                assert delays.get(seq, 0.0) > 57.5, (seq, "after the change")
            elif hole_a < sent < open_b - interval:
                assert seq not in delays, (seq, "during the blackhole")
        new = [d for d in result.delays_ms if d > 57.5]
        assert statistics.median(new) == pytest.approx(80.0, abs=1.0)

    on_a_quiet_machine(check)


def test_tcp_through_a_5ms_link(setup: Setup) -> None:
    setup.driver.set(LINK, "both", Impairment(delay_ms=5.0))
    elapsed = tcp_transfer(setup.a, setup.b, B_IP, 5_000_000, timeout=30.0)
    assert elapsed < 30.0
    setup.driver.set(LINK, "both", CLEAN)


def test_status_reports_settings_and_counters(setup: Setup) -> None:
    imp = Impairment(delay_ms=3.0, loss_pct=1.0)
    setup.driver.set(LINK, "b_to_a", imp)
    status = setup.driver.get(LINK)
    assert status.b_to_a.impairment == imp
    assert status.driver == setup.driver.kind
    assert status.a.netns == setup.a and status.b.ifname == "eth0"
    assert status.a_to_b.counters.forwarded > 0
    assert status.b_to_a.counters.in_queue >= 0
    setup.driver.set(LINK, "b_to_a", CLEAN)


def _mac(ns: str, ifname: str) -> bytes:
    with rtnl(ns) as ipr:
        mac = ipr.get_links(require_index(ipr, ifname, ns))[0].get_attr("IFLA_ADDRESS")
    return bytes.fromhex(str(mac).replace(":", ""))


def test_vlan_tags_survive_the_link(setup: Setup) -> None:
    """A tagged frame arrives tagged (the emulator restores tags the kernel
    moved into packet metadata). Raw frames: this kernel may lack 802.1Q."""
    setup.driver.set(LINK, "a_to_b", Impairment(delay_ms=1.0))
    rx = socket_in_netns(setup.b, socket.AF_PACKET, socket.SOCK_RAW)
    tx = socket_in_netns(setup.a, socket.AF_PACKET, socket.SOCK_RAW)
    try:
        rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        rx.bind(("eth0", ETH_P_ALL))
        rx.settimeout(2.0)
        marker = secrets.token_bytes(16)
        frame = (_mac(setup.b, "eth0") + _mac(setup.a, "eth0")
                 + struct.pack("!HHH", 0x8100, 100, 0x88B5) + marker + bytes(30))
        tx.bind(("eth0", 0))
        tx.send(frame)
        while True:
            data, ancillary, _, _ = rx.recvmsg(2048, socket.CMSG_SPACE(32))
            if marker in data:
                break
        tags = [struct.unpack_from("=IIIHHHH", cdata)[5] for level, kind, cdata in ancillary
                if level == SOL_PACKET and kind == PACKET_AUXDATA
                and struct.unpack_from("=I", cdata)[0] & TP_STATUS_VLAN_VALID]
        in_band = data[12:14] == b"\x81\x00" and struct.unpack_from("!H", data, 14)[0] == 100
        assert in_band or tags == [100]
    finally:
        rx.close()
        tx.close()
        setup.driver.set(LINK, "a_to_b", CLEAN)
