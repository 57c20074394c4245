"""The node agent's behaviour with a fake speaker, prober and nft (no root, no daemons)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from lab.apps.agent.drain import Drain, write_drain
from lab.apps.agent.events import EventLog, read_events
from lab.apps.agent.main import Agent, run_agent
from lab.apps.agent.podlist import PODS_FILE, write_pod_list
from lab.apps.agent.probe import ProbeOutcome, ProbeTarget
from lab.apps.agent.readiness import ProbePolicy
from lab.apps.agent.spec import AgentPod, AgentService, AgentSpec
from lab.apps.mainloop import MainLoop
from lab.errors import CommandError

VIP = IPv4Address("192.0.2.53")
VIP_PREFIX = IPv4Network("192.0.2.53/32")
POD_CIDR = IPv4Network("10.64.0.0/24")


class FakeSpeaker:
    name = "gobgp"
    originates_pod_cidr = True

    def __init__(self, routes: Sequence[IPv4Network] = (), *, down: bool = False,
                 drops: bool = False) -> None:
        self.routes = set(routes)
        self.down = down
        self.drops = drops  # accepts commands but keeps nothing (a rejecting import policy)
        self.calls: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise CommandError(["gobgp"], 1, "", "connection refused")

    def announced(self) -> frozenset[IPv4Network]:
        self._check()
        return frozenset(self.routes)

    def announce(self, prefix: IPv4Network, drain: Drain | None = None) -> None:
        self._check()
        self.calls.append(f"add {prefix}" + (f" {drain.method}" if drain else ""))
        if not self.drops:
            self.routes.add(prefix)

    def withdraw(self, prefix: IPv4Network) -> None:
        self._check()
        self.calls.append(f"del {prefix}")
        self.routes.discard(prefix)


class FakeProber:
    def __init__(self) -> None:
        self.healthy: dict[str, bool] = {}
        self.rounds = 0

    def __call__(self, targets: Sequence[ProbeTarget], timeout_s: float) -> dict[str,
                                                                                 ProbeOutcome]:
        self.rounds += 1
        return {t.name: ProbeOutcome(self.healthy.get(t.name, True), self.rounds,
                                     "200" if self.healthy.get(t.name, True) else "503")
                for t in targets}


def make_spec(tmp_path: Path, policy: str = "Local", delay_ms: int = 0) -> AgentSpec:
    return AgentSpec(
        lab="t", node="n1", cluster="c1", speaker="gobgp", gobgp_api=("127.0.0.1", 50051),
        vty_socket_dir=None, asn=65101, pod_cidr=POD_CIDR,
        readiness=ProbePolicy(period_ms=10, timeout_ms=5, failure_threshold=2),
        services=(AgentService("dns", VIP, "udp", 53, policy),),
        pods=(AgentPod("p1", IPv4Address("10.64.0.2"), 8080, True),
              AgentPod("q1", IPv4Address("10.64.1.2"), 8080, False)),
        events=tmp_path / "agent-events.jsonl", nft="nft", control_plane_delay_ms=delay_ms)


class World:
    def __init__(self, tmp_path: Path, speaker: FakeSpeaker, policy: str = "Local") -> None:
        self.spec = make_spec(tmp_path, policy)
        self.speaker = speaker
        self.prober = FakeProber()
        self.rulesets: list[str] = []
        self.flushed: list[str] = []
        self.log = EventLog(self.spec.events, "n1")
        self.agent = Agent(self.spec, speaker, self.log, prober=self.prober,
                           apply_nft=self.rulesets.append,
                           flush_conntrack=self.flushed.append)

    def events(self) -> list[str]:
        return [str(e["event"]) for e in read_events(self.spec.events)]

    def status(self) -> dict[str, object]:
        document: dict[str, object] = json.loads(self.spec.status_file.read_text())
        return document


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, FakeSpeaker())


def test_a_healthy_node_gets_ready_announces_and_proxies_on_the_first_period(
        world: World) -> None:
    world.agent.start()
    world.agent.step()
    assert world.events() == ["agent_start", "announce", "pod_ready", "pod_ready",
                              "nft_apply", "announce"]
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}
    assert "dnat ip to 10.64.0.2:53" in world.rulesets[-1]
    assert "10.64.1.2" not in world.rulesets[-1]  # Local: only the node's pods
    assert world.status()["announced"] == ["192.0.2.53"]
    assert world.status()["pods"] == {"p1": "ready", "q1": "ready"}
    assert world.status()["endpoints"] == {"dns": ["10.64.0.2"]}


def test_an_unready_local_pod_withdraws_after_the_failure_threshold(world: World) -> None:
    world.agent.start()
    world.agent.step()
    world.prober.healthy["p1"] = False
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}  # one failure of two
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR}
    records = read_events(world.spec.events)
    tail = records[-4:]
    assert [r["event"] for r in tail] == ["pod_unready", "nft_apply", "conntrack_flush",
                                          "withdraw"]
    assert tail[0]["pod"] == "p1" and tail[0]["probe"] == "503"
    assert world.flushed == [tail[2]["address"]]
    assert tail[3]["vip"] == "192.0.2.53" and tail[3]["services"] == ["dns"]
    assert int(str(tail[3]["t_ns"])) <= int(str(tail[3]["done_ns"]))
    assert 'drop comment "no ready endpoint"' in world.rulesets[-1]
    world.prober.healthy["p1"] = True
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}
    assert world.events()[-3:] == ["pod_ready", "nft_apply", "announce"]


def test_nothing_is_applied_or_announced_twice(world: World) -> None:
    world.agent.start()
    for _ in range(5):
        world.agent.step()
    assert len(world.rulesets) == 1
    assert world.speaker.calls == [f"add {POD_CIDR}", f"add {VIP_PREFIX}"]


def test_cluster_policy_announces_without_ready_pods_and_proxies_to_all(tmp_path: Path) -> None:
    world = World(tmp_path, FakeSpeaker(), policy="Cluster")
    world.prober.healthy = {"p1": False, "q1": False}
    world.agent.start()
    world.agent.step()
    assert VIP_PREFIX in world.speaker.routes
    world.prober.healthy = {"p1": True, "q1": True}
    world.agent.step()
    assert "dnat ip to 10.64.1.2:53" in world.rulesets[-1]
    assert world.status()["endpoints"] == {"dns": ["10.64.0.2", "10.64.1.2"]}


def test_a_restarted_agent_adopts_what_is_announced(tmp_path: Path) -> None:
    stale = IPv4Network("198.51.100.7/32")  # not one of the spec's VIPs: left alone
    world = World(tmp_path, FakeSpeaker([POD_CIDR, VIP_PREFIX, stale]))
    world.agent.start()
    world.agent.step()
    assert world.speaker.calls == []
    start = read_events(world.spec.events)[0]
    assert start["found"] == ["10.64.0.0/24", "192.0.2.53/32", "198.51.100.7/32"]


def test_a_restarted_agent_withdraws_what_it_should_not_announce(tmp_path: Path) -> None:
    world = World(tmp_path, FakeSpeaker([POD_CIDR, VIP_PREFIX]))
    world.prober.healthy["p1"] = False
    world.agent.start()
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR}


def test_an_unreachable_speaker_is_retried_and_reported_once(tmp_path: Path) -> None:
    world = World(tmp_path, FakeSpeaker(down=True))
    world.agent.start()
    world.agent.step()
    world.agent.step()
    assert world.events() == ["agent_start", "error", "pod_ready", "pod_ready", "nft_apply"]
    assert world.status()["announced"] == []
    world.speaker.down = False
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}


def test_a_speaker_that_drops_announcements_is_reported(tmp_path: Path) -> None:
    world = World(tmp_path, FakeSpeaker(drops=True))
    world.agent.start()
    world.agent.step()
    events = read_events(world.spec.events)
    assert [(e["event"], e.get("missing")) for e in events if e["event"] == "error"] == [
        ("error", ["10.64.0.0/24"]), ("error", ["192.0.2.53"])]
    error = events[-1]
    assert error["action"] == "verify" and "import policy" in str(error["hint"])
    assert world.status()["announced"] == []
    calls = len(world.speaker.calls)
    world.agent.step()  # not retried every period ...
    assert len(world.speaker.calls) == calls
    world.agent.synced_ns = 0  # ... but at the next resync
    world.agent.step()
    assert world.speaker.calls[-1] == f"add {VIP_PREFIX}"
    # reported again after the resync, not every period
    assert [e["event"] for e in read_events(world.spec.events)].count("error") == 4


@pytest.mark.parametrize("withdraw", [False, True])
def test_stop_withdraws_only_when_asked(world: World, withdraw: bool) -> None:
    world.agent.start()
    world.agent.step()
    world.agent.stop("SIGTERM", withdraw)
    stop = read_events(world.spec.events)[-1]
    assert stop["event"] == "agent_stop" and stop["signal"] == "SIGTERM"
    if withdraw:
        assert world.speaker.routes == {POD_CIDR}
        assert stop["withdrawn"] == ["192.0.2.53"] and stop["announced"] == []
    else:
        assert VIP_PREFIX in world.speaker.routes
        assert stop["withdrawn"] == [] and stop["announced"] == ["192.0.2.53"]


def test_the_loop_probes_at_once_and_stops_when_woken(world: World) -> None:
    loop = MainLoop()
    original = world.prober.__call__

    def probe_then_wake(targets: Sequence[ProbeTarget], timeout_s: float) -> dict[
            str, ProbeOutcome]:
        if world.prober.rounds == 2:
            loop.stop("SIGTERM")
        return original(targets, timeout_s)

    world.agent.prober = probe_then_wake
    run_agent(world.agent, loop, False)
    loop.close()
    assert world.prober.rounds == 3
    assert world.events()[0] == "agent_start" and world.events()[-1] == "agent_stop"


@pytest.mark.parametrize("method", ["gshut", "prepend"])
def test_a_drain_that_keeps_announcing_sends_the_vips_again_with_its_attributes(
        world: World, method: str) -> None:
    world.agent.start()
    world.agent.step()
    write_drain(world.agent.drain_file, Drain(method, 2))  # type: ignore[arg-type]
    world.agent.step()
    assert world.speaker.calls[-1] == f"add {VIP_PREFIX} {method}"
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}  # replaced, never withdrawn
    assert world.status()["drain"] == method
    drain_event = read_events(world.spec.events)[-2]
    assert drain_event["event"] == "drain" and drain_event["drain"]["method"] == method
    world.agent.step()
    assert world.speaker.calls[-1] == f"add {VIP_PREFIX} {method}"  # once
    world.agent.drain_file.unlink()
    world.agent.step()
    assert world.speaker.calls[-1] == f"add {VIP_PREFIX}"
    assert world.events()[-2:] == ["undrain", "announce"]
    assert world.status()["drain"] is None


def test_a_withdraw_drain_withdraws_every_vip_while_the_pods_stay_ready(world: World) -> None:
    world.agent.start()
    world.agent.step()
    write_drain(world.agent.drain_file, Drain("withdraw"))
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR}
    assert world.status()["pods"] == {"p1": "ready", "q1": "ready"}
    assert world.status()["endpoints"] == {"dns": ["10.64.0.2"]}  # still proxied
    world.agent.drain_file.unlink()
    world.agent.step()
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}


def test_an_agent_started_on_a_drained_node_announces_with_the_drain(world: World) -> None:
    write_drain(world.agent.drain_file, Drain("gshut"))
    world.agent.start()
    world.agent.step()
    assert world.speaker.calls == [f"add {POD_CIDR}", f"add {VIP_PREFIX} gshut"]


def test_a_control_plane_delay_holds_the_change_back_and_records_it(tmp_path: Path) -> None:
    """Readiness decides at once (kubelet); the proxy and the speaker see the change only
    when its delay has passed (EndpointSlice, watch), and the log says when it started."""
    world = World(tmp_path, FakeSpeaker())
    world.agent.spec = make_spec(tmp_path, delay_ms=80)
    world.agent.start()
    world.agent.step()
    assert "dnat" not in world.rulesets[-1]  # ready, but nobody has seen it yet
    assert world.speaker.routes == {POD_CIDR}
    due = world.agent.next_due_s()
    assert due is not None
    (change,) = [e for e in read_events(world.spec.events) if e["event"] == "endpoints_changed"]
    assert change["delay_ms"] == 80 and change["vips"] == ["192.0.2.53"]
    assert int(str(change["due_ns"])) - int(str(change["t_ns"])) == 80_000_000
    world.agent.deliver()  # too early: nothing
    assert len(world.rulesets) == 1
    time.sleep(max(0.0, due - time.monotonic()) + 0.005)
    world.agent.deliver()
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}
    assert "dnat ip to 10.64.0.2:53" in world.rulesets[-1]
    assert world.events()[-2:] == ["nft_apply", "announce"]
    assert world.agent.next_due_s() is None


def test_the_loop_wakes_for_a_delayed_change_between_periods(tmp_path: Path) -> None:
    world = World(tmp_path, FakeSpeaker())
    world.agent.spec = make_spec(tmp_path, delay_ms=30)
    spec = world.agent.spec
    world.agent.spec = AgentSpec(**{**spec.__dict__, "readiness": ProbePolicy(
        period_ms=10_000, timeout_ms=5, failure_threshold=2)})
    loop = MainLoop()
    timer = threading.Timer(0.3, loop.stop)
    timer.start()
    try:
        run_agent(world.agent, loop, withdraw_on_exit=False)
    finally:
        timer.cancel()
        loop.close()
    assert world.prober.rounds == 1  # one readiness period in 0.3 s
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}  # delivered 30 ms after it


def test_a_rollouts_pod_list_adds_unready_pods_and_drops_terminating_ones(
        world: World) -> None:
    """A rolling update's pod list (pods.json beside the spec): the new pod starts unready
    and becomes an endpoint once probed ready; the terminating one leaves the endpoints and
    is probed no more, and only its UDP flows are forgotten (by the flusher's address)."""
    world.agent.start()
    world.agent.step()
    new = {"name": "p1-r2", "address": "10.64.0.4", "health_port": 8080, "local": True}
    old = {"name": "p1", "address": "10.64.0.2", "health_port": 8080, "local": True}
    write_pod_list(world.spec.events.parent / PODS_FILE, [(old, False), (new, False)])
    world.prober.healthy["p1-r2"] = False
    world.agent.step()
    assert world.status()["pods"] == {"p1": "ready", "p1-r2": "unready"}
    assert world.status()["endpoints"] == {"dns": ["10.64.0.2"]}
    (listed,) = [e for e in read_events(world.spec.events) if e["event"] == "pod_list"]
    assert listed["added"] == ["p1-r2"] and listed["terminating"] == []
    world.prober.healthy["p1-r2"] = True
    world.agent.step()
    assert world.status()["endpoints"] == {"dns": ["10.64.0.2", "10.64.0.4"]}
    write_pod_list(world.spec.events.parent / PODS_FILE, [(old, True), (new, False)])
    world.agent.step()
    assert world.status()["pods"] == {"p1-r2": "ready"}
    assert world.status()["endpoints"] == {"dns": ["10.64.0.4"]}
    assert world.flushed == ["10.64.0.2"]
    assert world.speaker.routes == {POD_CIDR, VIP_PREFIX}  # announced throughout
    assert "p1" not in {t.name for t in world.agent.targets}
