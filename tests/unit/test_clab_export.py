"""The containerlab export of a plan (lab.backend.containerlab.export): a pure function of the
plan that containerlab's own JSON schema accepts, with every node, pod and link of the plan,
the plan's interface names and MACs, and the emulator node only where links need it."""

from __future__ import annotations

import json
import os
from pathlib import PurePosixPath
from typing import Any

import jsonschema
import pytest
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
    errors = list(jsonschema.Draft7Validator(_schema()).iter_errors(yaml.safe_load(text)))
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
    assert document["mgmt"] == {"skip-when-unused": True}
    router = next(n for n in plan.nodes if n.runs_frr)
    assert document["topology"]["nodes"][router.name]["binds"] == [
        f"nodes/{router.name}:{ROOT}/nodes/{router.name}"]


def test_export_is_a_pure_function_of_the_plan(plan: LabPlan) -> None:
    first = render_topology("x", plan, export_topology("x", plan, IMAGES, ROOT, True))
    again = render_topology("x", plan, export_topology("x", plan, IMAGES, ROOT, True))
    assert first == again
