"""Rolling updates, for real (docs/speakers.md, "Rolling updates"): each cluster's four pods
(two nodes, two pods each) replaced by new pods at new addresses. alpha rolls the safe way
(one pod of surge, none unavailable, a preStop sleep): every new pod is ready before an old
one goes, and no probe is lost. beta, with a 1.5 s control-plane delay, rolls with no surge
and no preStop hook: its old pods exit while the proxies still send to them, for as long as
the delay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.apps.agent.podlist import PODS_FILE, read_pod_list
from lab.backend import labs
from lab.backend.inspect import agent_status
from lab.backend.names import node_dir
from tests.integration.labfixture import lab_from_text, run_valid, two_site_topology

pytestmark = [pytest.mark.integration]

TOPOLOGY = two_site_topology(
    "rolling-update", "Two clusters of four pods, rolled two ways.",
    "{name: alpha-k8s, nodes: 2, pods_per_node: 2, speaker: kube-router, "
    "rollout: {max_surge: 1, max_unavailable: 0, pre_stop: 2s, termination_grace: 4s}}",
    "{name: beta-k8s, nodes: 2, pods_per_node: 2, speaker: metallb, "
    "control_plane_delay: 1500ms}",
    "  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}\n"
    "  - {name: web, vip: 192.0.2.80, protocol: tcp, port: 80}")

SAFE = """\
name: rolling-update-safe
description: alpha's pods replaced one at a time, each new pod ready before an old one goes.
topology: topology.yaml
probe: {interval: 1ms, services: all, flows: 16, tcp_flows: 4}
settle: 2s
tail: 2s
steps:
  - {fault: rolling-update, target: alpha-k8s}
"""

UNSAFE = """\
name: rolling-update-unsafe
description: beta's pods replaced with no surge and no preStop hook.
topology: topology.yaml
probe: {interval: 1ms, services: [echo], flows: 16, tcp_flows: 0}
settle: 2s
tail: 2s
steps:
  - {fault: rolling-update, target: beta-k8s, max_surge: 0, max_unavailable: 1,
     pre_stop: 0s, termination_grace: 5s}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[labs.UpResult, Path]]:
    with lab_from_text(tmp_path_factory, TOPOLOGY, SAFE, "roll") as running:
        yield running


def _applied(result: Any) -> dict[str, Any]:
    events = [json.loads(line)
              for line in (result.run_dir / "events.jsonl").read_text().splitlines()]
    (fault,) = [e for e in events if e["source"] == "injector" and e.get("kind") == "fault"]
    details: dict[str, Any] = fault["details"]
    return details


def _rows(result: Any, client: str) -> list[dict[str, Any]]:
    (event,) = result.summary["trials"][0]["events"]
    return [r for r in event["clients"] if r["client"] == client]


def test_a_safe_rollout_loses_nothing(lab: tuple[labs.UpResult, Path], tmp_path: Path) -> None:
    up, scenario = lab
    result = run_valid(up, scenario, tmp_path)
    details = _applied(result)
    assert (details["revision"], details["replicas"], details["max_surge"],
            details["max_unavailable"]) == (2, 4, 1, 0), details
    new, old = details["new"], details["old"]
    assert [p["pod"] for p in new] == ["alpha-k8s-n1-p1-r2", "alpha-k8s-n2-p1-r2",
                                       "alpha-k8s-n1-p2-r2", "alpha-k8s-n2-p2-r2"]
    for fresh, gone in zip(new, sorted(old, key=lambda p: p["deleted_ns"]), strict=True):
        assert fresh["address"] != gone["address"]
        assert fresh["ready_ns"] <= gone["deleted_ns"], (fresh, gone)  # no pod unavailable
        assert 1.9e9 <= gone["sigterm_ns"] - gone["deleted_ns"] < 2.5e9, gone  # preStop
        assert gone["gone_ns"] - gone["deleted_ns"] < 4.5e9, gone  # within the grace
    for row in _rows(result, "east-c1"):
        if row["service"] == "echo":
            assert row["lost"] == 0, row
    # the agents list the new pods only, and find them ready
    for node in ("alpha-k8s-n1", "alpha-k8s-n2"):
        listed = read_pod_list(node_dir(up.state.directory, node) / PODS_FILE)
        assert listed is not None and not listed.terminating
        assert {p.name for p in listed.pods} == {f"{node}-p1-r2", f"{node}-p2-r2"}
        status = agent_status(up.state, node)
        assert status["pods"] == {f"{node}-p1-r2": "ready", f"{node}-p2-r2": "ready"}
        assert set(status["endpoints"]["echo"]) == {str(p.address) for p in listed.pods}


def test_no_surge_and_no_pre_stop_lose_the_control_plane_delay(
        lab: tuple[labs.UpResult, Path], tmp_path: Path) -> None:
    up, _ = lab
    scenario = tmp_path / "unsafe.yaml"
    scenario.write_text(UNSAFE.replace("topology.yaml",
                                       str(up.state.directory / "topology.yaml")))
    result = run_valid(up, scenario, tmp_path)
    details = _applied(result)
    assert (details["max_surge"], details["max_unavailable"]) == (0, 1), details
    for gone in details["old"]:
        assert gone["sigterm_ns"] - gone["deleted_ns"] < 0.2e9, gone  # no preStop
    (row,) = _rows(result, "west-c1")
    # flows on an old pod went unanswered until its proxy heard of the deletion: up to a
    # readiness period (the agent reads the pod list) and the 1.5 s delay; a flow the
    # proxy then sent to the next pod deleted meanwhile waited as long again
    assert 1000 <= row["outage_ms"] <= 6000, row
