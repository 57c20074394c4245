"""The speakers' announcement rules, for real (docs/speakers.md): two sites, each a cluster of
two nodes with one pod each; alpha's kube-router speakers announce while a node has a local
endpoint (`announce_with: local-endpoint`), beta's MetalLB speakers only with a ready one. The
first node's pod of each site fails its readiness probe for 6 s while its server answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.inspect import agent_status
from tests.integration.labfixture import lab_from_text, run_valid, two_site_topology

pytestmark = [pytest.mark.integration]

TOPOLOGY = two_site_topology(
    "speakers", "kube-router's check by node beside MetalLB's check by readiness.",
    "{name: alpha-k8s, nodes: 2, pods_per_node: 1, speaker: kube-router, "
    "announce_with: local-endpoint}",
    "{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: metallb}",
    "  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}")

SCENARIO = """\
name: unready-pods
description: The first node's pod of each site fails readiness for 6 s; its server answers.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 16, tcp_flows: 0}
settle: 2s
tail: 3s
steps:
  - {fault: pod-unready, target: alpha-k8s-n1-p1, duration: 6s}
  - {fault: pod-unready, target: beta-k8s-n1-p1, at: 0s, duration: 6s}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SCENARIO, "spk") as running:
        yield running


def test_each_site_runs_its_projects_daemon(lab: tuple[labs.UpResult, Path]) -> None:
    up, _scenario = lab
    assert [(c.name, c.speaker, c.announce_with) for c in up.plan.clusters] == [
        ("alpha-k8s", "gobgp", "local-endpoint"), ("beta-k8s", "frr", "ready-endpoint")]
    for node in ("alpha-k8s-n1", "beta-k8s-n1"):
        assert agent_status(up.state, node)["announced"] == ["192.0.2.10"]


def test_the_check_by_node_keeps_a_blackhole_announced(lab: tuple[labs.UpResult, Path],
                                                       tmp_path: Path) -> None:
    """Both pods answer until their nodes' agents have seen three failed readiness probes
    (2-3 s); then both proxies drop the VIP's traffic. MetalLB's node withdraws the VIP in
    the same step, and its flows move to the other node; kube-router's keeps announcing it,
    and its flows are lost until the pod is ready again."""
    up, scenario = lab
    result = run_valid(up, scenario, tmp_path)
    # two faults at the same instant: the first one's window closes when the second begins,
    # and the second's holds both sites' losses
    event = result.summary["trials"][0]["events"][-1]
    assert event["target"] == "beta-k8s-n1-p1", event
    for client, node, lost_at_least, lost_at_most in (
            ("east-c1", "alpha-k8s-n1", 2500.0, 6000.0),
            ("west-c1", "beta-k8s-n1", 0.0, 500.0)):
        (row,) = [r for r in event["clients"] if r["client"] == client]
        on_node = [f for f in row["flows"] if f["node_before"] == node]
        assert on_node, row
        for flow in on_node:
            assert lost_at_least <= flow["outage_ms"] <= lost_at_most, (client, flow)
            if node.startswith("beta"):
                assert flow["node_after"] == "beta-k8s-n2", (client, flow)
