"""The configured delay between two nodes of a plan: along the fewest hops, unknown when the
shortest paths differ in delay."""

from __future__ import annotations

import networkx as nx

from lab.measure.calibrate import access_link, corrections
from lab.plan.model import Role
from lab.plan.paths import expected_rtts, one_way_delays_ms
from lab.plan.planner import build_plan
from lab.topology.validate import load_topology
from tests.conftest import TOPOLOGIES


def test_the_reference_lab_has_the_round_trips_its_file_configures() -> None:
    plan = build_plan(load_topology(TOPOLOGIES / "three-sites.yaml")[0])
    table = expected_rtts(plan, [n.name for n in plan.nodes_with_role(Role.CLIENT)],
                          [n.name for n in plan.nodes_with_role(Role.K8S_NODE)])
    # us-c1: access 4 ms + nyc's uplink 1 ms; to ams add the us-east/eu-west WAN 38 ms
    assert table["us-c1"]["nyc-k8s-n1"] == 10.0
    assert table["us-c1"]["ams-k8s-n1"] == 2 * (4 + 38 + 1)
    assert table["ap-c2"]["sin-k8s-n4"] == 32.0
    assert len(table) == 6 and all(len(row) == 12 for row in table.values())


def test_shortest_paths_that_differ_in_delay_leave_the_delay_unknown() -> None:
    graph = nx.Graph()
    graph.add_edge("c", "a", delay_ms=1.0)
    graph.add_edge("c", "b", delay_ms=1.0)
    graph.add_edge("a", "n", delay_ms=2.0)
    graph.add_edge("b", "n", delay_ms=2.0)
    graph.add_edge("n", "far", delay_ms=0.5)
    graph.add_edge("b", "m", delay_ms=3.0)
    graph.add_edge("a", "m", delay_ms=1.0)
    graph.add_node("alone")
    # c-a-m is 2 ms and c-b-m 4 ms: two equal-hop paths, two delays; a longer detour with
    # the same delay as the shortest path does not count
    graph.add_edge("c", "x", delay_ms=0.0)
    graph.add_edge("x", "y", delay_ms=0.0)
    graph.add_edge("y", "n", delay_ms=0.0)
    delays = one_way_delays_ms(graph, "c")
    assert delays["n"] == 3.0 and delays["far"] == 3.5
    assert "m" not in delays and "alone" not in delays


def test_calibration_takes_half_the_round_trip_error_off_each_direction_of_the_access_link(
) -> None:
    plan = build_plan(load_topology(TOPOLOGIES / "three-sites.yaml")[0])
    link = access_link(plan, "us-c1")
    assert link is not None and link.impairment.delay_ms == 4.0
    applied = {link.id: 100.0}
    result = corrections(plan, {"us-c1": 1.5, "eu-c1": -1.0, "ap-c2": 100.0},
                         lambda link_id: applied.get(link_id, 0.0))
    assert result["us-c1"] == (link.id, 850.0)  # 100 already applied + 1.5 ms / 2
    assert result["eu-c1"][1] == 0.0  # never below zero
    # 100 ms is queueing in an overloaded machine, not the lab's cost: left as it was
    assert result["ap-c2"][1] == 0.0
    small = build_plan(load_topology(TOPOLOGIES / "two-sites-mini.yaml")[0])
    # never more than the link's own delay (2 ms)
    assert corrections(small, {"east-c1": 1.9}, lambda _l: 1500.0)["east-c1"][1] == 2000.0
    assert corrections(plan, {"nyc-k8s-n1": 1.0}, lambda _l: 0.0) == {
        "nyc-k8s-n1": (None, 0.0)}
