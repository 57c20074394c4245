"""The containerlab export of a plan (lab.backend.containerlab.export): a pure function of the
plan that containerlab's own JSON schema accepts, with every node, pod and link of the plan,
the plan's interface names and MACs, and the emulator node only where links need it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import jsonschema
import pytest
import regex
import yaml

from lab import pipeline
from lab.backend.bringup import impaired_links
from lab.backend.containerlab.export import export_topology, render_topology
from lab.backend.containerlab.names import EMULATOR_CLAB_NODE, LAB_LABEL
from lab.backend.containerlab.tools import clab_schema
from lab.backend.names import mac_address
from lab.plan.model import LabPlan
from tests.conftest import TOPOLOGIES

IMAGES = {"router": "r:1", "node": "n:1", "pod": "p:1", "client": "c:1"}
ROOT = PurePosixPath("/run/anylab/x")


@pytest.fixture(scope="module", params=["two-sites-mini.yaml", "three-sites.yaml"])
def plan(request: pytest.FixtureRequest) -> LabPlan:
    return pipeline.plan(TOPOLOGIES / request.param)


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """Draft 7 with patterns as containerlab (Go, ECMAScript) reads them: its schema uses
    Unicode classes such as \\p{L}, which Python's `re` does not know."""
    def pattern(validator: Any, wanted: str, instance: Any, _schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not regex.search(wanted, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {wanted!r}")

    cls = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": pattern})
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _schema() -> dict[str, Any]:
    path = clab_schema()
    if not path.exists():
        if os.environ.get("ANYLAB_FULL_SETUP"):
            pytest.fail(f"{path} missing: `make containerlab-setup` should have built it")
        pytest.skip("containerlab not built here (make containerlab-setup)")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@pytest.mark.parametrize("emulated", [True, False])
def test_export_is_valid_for_containerlab(plan: LabPlan, emulated: bool) -> None:
    document = export_topology("x", plan, IMAGES, ROOT, emulated)
    text = render_topology("x", plan, document)
    errors = list(_validator(_schema()).iter_errors(yaml.safe_load(text)))
    assert errors == [], [f"{e.json_path}: {e.message}" for e in errors[:5]]


def test_every_node_pod_and_link_is_there(plan: LabPlan) -> None:
    document = export_topology("x", plan, IMAGES, ROOT, emulated=True)
    nodes, links = document["topology"]["nodes"], document["topology"]["links"]
    pods = plan.pods()
    assert set(nodes) == ({n.name for n in plan.nodes} | {p.name for p in pods}
                          | {EMULATOR_CLAB_NODE})
    assert all(node["labels"][LAB_LABEL] == "x" for node in nodes.values())
    impaired = impaired_links(plan)
    assert len(links) == len(plan.links) + len(impaired) + len(pods)
    ends = {(e["node"], e["interface"]): e.get("mac") for link in links
            for e in link["endpoints"]}
    for node in plan.nodes:
        for interface in node.interfaces:
            assert ends[(node.name, interface.name)] == mac_address("x", node.name,
                                                                    interface.name)
    assert all(link["mtu"] == 1500 for link in links)


def test_without_the_emulator_links_are_direct(plan: LabPlan) -> None:
    document = export_topology("x", plan, IMAGES, ROOT, emulated=False)
    assert EMULATOR_CLAB_NODE not in document["topology"]["nodes"]
    assert len(document["topology"]["links"]) == len(plan.links) + len(plan.pods())


def test_nodes_bind_their_folder_at_the_labs_path_and_run_unprivileged(plan: LabPlan) -> None:
    document = export_topology("x", plan, IMAGES, ROOT, emulated=True)
    linux = document["topology"]["kinds"]["linux"]
    assert linux["privileged"] is False and linux["network-mode"] == "none"
    assert linux["restart-policy"] == "no"  # not back without links after a reboot
    assert document["mgmt"] == {"skip-when-unused": True}
    router = next(n for n in plan.nodes if n.runs_frr)
    assert document["topology"]["nodes"][router.name]["binds"] == [
        f"nodes/{router.name}:{ROOT}/nodes/{router.name}"]


def test_export_is_a_pure_function_of_the_plan(plan: LabPlan) -> None:
    first = render_topology("x", plan, export_topology("x", plan, IMAGES, ROOT, True))
    again = render_topology("x", plan, export_topology("x", plan, IMAGES, ROOT, True))
    assert first == again


HOSTS = ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize("emulated", [True, False])
def test_a_split_keeps_every_node_once_and_joins_the_cut_links(plan: LabPlan,
                                                               emulated: bool) -> None:
    from lab.backend.containerlab.split import VNI_BASE, split_topology

    document = export_topology("x", plan, IMAGES, ROOT, emulated)
    parts = split_topology(plan, document, HOSTS)
    assert [p["name"] for p in parts] == ["x-h1", "x-h2"]
    schema = _schema()
    for part in parts:
        assert list(_validator(schema).iter_errors(part)) == []
    placed = [set(p["topology"]["nodes"]) - {EMULATOR_CLAB_NODE} for p in parts]
    assert placed[0].isdisjoint(placed[1])
    assert placed[0] | placed[1] == set(document["topology"]["nodes"]) - {EMULATOR_CLAB_NODE}
    vxlan = [(index, link) for index, p in enumerate(parts)
             for link in p["topology"]["links"] if link["type"] == "vxlan"]
    vnis = sorted({link["vni"] for _, link in vxlan})
    assert vnis == list(range(VNI_BASE, VNI_BASE + len(vnis)))
    for vni in vnis:  # each cut link: one end on each host, pointing at the other
        ends = [(index, link) for index, link in vxlan if link["vni"] == vni]
        assert sorted(i for i, _ in ends) == [0, 1]
        assert all(link["remote"] == HOSTS[1 - index] for index, link in ends)
    kept = sum(len(p["topology"]["links"]) for p in parts)
    assert kept == len(document["topology"]["links"]) + len(vnis)


def test_sites_go_to_the_hosts_in_turn_and_transits_follow_them() -> None:
    from lab.backend.containerlab.split import placement

    plan = pipeline.plan(TOPOLOGIES / "three-sites.yaml")
    place = placement(plan, 2)
    assert [place[f"{site}-l1"] for site in ("nyc", "ams", "sin")] == [0, 1, 0]
    assert place["eu-west"] == place["ams-s1"] == place["eu-c1"] == 1
    assert place["nyc-k8s-n1-p1"] == place["nyc-k8s-n1"] == 0


def test_a_split_needs_distinct_addresses() -> None:
    from lab.backend.containerlab.split import check_hosts
    from lab.errors import InputError

    with pytest.raises(InputError) as caught:
        check_hosts(["10.0.0.1", "host-b"])
    assert "not an IP address" in caught.value.issues[0].message
    with pytest.raises(InputError):
        check_hosts(["10.0.0.1", "10.0.0.1"])


def test_a_node_binds_its_pods_workload_folders_for_exec_checks() -> None:
    """A node's agent runs its pods' `exec` readiness checks, which may read the files
    `{dir}` names: the pods' workload folders are bound into the node at the lab's path."""
    plan = pipeline.plan(TOPOLOGIES / "dns-anycast.yaml")
    document = export_topology("x", plan, IMAGES, ROOT, emulated=True)
    node = next(n for n in plan.nodes if n.pods)
    assert document["topology"]["nodes"][node.name]["binds"] == [
        f"nodes/{node.name}:{ROOT}/nodes/{node.name}",
        *(f"pods/{p.name}/workload:{ROOT}/pods/{p.name}/workload" for p in node.pods)]
    pod = node.pods[0]
    assert document["topology"]["nodes"][pod.name]["binds"] == [
        f"pods/{pod.name}:{ROOT}/pods/{pod.name}"]
    assert document["topology"]["nodes"][pod.name]["image"] == IMAGES["pod"]
