"""Cluster operations, for real (docs/speakers.md): a node drained before its pods stop, and a
speaker restarted as an upgrade does, with and without BGP graceful restart. Two sites, each a
cluster of two nodes, one per leaf: alpha's kube-router speakers (GoBGP) restart gracefully,
beta's MetalLB speakers (FRR) do not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lab.backend import labs
from lab.backend.inspect import agent_status
from lab.backend.names import node_dir
from tests.integration.labfixture import lab_from_text, run_valid, two_site_topology

pytestmark = [pytest.mark.integration]

TOPOLOGY = two_site_topology(
    "node-operations", "A kube-router cluster with graceful restart beside a MetalLB one "
    "without.",
    "{name: alpha-k8s, nodes: 2, pods_per_node: 1, speaker: kube-router, "
    "graceful_restart: true}",
    "{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: metallb, "
    "drain: {method: withdraw}, control_plane_delay: 1500ms}",
    "  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}\n"
    "  - {name: web, vip: 192.0.2.80, protocol: tcp, port: 80}")

SCENARIO = """\
name: node-operations
description: Each site's first node drained, then its speaker restarted.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 16, tcp_flows: 2}
settle: 2s
tail: 3s
steps:
  - {fault: node-drain, target: alpha-k8s-n1, duration: 7s}
  - {fault: node-drain, target: beta-k8s-n1, at: 0s, duration: 7s}
"""

RESTART = """\
name: speaker-restart
description: The first node's speaker of each site restarts (2 s down).
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 16, tcp_flows: 0}
settle: 2s
tail: 2s
steps:
  - {fault: speaker-restart, target: alpha-k8s-n1, duration: 2s}
  - {wait: 8s}
  - {fault: speaker-restart, target: beta-k8s-n1, duration: 2s}
  - {wait: 6s}
"""


UNREADY = """\
name: unready
description: beta's first pod fails readiness (its server answers) for 5 s.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 16, tcp_flows: 0}
settle: 3s
tail: 3s
steps:
  - {fault: pod-unready, target: beta-k8s-n1-p1, duration: 5s}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SCENARIO, "nop") as running:
        yield running


def _events(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (result.run_dir / "events.jsonl").read_text().splitlines()]


def _client(event: dict[str, Any], client: str) -> dict[str, Any]:
    (row,) = [r for r in event["clients"] if r["client"] == client and r["service"] == "echo"]
    return row


def test_graceful_restart_is_negotiated_only_where_the_cluster_asks(
        lab: tuple[labs.UpResult, Path]) -> None:
    up, _ = lab
    folder = node_dir(up.state.directory, "alpha-k8s-n1")
    assert "notification-enabled = true" in (folder / "gobgpd.toml").read_text()
    assert "graceful-restart" not in (node_dir(up.state.directory, "beta-k8s-n1")
                                      / "frr.conf").read_text()


def test_a_drain_moves_the_flows_before_the_pods_stop(lab: tuple[labs.UpResult, Path],
                                                      tmp_path: Path) -> None:
    """alpha's node prepends its AS once: its leaf keeps it while the spine moves to the other
    leaf, and no probe is lost. beta's node withdraws its VIPs (its cluster's policy) before
    its pod stops; the pods and the speakers come back at the undo."""
    up, scenario = lab
    result = run_valid(up, scenario, tmp_path)
    applied = {e["target"]: e for e in _events(result)
               if e["source"] == "injector" and e.get("kind") == "fault"}
    alpha, beta = applied["alpha-k8s-n1"]["details"], applied["beta-k8s-n1"]["details"]
    assert alpha["method"] == "prepend" and alpha["prepend"] == 1, alpha
    assert beta["method"] == "withdraw", beta
    withdrawn = [e for e in _events(result) if e["source"] == "agent"
                 and e.get("node") == "beta-k8s-n1" and e.get("kind") == "withdraw"]
    assert withdrawn and max(e["t_ns"] for e in withdrawn) < beta["evicted_ns"], withdrawn
    for details in (alpha, beta):
        assert details["drained_ns"] < details["evicted_ns"] <= details["speaker_stopped_ns"]
    event = result.summary["trials"][0]["events"][-1]  # both drains began at once
    assert _client(event, "east-c1")["lost"] == 0, _client(event, "east-c1")
    for node in ("alpha-k8s-n1", "beta-k8s-n1"):
        status = agent_status(up.state, node)
        assert status["drain"] is None and status["announced"] == ["192.0.2.10", "192.0.2.80"]


def test_a_speaker_restart_costs_nothing_only_with_graceful_restart(
        lab: tuple[labs.UpResult, Path], tmp_path: Path) -> None:
    """alpha's GoBGP stops with a Cease that (RFC 8538) keeps graceful restart going: the
    leaf keeps the node's routes as stale and forwards on. beta's FRR has no graceful
    restart: its leaf withdraws the node's routes, the flows move (a packet loop between
    leaf and spine while they do), and come back when the node announces again."""
    up, _ = lab
    scenario = tmp_path / "restart.yaml"
    scenario.write_text(RESTART.replace("topology.yaml", str(up.state.directory
                                                               / "topology.yaml")))
    result = run_valid(up, scenario, tmp_path)
    graceful, abrupt = result.summary["trials"][0]["events"]
    assert graceful["target"] == "alpha-k8s-n1" and abrupt["target"] == "beta-k8s-n1"
    assert _client(graceful, "east-c1")["lost"] == 0, _client(graceful, "east-c1")
    assert _client(abrupt, "west-c1")["lost"] > 0, _client(abrupt, "west-c1")
    faults = [e["t_ns"] for e in _events(result) if e["source"] == "injector"
              and e.get("kind") == "fault"]
    routes = pd.read_parquet(result.run_dir / "routes.parquet")
    vip_changes = routes[(routes["prefix"] == "192.0.2.10/32") & (routes["t_ns"] > min(faults))]
    for leaf, changed in (("alpha-l1", False), ("beta-l1", True)):
        at_leaf = vip_changes[vip_changes["router"] == leaf]
        assert (len(at_leaf) > 0) == changed, (leaf, at_leaf)
    downs = [e for e in _events(result) if e.get("kind") == "session_down"
             and e.get("router") in ("alpha-l1", "beta-l1")]
    assert {e["router"] for e in downs} == {"alpha-l1", "beta-l1"}, downs
    # the restarted gobgpd opened its sessions once its agent had announced the VIPs again
    injected = [e for e in _events(result) if e["source"] == "injector"
                and e["target"] == "alpha-k8s-n1"]
    stop, start = (e["details"] for e in injected)
    assert {"192.0.2.10", "192.0.2.80"} <= set(stop["announced"]), stop
    assert 0 < start["sessions_opened_after_ms"] < 10_000, start


def test_the_control_plane_delay_shows_between_readiness_and_withdrawal(
        lab: tuple[labs.UpResult, Path], tmp_path: Path) -> None:
    """beta's cluster takes 1.5 s from a readiness decision to its proxy and speaker: the
    node's agent records the change when its pod turns unready, and withdraws the VIP
    1.5 s later; the pod still answers meanwhile, so the flows lose only what the move
    itself costs, far less than the delay."""
    up, _ = lab
    scenario = tmp_path / "unready.yaml"
    scenario.write_text(UNREADY.replace("topology.yaml", str(up.state.directory
                                                               / "topology.yaml")))
    result = run_valid(up, scenario, tmp_path)
    agent = [e for e in _events(result) if e["source"] == "agent"
             and e.get("node") == "beta-k8s-n1"]
    unready = next(e for e in agent if e["kind"] == "pod_unready")
    changed = next(e for e in agent if e["kind"] == "endpoints_changed"
                   and e["t_ns"] >= unready["t_ns"])
    withdrawn = next(e for e in agent if e["kind"] == "withdraw"
                     and e["t_ns"] >= unready["t_ns"])
    assert changed["vips"] == [] and changed["delay_ms"] == 1500, changed
    assert changed["t_ns"] - unready["t_ns"] < 100_000_000
    assert withdrawn["t_ns"] >= changed["due_ns"], (changed, withdrawn)
    assert withdrawn["t_ns"] - changed["due_ns"] < 100_000_000
    (event,) = result.summary["trials"][0]["events"]
    assert _client(event, "west-c1")["outage_ms"] < 500, _client(event, "west-c1")
