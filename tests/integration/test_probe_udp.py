"""The C UDP prober for real: client and server namespaces behind a router, lab.apps.server
answering.

Each test builds its own world (namespaces ``altest-PID-RAND-w-*``) and removes it, stopping
only the processes it started.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.backend.processes import stop_pids
from lab.measure.probe import ProbeTarget, ensure_prober_built, load_udp_probes, read_prober_file
from lab.measure.probe.udp import prober_argv, start_udp_prober
from tests.conftest import require_root
from tests.integration.probeworld import ProbeWorld, probe_world

pytestmark = pytest.mark.integration
HOST_SYSCTLS = ("ip_forward", "fib_multipath_hash_policy")


@pytest.fixture
def binary() -> Path:
    return ensure_prober_built()


def host_sysctls() -> list[str]:
    return [Path("/proc/sys/net/ipv4", key).read_text() for key in HOST_SYSCTLS]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ProbeWorld]:
    require_root()
    before = host_sysctls()
    with probe_world(tmp_path / "world", clients=1, servers=1) as built:
        yield built
    assert host_sysctls() == before  # the router's sysctls went to the router only


@pytest.fixture
def ecmp_world(tmp_path: Path) -> Iterator[ProbeWorld]:
    require_root()
    with probe_world(tmp_path / "world", clients=1, servers=2) as built:
        yield built


def run_prober(world: ProbeWorld, tmp_path: Path, binary: Path, targets: list[ProbeTarget],
               seconds: float, flows: int = 1, rotate: bool = False) -> pd.DataFrame:
    out = tmp_path / "c0.txt"
    record = start_udp_prober(world.spawn_in(world.clients[0], "c0", "prober"), "c0", targets,
                              1.0, flows, out, tmp_path / "c0.log", binary=binary,
                              rotate=rotate)
    try:
        time.sleep(seconds)
    finally:
        stop_pids([record.pid], grace_s=3.0)
    return load_udp_probes(out, "c0", 0)


def loss_runs(lost: np.ndarray) -> list[int]:
    """Lengths of the runs of consecutive True values."""
    padded = np.concatenate(([False], lost, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return (edges[1::2] - edges[::2]).tolist()


def test_one_ms_probes_are_all_answered(world: ProbeWorld, tmp_path: Path,
                                        binary: Path) -> None:
    targets = [ProbeTarget("dns", world.vip, 53), ProbeTarget("ntp", world.vip, 123)]
    frame = run_prober(world, tmp_path, binary, targets, 3.0)
    assert set(frame["service"]) == {"dns", "ntp"}
    for _, probes in frame.groupby("service"):
        assert len(probes) >= 2500
        assert probes["seq"].tolist() == list(range(len(probes)))
        steps = np.diff(probes["send_ns"].to_numpy()) / 1e6
        assert abs(float(np.median(steps)) - 1.0) < 0.05  # absolute schedule: no drift
    assert float(frame["recv_ns"].isna().mean()) < 0.001
    rtt = frame["rtt_ms"].dropna()
    assert 0 < rtt.median() < 5 and (rtt > 0).all()
    answered = frame.dropna(subset=["site"])
    assert set(zip(answered["site"], answered["cluster"], answered["node"], answered["pod"],
                   strict=True)) == {("site0", "k0", "n0", "pod0")}
    stats = read_prober_file(tmp_path / "c0.txt").stats
    assert stats is not None and stats["dups"] == 0 and stats["bad"] == 0


def test_a_blackhole_shows_as_a_gap_of_lost_probes(world: ProbeWorld, tmp_path: Path,
                                                   binary: Path) -> None:
    out = tmp_path / "c0.txt"
    record = start_udp_prober(world.spawn_in(world.clients[0], "c0", "prober"), "c0",
                              [ProbeTarget("dns", world.vip, 53)], 1.0, 1, out,
                              tmp_path / "c0.log", binary=binary)
    try:
        time.sleep(1.0)
        start = world.blackhole()
        time.sleep(0.5)
        world.restore_route()
        end = time.monotonic_ns()
        time.sleep(0.5)
    finally:
        stop_pids([record.pid], grace_s=3.0)
    frame = load_udp_probes(out, "c0", 0)
    lost = frame["recv_ns"].isna().to_numpy()
    runs = loss_runs(lost)
    assert len(runs) == 1, runs
    assert 0.85 * (end - start) / 1e6 <= runs[0] <= (end - start) / 1e6 + 20
    first_lost = frame.loc[lost, "send_ns"].min()
    assert abs(first_lost - start) < 20e6
    gone = frame[lost]
    assert gone["rtt_ms"].isna().all() and gone["site"].isna().all()


def test_flows_have_their_own_ports_and_spread_over_ecmp(ecmp_world: ProbeWorld,
                                                         tmp_path: Path, binary: Path) -> None:
    frame = run_prober(ecmp_world, tmp_path, binary, [ProbeTarget("dns", ecmp_world.vip, 53)],
                       1.0, flows=16)
    ports = read_prober_file(tmp_path / "c0.txt").ports
    assert len(ports) == 16 and len(set(ports.values())) == 16
    answered = frame.dropna(subset=["site"])
    sites_per_flow = answered.groupby("flow")["site"].nunique()
    assert (sites_per_flow == 1).all()  # one flow, one hash, one server
    assert set(answered["site"]) == {"site0", "site1"}


def test_rotating_flows_take_turns_at_one_probe_per_target_and_tick(
        ecmp_world: ProbeWorld, tmp_path: Path, binary: Path) -> None:
    targets = [ProbeTarget("dns", ecmp_world.vip, 53), ProbeTarget("ntp", ecmp_world.vip, 123)]
    frame = run_prober(ecmp_world, tmp_path, binary, targets, 1.5, flows=4, rotate=True)
    records = read_prober_file(tmp_path / "c0.txt")
    ticks = len(records.ticks)
    assert records.header.rotate and records.header.flows == 4 and ticks > 1000
    ports = records.ports
    assert len(ports) == 2 * 4 and len(set(ports.values())) == 2 * 4
    assert len(frame) == ticks * 2
    for _, probes in frame.groupby("service"):
        assert sorted(probes["seq"]) == list(range(ticks))
        assert (probes["flow"] == probes["seq"] % 4).all()
        for _, flow in probes.groupby("flow"):
            assert (np.diff(flow["seq"].to_numpy()) == 4).all()  # every 4th tick
            steps = np.diff(flow["send_ns"].to_numpy()) / 1e6
            assert abs(float(np.median(steps)) - 4.0) < 0.2
    # an echo is read on its flow's own socket (own port) and must name that flow and a seq
    # the flow sent, or it is foreign: all answered, none foreign, one ECMP hash per flow
    assert frame["recv_ns"].notna().all()
    assert (frame.groupby(["service", "flow"])["site"].nunique() == 1).all()
    stats = records.stats
    assert stats is not None and stats["ticks"] == ticks
    assert stats["sent"] == stats["replies"] == ticks * len(targets)  # packets: one per target
    assert stats["bad"] == stats["dups"] == stats["errors"] == 0


def test_sigterm_flushes_and_exits_zero(world: ProbeWorld, tmp_path: Path,
                                        binary: Path) -> None:
    out = tmp_path / "c0.txt"
    argv = prober_argv(binary, [ProbeTarget("dns", world.vip, 53)], 1.0, 1, out)
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{world.clients[0]}", "--", *argv])
    try:
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    records = read_prober_file(out)
    assert records.stats is not None and records.stats["ticks"] == len(records.ticks) > 300
    assert records.stats["replies"] == len(records.replies) == len(records.ticks)


def test_duration_ends_the_prober(world: ProbeWorld, tmp_path: Path, binary: Path) -> None:
    out = tmp_path / "c0.txt"
    argv = prober_argv(binary, [ProbeTarget("dns", world.vip, 53)], 2.0, 1, out,
                       duration_ms=400)
    proc = subprocess.run(["nsenter", f"--net=/run/netns/{world.clients[0]}", "--", *argv],
                          timeout=10, check=False)
    assert proc.returncode == 0
    records = read_prober_file(out)
    assert len(records.ticks) + records.skipped_slots == 200
    assert len(records.replies) == len(records.ticks)
