"""`load_balancing: consistent`, for real: with traffic policy Cluster every node proxies to
every pod of the cluster through the same slot table, so a flow that the fabric moves to
another node (here: its node crashed) reaches the pod it had before. One site, three nodes on
three leafs behind one spine, two pods each; two clients with 32 UDP flows each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backend import labs
from lab.backend.inspect import agent_status
from tests.integration.labfixture import lab_from_text, run_valid

pytestmark = [pytest.mark.integration]
REMOTE_PODS_WAIT_S = 10.0  # two readiness periods and more

TOPOLOGY = """\
name: consistent-proxy
description: One site whose nodes proxy to every pod through the same slot table.
defaults:
  bgp: {keepalive: 1s, hold: 3s, connect_retry: 1s, ecmp: 8,
        bfd: {interval: 300ms, multiplier: 3}}
transits: [{name: east}]
sites:
  - name: alpha
    uplinks: [{transit: east}]
    fabric: {spines: 1, leafs: 3}
    clusters: [{name: alpha-k8s, nodes: 3, pods_per_node: 2}]
services:
  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7, traffic_policy: Cluster,
     load_balancing: consistent}
clients:
  - {name: c1, transit: east, delay: 2ms}
  - {name: c2, transit: east, delay: 2ms}
"""

SCENARIO = """\
name: consistent-node-crash
description: The node answering c1 crashes; flows it took in move to the other nodes.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 32, tcp_flows: 0}
settle: 2s
tail: 3s
steps:
  - fault: node-crash
    target: {serving: {client: c1, service: echo}}
    duration: 4s
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SCENARIO, "chash") as running:
        yield running


def test_every_node_proxies_to_every_pod_of_the_cluster(
        lab: tuple[labs.UpResult, Path]) -> None:
    """Each node's agent reaches the other nodes' pods (from its pod gateway: the fabric
    knows no route to its link address) and proxies to all six. The other nodes' pods are
    probed through the fabric, whose routes `up` waits for: their first successful probe
    may come a period after `up` returns."""
    up, _scenario = lab
    deadline = time.monotonic() + REMOTE_PODS_WAIT_S
    for node in ("alpha-k8s-n1", "alpha-k8s-n2", "alpha-k8s-n3"):
        status = agent_status(up.state, node)
        while not all_six_ready(status) and time.monotonic() < deadline:
            time.sleep(0.2)
            status = agent_status(up.state, node)
        assert set(status["pods"].values()) == {"ready"} and len(status["pods"]) == 6, status
        assert len(status["endpoints"]["echo"]) == 6, status


def all_six_ready(status: dict[str, Any]) -> bool:
    pods, endpoints = status.get("pods", {}), status.get("endpoints", {}).get("echo", [])
    return len(pods) == 6 and set(pods.values()) == {"ready"} and len(endpoints) == 6


def test_flows_moved_to_another_node_keep_their_pod(lab: tuple[labs.UpResult, Path],
                                                   tmp_path: Path) -> None:
    up, scenario = lab

    result = run_valid(up, scenario, tmp_path)
    (event,) = result.summary["trials"][0]["events"]
    crashed = event["target"]
    flows = [flow for row in event["clients"] for flow in row["flows"]]
    assert len(flows) == 64
    elsewhere = [f for f in flows if f["node_before"] != crashed]
    # the crashed node took these in (their pods lived on): they lost probes until its
    # leaf withdrew it, then came in through another node
    moved = [f for f in elsewhere if f["lost"] > 0]
    assert moved, elsewhere
    for flow in elsewhere:
        assert flow["pod_after"] == flow["pod_before"], flow
    for flow in moved:
        assert flow["outage_ms"] <= 1500, flow
