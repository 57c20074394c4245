"""Dual-homed nodes, for real: each site one rack of two leafs with both nodes attached to
both (`leafs_per_node: 2`). A leaf that loses power costs no node: the flows that crossed it
enter through the other leaf within tens of milliseconds; a link that goes down and up again
leaves the node's default route over both leafs as it was."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from tests.integration.labfixture import lab_from_text, run_valid, two_site_topology

pytestmark = [pytest.mark.integration]

TOPOLOGY = two_site_topology(
    "dual-homed", "Every node on both leafs of its site.",
    "{name: alpha-k8s, nodes: 2, pods_per_node: 1, leafs_per_node: 2}",
    "{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: metallb, leafs_per_node: 2}",
    "  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}")

SCENARIO = """\
name: leaf-power-off
description: Each site's first leaf loses power for 4 s, one after the other.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 16, tcp_flows: 0}
settle: 2s
tail: 2s
steps:
  - {fault: node-power-off, target: alpha-l1, duration: 4s}
  - {wait: 3s}
  - {fault: node-power-off, target: beta-l1, duration: 4s}
  - {wait: 3s}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SCENARIO, "dhm") as running:
        yield running


def _default_route(up: labs.UpResult, node: str) -> str:
    argv = up.backend.net_argv(up.state, node, ["ip", "route", "show", "default"])
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_each_node_has_a_session_and_a_default_route_through_both_leafs(
        lab: tuple[labs.UpResult, Path]) -> None:
    up, _ = lab
    for node, leafs in (("alpha-k8s-n1", ("alpha-l1", "alpha-l2")),
                        ("beta-k8s-n2", ("beta-l1", "beta-l2"))):
        assert {s.side(node)[3] for s in up.plan.sessions_of(node)} == set(leafs)
        route = _default_route(up, node)
        assert all(f"dev {leaf}" in route for leaf in leafs), route


def test_a_leaf_that_loses_power_costs_no_node(lab: tuple[labs.UpResult, Path],
                                               tmp_path: Path) -> None:
    up, scenario = lab
    result = run_valid(up, scenario, tmp_path)
    for event, client in zip(result.summary["trials"][0]["events"], ("east-c1", "west-c1"),
                             strict=True):
        (row,) = [r for r in event["clients"] if r["client"] == client]
        site = (client.startswith("east") and "alpha") or "beta"
        assert row["outage_ms"] < 300, row
        for flow in row["flows"]:  # every flow still answered by the site's nodes
            assert flow["site_after"] == site and flow["recovered"], flow
    # the undo brought the links back: both next hops again
    assert _default_route(up, "alpha-k8s-n1").count("nexthop") == 2


def test_a_link_down_and_up_restores_the_multipath_default_route(
        lab: tuple[labs.UpResult, Path]) -> None:
    up, _ = lab
    before = _default_route(up, "beta-k8s-n1")
    up.backend.set_links(up.state, up.plan, "beta-k8s-n1", ["beta-l2"], up=False)
    try:
        during = _default_route(up, "beta-k8s-n1")
        assert "beta-l1" in during
    finally:
        up.backend.set_links(up.state, up.plan, "beta-k8s-n1", ["beta-l2"], up=True)
    after = _default_route(up, "beta-k8s-n1")
    assert after.count("nexthop") == 2 and after == before, (before, after)
