"""The delay a lab is configured to have between two of its nodes: the truth the delay
fidelity of a run is measured against (lab.measure.metrics.instrument).

Routing follows the fewest hops here (every hop of a path is a BGP or ECMP choice the
topology makes equal), so the configured one-way delay from one node to another is the sum of
the link delays along a shortest path by hop count. When the shortest paths differ in delay,
which one the routers chose is not the plan's to say: the delay is unknown (None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import networkx as nx

from lab.plan.model import LabPlan


def link_graph(plan: LabPlan) -> nx.Graph:
    """The lab's nodes joined by its links, each edge with its configured one-way delay."""
    graph = nx.Graph()
    graph.add_nodes_from(node.name for node in plan.nodes)
    for link in plan.links:
        graph.add_edge(link.a.node, link.b.node, delay_ms=link.impairment.delay_ms)
    return graph


def one_way_delays_ms(graph: nx.Graph, source: str) -> dict[str, float]:
    """Configured one-way delay from ``source`` to every node it reaches, along the shortest
    paths by hop count; nodes whose shortest paths differ in delay are left out."""
    hops = nx.single_source_shortest_path_length(graph, source)
    low: dict[str, float] = {source: 0.0}
    high: dict[str, float] = {source: 0.0}
    for node in sorted(hops, key=hops.__getitem__)[1:]:
        steps = [(prev, data["delay_ms"]) for prev, data in graph[node].items()
                 if hops.get(prev) == hops[node] - 1]
        low[node] = min(low[prev] + delay for prev, delay in steps)
        high[node] = max(high[prev] + delay for prev, delay in steps)
    return {node: round(low[node], 6) for node in low
            if math.isclose(low[node], high[node], abs_tol=1e-9)}


def expected_rtts(plan: LabPlan, clients: Iterable[str],
                  nodes: Iterable[str]) -> dict[str, dict[str, float]]:
    """Twice the configured one-way delay from each client to each node, where it is known."""
    graph = link_graph(plan)
    targets = list(nodes)
    table: dict[str, dict[str, float]] = {}
    for client in clients:
        delays = one_way_delays_ms(graph, client)
        row = {node: round(2 * delays[node], 6) for node in targets if node in delays}
        if row:
            table[client] = row
    return table


__all__ = ["expected_rtts", "link_graph", "one_way_delays_ms"]
