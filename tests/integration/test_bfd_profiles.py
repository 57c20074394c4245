"""MetalLB's BFD profiles, for real (docs/speakers.md, "BFD profiles"): beta's MetalLB nodes
run a passive profile with echo mode and multiplier 5 while their leafs keep the fabric's
300 ms x 3. Both ends' bfdd agree on it, and a silent crash of a node is noticed by its leaf
after the node's multiplier times the interval (1.5 s), not the leaf's own (0.9 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backend import labs
from lab.backend.daemons import daemon_json
from tests.integration.labfixture import lab_from_text, run_valid, two_site_topology

pytestmark = [pytest.mark.integration]

TOPOLOGY = two_site_topology(
    "bfd-profiles", "MetalLB nodes with their own BFD profile beside kube-router nodes.",
    "{name: alpha-k8s, nodes: 2, pods_per_node: 1, speaker: kube-router}",
    "{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: metallb, bfd_profile: "
    "{receive_interval: 300ms, transmit_interval: 300ms, multiplier: 5, echo: true, "
    "echo_interval: 100ms, passive: true}}",
    "  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}")

SCENARIO = """\
name: node-crash-profile
description: The beta node answering west-c1 crashes; its leaf's BFD notices after 5 x 300 ms.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 8, tcp_flows: 0}
settle: 2s
tail: 3s
steps:
  - fault: node-crash
    target: {serving: {client: west-c1, service: echo}}
    duration: 5s
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SCENARIO, "bfdprof") as running:
        yield running


def _peers(up: labs.UpResult, router: str) -> dict[str, Any]:
    data: Any = daemon_json(up.backend.router_files(up.state, router), "bfdd",
                            "show bfd peers json")
    return {peer["peer"]: peer for peer in data}


def test_both_ends_run_their_own_profile(lab: tuple[labs.UpResult, Path]) -> None:
    up, _ = lab
    for session in [s for s in up.plan.sessions if s.b.startswith("beta-k8s")]:
        node = _peers(up, session.b)[str(session.a_address)]
        leaf = _peers(up, session.a)[str(session.b_address)]
        assert node["status"] == leaf["status"] == "up", (node, leaf)
        assert node["passive-mode"] is True and leaf["passive-mode"] is False, (node, leaf)
        assert node["detect-multiplier"] == 5 and leaf["remote-detect-multiplier"] == 5
        assert leaf["detect-multiplier"] == 3 and node["remote-detect-multiplier"] == 3
        assert node["echo-transmit-interval"] == 100, node
        # echo packets come back through the leaf: bfdd measures their round trip
        assert node["rtt-max"] > 0 and leaf["echo-transmit-interval"] == 0, (node, leaf)
    alpha = next(s for s in up.plan.sessions if s.b.startswith("alpha-k8s"))
    assert _peers(up, alpha.a)[str(alpha.b_address)]["remote-detect-multiplier"] == 3


def test_the_leaf_notices_a_crash_by_the_nodes_multiplier(
        lab: tuple[labs.UpResult, Path], tmp_path: Path) -> None:
    up, scenario = lab
    result = run_valid(up, scenario, tmp_path)
    (event,) = result.summary["trials"][0]["events"]
    assert event["detection_source"] == "bfd", event
    # the last packet came up to one interval (300 ms) before the crash; 3 x 300 would be 0.9 s
    assert 1150 <= event["detection_ms"] <= 2500, event
