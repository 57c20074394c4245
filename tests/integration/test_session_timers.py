"""Timers and BFD per kind of session, for real: a cluster whose node sessions run without
BFD (kube-router before 2.11) and with a 3 s hold timer, in a fabric that runs BFD 300 ms x 3.
The leafs' bfdd knows the spine and not the nodes, and a silent node crash is noticed by the
hold timer, not by BFD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.bfdstart import bfd_peer_states
from tests.integration.labfixture import lab_from_text, run_valid

pytestmark = [pytest.mark.integration]

TOPOLOGY = """\
name: session-timers
description: Node sessions without BFD, the fabric with it.
defaults:
  bgp: {keepalive: 1s, hold: 3s, connect_retry: 1s, ecmp: 8,
        bfd: {interval: 300ms, multiplier: 3}}
transits: [{name: east}]
sites:
  - name: alpha
    uplinks: [{transit: east}]
    fabric: {spines: 1, leafs: 2}
    clusters:
      - {name: alpha-k8s, nodes: 2, pods_per_node: 1, bgp: {bfd: false, keepalive: 1s, hold: 3s}}
services:
  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}
clients:
  - {name: c1, transit: east, delay: 2ms}
"""

SCENARIO = """\
name: node-crash-no-node-bfd
description: The node answering c1 crashes; only its session's 3 s hold timer can notice.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 4, tcp_flows: 0}
settle: 2s
tail: 3s
steps:
  - fault: node-crash
    target: {serving: {client: c1, service: echo}}
    duration: 6s
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SCENARIO, "timers") as running:
        yield running


def test_the_leafs_run_bfd_with_the_spine_only(lab: tuple[labs.UpResult, Path]) -> None:
    up, _scenario = lab
    for leaf in ("alpha-l1", "alpha-l2"):
        peers = bfd_peer_states(up.backend.router_files(up.state, leaf))
        spine = [s for s in up.plan.sessions if leaf in (s.a, s.b) and "alpha-s1" in (s.a, s.b)]
        node = [s for s in up.plan.sessions if leaf in (s.a, s.b) and "k8s" in s.a + s.b]
        assert spine and node
        for session in spine:
            peer = session.a_address if session.b == leaf else session.b_address
            assert peers.get(str(peer)) == "up", (leaf, peers)
        for session in node:
            peer = session.a_address if session.b == leaf else session.b_address
            assert str(peer) not in peers, (leaf, peers)


def test_a_node_crash_is_noticed_by_the_hold_timer(lab: tuple[labs.UpResult, Path],
                                                   tmp_path: Path) -> None:
    up, scenario = lab

    result = run_valid(up, scenario, tmp_path)
    (event,) = result.summary["trials"][0]["events"]
    # the last keepalive came up to 1 s before the crash: the hold timer expires 2-3 s after
    assert event["detection_source"] == "bgp", event
    assert 1800 <= event["detection_ms"] <= 3500, event
    (row,) = event["clients"]
    on_target = [f for f in row["flows"] if f["node_before"] == event["target"]]
    assert on_target
    for flow in on_target:
        assert 1800 <= flow["outage_ms"] <= 4000, flow
