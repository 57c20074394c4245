"""Long-lived TCP flows for real: servers killed and restarted under them."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backend.processes import stop_pids
from lab.backend.state import ProcessRecord
from lab.measure.probe import TcpFlowSpec, TcpFlowsSpec, start_tcp_flows, write_tcp_flows_spec
from lab.measure.probe.tcpflows import tcp_flows_argv
from tests.conftest import require_root
from tests.integration.probeworld import ProbeWorld, probe_world

pytestmark = pytest.mark.integration
Event = dict[str, Any]


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ProbeWorld]:
    require_root()
    servers = getattr(request, "param", 1)
    with probe_world(tmp_path / "world", clients=2, servers=servers) as built:
        yield built


class Flows:
    def __init__(self, world: ProbeWorld, tmp_path: Path, per_client: int) -> None:
        self.events = tmp_path / "events.jsonl"
        flows = tuple(TcpFlowSpec(f"c{i}", ns if i else f"/run/netns/{ns}", "web", world.vip,
                                  80, k)
                      for i, ns in enumerate(world.clients) for k in range(per_client))
        spec = TcpFlowsSpec(lab=world.lab, flows=flows, events=self.events,
                            message_interval_ms=20, timeout_ms=500, reconnect_ms=50)
        self.count = len(flows)
        self.record: ProcessRecord = start_tcp_flows(
            world.spawn_outside("tcpflows"), write_tcp_flows_spec(spec, tmp_path / "tcp.json"),
            tmp_path / "tcp.log")

    def read(self) -> list[Event]:
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines()]

    def wait_for(self, test: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.read()
            if test(events):
                return events
            time.sleep(0.02)
        raise AssertionError(f"condition not met; events: {self.read()}")

    def stop(self) -> None:
        stop_pids([self.record.pid], grace_s=3.0)


@pytest.fixture
def flows(world: ProbeWorld, tmp_path: Path) -> Iterator[Flows]:
    running = Flows(world, tmp_path, per_client=2)
    try:
        yield running
    finally:
        running.stop()


def kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e["kind"] == kind]


def test_kill_breaks_and_restart_reconnects(world: ProbeWorld, flows: Flows) -> None:
    first = flows.wait_for(lambda ev: len(kinds(ev, "flow_connected")) == flows.count)
    assert {(e["client"], e["flow"], e["site"], e["pod"]) for e in first} == \
        {(c, k, "site0", "pod0") for c in ("c0", "c1") for k in (0, 1)}
    killed = world.kill_server(0)
    broken = kinds(flows.wait_for(lambda ev: len(kinds(ev, "flow_broken")) == flows.count),
                   "flow_broken")
    assert {e["reason"] for e in broken} <= {"reset", "eof", "refused"}
    assert all(abs(e["t_ns"] - killed) < 1e9 for e in broken)
    time.sleep(0.3)  # reconnections are refused meanwhile, and not recorded
    assert len(flows.read()) == 2 * flows.count
    restarted = time.monotonic_ns()
    world.start_server(0)
    events = flows.wait_for(lambda ev: len(kinds(ev, "flow_connected")) == 2 * flows.count)
    again = kinds(events, "flow_connected")[flows.count:]
    assert all(e["t_ns"] >= restarted and e["site"] == "site0" and e["attempts"] >= 1
               for e in again)
    assert [e["t_ns"] for e in events] == sorted(e["t_ns"] for e in events)


def test_sigterm_ends_quietly_with_status_0(world: ProbeWorld, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    spec = TcpFlowsSpec(lab=world.lab, events=events, flows=(
        TcpFlowSpec("c0", world.clients[0], "web", world.vip, 80, 0),))
    proc = subprocess.Popen([*tcp_flows_argv(write_tcp_flows_spec(spec, tmp_path / "t.json"))],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not (events.exists() and events.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0 and "Traceback" not in err
    assert [json.loads(line)["kind"] for line in events.read_text().splitlines()] == \
        ["flow_connected"]


@pytest.mark.parametrize("world", [2], indirect=True)
def test_broken_flows_reconnect_to_the_other_server(world: ProbeWorld, flows: Flows) -> None:
    first = kinds(flows.wait_for(lambda ev: len(kinds(ev, "flow_connected")) == flows.count),
                  "flow_connected")
    victim = first[0]["site"]
    on_victim = sum(e["site"] == victim for e in first)
    world.kill_server(int(victim[-1]))
    events = flows.wait_for(lambda ev: len(kinds(ev, "flow_connected")) == flows.count + on_victim)
    assert len(kinds(events, "flow_broken")) == on_victim
    survivor = {"site0", "site1"} - {victim}
    assert {e["site"] for e in kinds(events, "flow_connected")[flows.count:]} == survivor
