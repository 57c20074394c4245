"""Rolling updates, for real (docs/speakers.md, "Rolling updates"): each cluster's four pods
(two nodes, two pods each) replaced by new pods at new addresses. alpha rolls the safe way
(one pod of surge, none unavailable, a preStop sleep): every new pod is ready before an old
one goes, and no probe is lost, also of the DNS service its pods answer with NSD (each new pod
runs its own, configured with its own name, address and folder). beta, with a 1.5 s
control-plane delay, rolls with no surge and no preStop hook: its old pods exit while the
proxies still send to them, for as long as the delay."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.apps.agent.podlist import PODS_FILE, read_pod_list
from lab.backend import labs, workloads
from lab.backend.inspect import agent_status, probe_all
from lab.backend.names import node_dir
from lab.backend.processes import is_alive
from lab.backend.state import load_state, save_state
from lab.faults.primitives import LabHandle, restart_workloads
from lab.proc import run
from tests.conftest import TOPOLOGIES, require_tool
from tests.integration.labfixture import lab_from_text, run_valid, two_site_topology

pytestmark = [pytest.mark.integration]

# the shipped DNS lab's service (NSD in every pod), here in alpha's pods only
NSD_SERVICE = next(s for s in yaml.safe_load((TOPOLOGIES / "dns-anycast.yaml").read_text())[
    "services"] if s["name"] == "dns") | {"clusters": ["alpha-k8s"]}
ALPHA_SLOTS = ("alpha-k8s-n1-p1", "alpha-k8s-n1-p2", "alpha-k8s-n2-p1", "alpha-k8s-n2-p2")

TOPOLOGY = two_site_topology(
    "rolling-update", "Two clusters of four pods, rolled two ways.",
    "{name: alpha-k8s, nodes: 2, pods_per_node: 2, speaker: kube-router, "
    "rollout: {max_surge: 1, max_unavailable: 0, pre_stop: 2s, termination_grace: 4s}}",
    "{name: beta-k8s, nodes: 2, pods_per_node: 2, speaker: metallb, "
    "control_plane_delay: 1500ms}",
    "  - {name: echo, vip: 192.0.2.10, protocol: udp, port: 7}\n"
    "  - {name: web, vip: 192.0.2.80, protocol: tcp, port: 80}\n"
    f"  - {json.dumps(NSD_SERVICE)}")

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
    require_tool("nsd")
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
    for client in ("east-c1", "west-c1"):  # both reach alpha's DNS service
        for row in _rows(result, client):
            if row["service"] in ("echo", "dns"):
                assert row["lost"] == 0, row
    # the agents list the new pods only, and find them ready
    for node in ("alpha-k8s-n1", "alpha-k8s-n2"):
        listed = read_pod_list(node_dir(up.state.directory, node) / PODS_FILE)
        assert listed is not None and not listed.terminating
        assert {p.name for p in listed.pods} == {f"{node}-p1-r2", f"{node}-p2-r2"}
        status = agent_status(up.state, node)
        assert status["pods"] == {f"{node}-p1-r2": "ready", f"{node}-p2-r2": "ready"}
        for service in ("echo", "dns"):
            assert set(status["endpoints"][service]) == {str(p.address) for p in listed.pods}
        # the node knows its new pods' addresses for good, and no longer the old ones'
        argv = up.backend.exec_argv(up.state, node, ["ip", "neigh", "show", "dev", "br-pods"])
        neighbours = {line.split()[0]: line.split()[-1]
                      for line in run(argv).stdout.splitlines() if line.strip()}
        assert {str(p.address): "PERMANENT" for p in listed.pods}.items() <= \
            neighbours.items(), neighbours
        assert not {str(p.address) for p in up.plan.node(node).pods} & neighbours.keys()
    # each new pod runs its own NSD, from its own folder; the old ones are gone
    assert set(details["stopped_pids"]) >= {r.pid for r in up.state.processes
                                           if r.kind == workloads.KIND}
    for slot in ALPHA_SLOTS:
        assert _workload_config(up, slot) == workloads.folder(up.state.directory, slot, "dns",
                                                              2) / "nsd.conf"
    # the clients' DNS answers come from new pods (their NSID is the new pod's name)
    answers = [a for a in probe_all(up.backend, up.state, up.plan) if a.service == "dns"]
    assert answers and all(a.pod is not None and a.pod.endswith("-r2") for a in answers), answers


def _workload_config(up: labs.UpResult, slot: str) -> Path:
    """The configuration file the slot's one running NSD was started with."""
    (record,) = up.backend.processes(load_state(up.state.lab), slot, (workloads.KIND,))
    argv = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode().split("\0")
    return Path(argv[argv.index("-c") + 1])


def test_a_rolled_pod_killed_comes_back_as_the_new_pod(
        lab: tuple[labs.UpResult, Path]) -> None:
    """After the safe rollout (the test above): a pod's workload restarted (pod-kill's undo)
    is the new pod's, not the plan's."""
    up, _ = lab
    handle = LabHandle(load_state(up.state.lab), up.plan, up.backend)
    slot = ALPHA_SLOTS[0]
    killed = handle.processes(slot, (workloads.KIND,))
    assert up.backend.signal(killed, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(is_alive(r) for r in killed) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(restart_workloads(handle, slot)) == 1
    for record in killed:  # as the runner does once pod-kill's undo ran
        handle.state.processes.remove(record)
    save_state(handle.state)
    assert _workload_config(up, slot) == workloads.folder(up.state.directory, slot, "dns",
                                                          2) / "nsd.conf"


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
