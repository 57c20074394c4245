"""Rolling updates as rules: the Deployment controller's arithmetic, the order pods are
replaced in and where the new ones live, the cluster's pod list as the agents read it, and the
checks of the topology and scenario fields."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lab import pipeline
from lab.apps.agent.podlist import read_pod_list, write_pod_list
from lab.apps.agent.spec import AgentPod
from lab.apps.server.spec import SpecError
from lab.errors import InputError
from lab.faults.revisions import current_pod, revision_file, write_revision
from lab.faults.rollout import PodInstance, rollout_step, slot_order
from lab.measure.probe.services import instances
from lab.plan.model import RolloutPlan
from lab.plan.naming import pod_instance_name, pod_of_instance
from lab.scenario.load import load_scenario
from tests.conftest import TOPOLOGIES


def _simulate(replicas: int, surge: int, unavailable: int) -> list[tuple[int, int, int]]:
    """(old, new, new ready) after each round, new pods ready one round after creation."""
    old, new, ready, history = replicas, 0, 0, []
    while old or ready < replicas:
        create, delete = rollout_step(replicas, surge, unavailable, old, new, ready)
        ready = new  # the pods created last round are ready now
        new += create
        old -= delete
        assert old + new <= replicas + surge  # never above the surge
        assert old + ready >= replicas - unavailable or delete == 0
        history.append((old, new, ready))
        assert len(history) < 50
    return history


def test_one_surge_none_unavailable_replaces_one_pod_at_a_time() -> None:
    assert rollout_step(4, 1, 0, old=4, new=0, new_ready=0) == (1, 0)
    assert rollout_step(4, 1, 0, old=4, new=1, new_ready=0) == (0, 0)  # wait for readiness
    assert rollout_step(4, 1, 0, old=4, new=1, new_ready=1) == (0, 1)
    assert rollout_step(4, 1, 0, old=3, new=1, new_ready=1) == (1, 0)
    assert _simulate(4, 1, 0)[-1] == (0, 4, 4)


def test_no_surge_deletes_first_and_kubernetes_defaults_do_both() -> None:
    assert rollout_step(4, 0, 1, old=4, new=0, new_ready=0) == (0, 1)
    assert rollout_step(4, 0, 1, old=3, new=0, new_ready=0) == (1, 0)
    # 25 % of 8 pods: a surge of 2 (rounded up) and 2 unavailable (rounded down)
    surge, unavailable = RolloutPlan().limits(8)
    assert (surge, unavailable) == (2, 2)
    assert rollout_step(8, surge, unavailable, old=8, new=0, new_ready=0) == (2, 2)
    assert _simulate(8, 2, 2)[-1] == (0, 8, 8)


def test_limits_round_as_kubernetes_does() -> None:
    assert RolloutPlan("25%", "25%").limits(3) == (1, 0)
    assert RolloutPlan("10%", "10%").limits(4) == (1, 0)
    assert RolloutPlan(0, "10%").limits(4) == (0, 1)  # both 0 after rounding: 1 unavailable
    assert RolloutPlan(0, 0).replaces_nothing and not RolloutPlan(1, 0).replaces_nothing


def test_pods_are_replaced_spread_over_the_nodes_in_their_own_slots(tmp_path: Path) -> None:
    plan = pipeline.plan(TOPOLOGIES / "three-sites.yaml")
    cluster = plan.cluster("nyc-k8s")
    pods = [p for node in cluster.nodes for p in plan.node(node).pods]
    order = [p.name for p in slot_order(pods)]
    assert order[:5] == ["nyc-k8s-n1-p1", "nyc-k8s-n2-p1", "nyc-k8s-n3-p1", "nyc-k8s-n4-p1",
                         "nyc-k8s-n1-p2"]
    first, second = pods[0], pods[1]
    for revision, bank in ((1, 0), (2, 1), (3, 0)):
        pod = PodInstance.of(plan, first, revision)
        assert pod.plan.address.ip == first.address.ip + 2 * bank
        assert pod.plan.address.network == first.address.network
        assert (pod.plan.name, pod.plan.node) == (first.name, first.node)  # the slot's
    # a slot's second address is free: no other pod of the node has it
    assert {PodInstance.of(plan, p, 2).plan.address.ip for p in (first, second)}.isdisjoint(
        {first.address.ip, second.address.ip})
    assert PodInstance.of(plan, first, 2).name == "nyc-k8s-n1-p1-r2"


def test_the_slot_holds_the_pod_of_the_clusters_last_revision(tmp_path: Path) -> None:
    plan = pipeline.plan(TOPOLOGIES / "three-sites.yaml")
    slot = plan.pod("nyc-k8s-n1-p1")
    assert current_pod(plan, tmp_path, slot.name) == (slot, 1)
    write_revision(tmp_path, "nyc-k8s", 2)
    now, revision = current_pod(plan, tmp_path, slot.name)
    assert revision == 2 and now == PodInstance.of(plan, slot, 2).plan != slot
    assert current_pod(plan, tmp_path, "ams-k8s-n1-p1")[1] == 1  # per cluster
    revision_file(tmp_path, "nyc-k8s").write_text("nonsense")
    assert current_pod(plan, tmp_path, slot.name) == (slot, 1)


def test_pod_names_of_each_revision() -> None:
    assert pod_instance_name("nyc-k8s-n1-p1", 1) == "nyc-k8s-n1-p1"
    assert pod_instance_name("nyc-k8s-n1-p1", 3) == "nyc-k8s-n1-p1-r3"
    assert pod_of_instance("nyc-k8s-n1-p1-r3") == "nyc-k8s-n1-p1"
    assert pod_of_instance("nyc-k8s-n1-p1") == "nyc-k8s-n1-p1"
    assert pod_of_instance("sin-rack-n1-p1") == "sin-rack-n1-p1"


def test_the_pod_list_round_trips_and_refuses_nonsense(tmp_path: Path) -> None:
    path = tmp_path / "pods.json"
    assert read_pod_list(path) is None
    entry = {"name": "a-r2", "address": "10.64.0.4", "health_port": 8080, "local": True}
    write_pod_list(path, [(entry, False), (dict(entry, name="a", address="10.64.0.2"), True)])
    listed = read_pod_list(path)
    assert listed is not None
    assert [p.name for p in listed.pods] == ["a-r2", "a"] and listed.terminating == {"a"}
    assert listed.serving == (AgentPod("a-r2", IPv4Address("10.64.0.4"), 8080, True),)
    path.write_text(json.dumps({"pods": [{"pod": entry, "terminating": False}] * 2}))
    with pytest.raises(SpecError, match="listed twice"):
        read_pod_list(path)
    path.write_text(json.dumps({"pods": [{"pod": {"name": "x"}, "terminating": "no"}]}))
    with pytest.raises(SpecError):
        read_pod_list(path)


def _scenario(tmp_path: Path, step: str, topology: str = "two-sites-mini.yaml") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndescription: d\ntopology: {TOPOLOGIES / topology}\n"
                    f"steps:\n  - {step}\n")
    return path


@pytest.mark.parametrize(("step", "message"), [
    ("{fault: pod-kill, target: alpha-k8s-n1-p1, max_surge: 1}",
     "`max_surge:` does not apply to pod-kill"),
    ("{fault: rolling-update, target: alpha-k8s, max_surge: 0, max_unavailable: 0}",
     "both 0"),
    ("{fault: rolling-update, target: alpha-k8s, max_surge: '150%'}",
     "is not a share of the replicas"),
    ("{fault: rolling-update, target: alpha-k8s-n1}", "alpha-k8s-n1"),
])
def test_bad_rollout_steps_are_refused(tmp_path: Path, step: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_scenario(_scenario(tmp_path, step))
    assert message in str(caught.value)


def test_a_small_pod_cidr_cannot_roll_and_a_workload_can(tmp_path: Path) -> None:
    text = (TOPOLOGIES / "two-sites-mini.yaml").read_text().replace(
        "{name: alpha-k8s, nodes: 2, pods_per_node: 1}",
        "{name: alpha-k8s, nodes: 2, pods_per_node: 3, pod_cidr_size: 29}")
    (tmp_path / "small.yaml").write_text(text)
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ndescription: d\ntopology: {tmp_path / 'small.yaml'}\n"
                    "steps:\n  - {fault: rolling-update, target: alpha-k8s}\n")
    with pytest.raises(InputError, match="no room for a second address per pod"):
        load_scenario(path)
    load_scenario(_scenario(tmp_path, "{fault: rolling-update, target: nyc-k8s}",
                            "web-anycast.yaml"))


def test_the_topology_refuses_a_rollout_that_replaces_nothing(tmp_path: Path) -> None:
    text = (TOPOLOGIES / "two-sites-mini.yaml").read_text().replace(
        "{name: alpha-k8s, nodes: 2, pods_per_node: 1}",
        "{name: alpha-k8s, nodes: 2, pods_per_node: 1, "
        "rollout: {max_surge: 0, max_unavailable: '0%'}}")
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(InputError, match="max_surge and max_unavailable are both 0"):
        pipeline.plan(tmp_path / "t.yaml")


def test_an_answer_from_a_new_pod_is_placed_in_its_slot_under_its_own_name() -> None:
    plan = pipeline.plan(TOPOLOGIES / "three-sites.yaml")
    known = instances(plan)
    assert known["nyc-k8s-n1-p1-r2"] == {"site": "nyc", "cluster": "nyc-k8s",
                                         "node": "nyc-k8s-n1", "pod": "nyc-k8s-n1-p1-r2"}
    assert known["nyc-k8s-n1-p1"]["pod"] == "nyc-k8s-n1-p1"
    assert known.get("nyc-k8s-n9-p1-r2") is None and known.get("who-knows") is None
    assert len(known) == len(plan.pods())
