"""What the rendered configurations say: routing policy, BFD, GoBGP, service proxy."""

from __future__ import annotations

import tomllib
from pathlib import Path

import jinja2
import pytest

from lab import pipeline
from lab.backend.daemons import NodeFiles, gobgpd_argv
from lab.plan.model import LabPlan, Role
from lab.render.configs import (
    Endpoint,
    frr_daemons,
    render_gobgpd_toml,
    render_node,
    render_service_proxy,
    render_template,
)
from tests.conftest import TOPOLOGIES


@pytest.fixture(scope="module")
def plan() -> LabPlan:
    return pipeline.plan(TOPOLOGIES / "three-sites.yaml")


def test_leaf_accepts_only_vips_and_pod_cidrs_from_nodes(plan: LabPlan) -> None:
    conf = render_node(plan, plan.node("nyc-l1"))["frr.conf"]
    node = plan.node("nyc-k8s-n1")
    assert "ip prefix-list NODE-PREFIXES seq 5 permit 192.0.2.53/32" in conf
    assert f"permit {node.pod_cidr}" in conf
    peer = node.interfaces[0].address.ip
    assert f"neighbor {peer} route-map FROM-NODES in" in conf
    assert f"neighbor {peer} route-map DENY-ALL out" in conf
    assert f"neighbor {peer} bfd profile bfd-300x3" in conf


def test_borders_announce_only_site_vips_and_never_wan_routes(plan: LabPlan) -> None:
    conf = render_node(plan, plan.node("nyc-s1"))["frr.conf"]
    assert "route-map TO-WAN deny 5" in conf and "match community WAN-LEARNED" in conf
    assert "ip prefix-list SITE-VIPS seq 5 permit 192.0.2.53/32" in conf
    transit_address = plan.node("us-east").interface_to("nyc-s1").address.ip
    assert f"neighbor {transit_address} route-map TO-WAN out" in conf
    assert f"neighbor {transit_address} route-map FROM-WAN in" in conf
    assert "maximum-paths 16" in conf and "multipath-relax" in conf


def test_transit_accepts_only_vips_from_sites_and_originates_client_nets(plan: LabPlan) -> None:
    conf = render_node(plan, plan.node("us-east"))["frr.conf"]
    assert "ip prefix-list ANYCAST-VIPS seq 10 permit 192.0.2.80/32" in conf
    client_net = plan.node("us-c1").interfaces[0].address.network
    assert f"permit {client_net}" in conf
    assert "redistribute connected route-map CLIENT-NETS" in conf


def test_gobgp_node_config_and_bfd_companion(plan: LabPlan) -> None:
    node = plan.node("ams-k8s-n2")
    config = tomllib.loads(render_gobgpd_toml(plan, node))
    assert config["global"]["config"]["as"] == node.asn
    neighbor = config["neighbors"][0]["config"]
    leaf = node.interfaces[0]
    assert neighbor["neighbor-address"] == str(leaf.peer_address)
    assert neighbor["peer-as"] == plan.node(leaf.peer).asn
    assert frr_daemons(node) == ["bfdd"]
    conf = render_node(plan, node)["frr.conf"]
    # no interface: bfdd runs without zebra, which alone could resolve one
    assert f"peer {leaf.peer_address} local-address {leaf.address.ip}\n" in conf
    assert "router bgp" not in conf


def test_a_graceful_restart_starts_gobgpd_with_its_sessions_held_down(plan: LabPlan) -> None:
    """The restart configuration differs from the node's only by admin-down on every
    neighbor (lab.faults.primitives.open_gobgp_sessions enables them)."""
    node = plan.node("ams-k8s-n2")
    normal = tomllib.loads(render_gobgpd_toml(plan, node))
    held = tomllib.loads(render_gobgpd_toml(plan, node, sessions_down=True))
    assert all(n["config"]["admin-down"] is True for n in held["neighbors"])
    for neighbor in held["neighbors"]:
        del neighbor["config"]["admin-down"]
    assert held == normal
    files = NodeFiles(Path("/x"))
    assert str(files.gobgpd_restart_toml) in gobgpd_argv(files, restarting=True)
    assert str(files.gobgpd_toml) in gobgpd_argv(files)


def test_frr_speaker_node_announces_its_pod_cidr() -> None:
    plan = pipeline.plan(TOPOLOGIES / "two-sites-mini.yaml")
    node = plan.node("beta-k8s-n1")
    files = render_node(plan, node)
    assert "gobgpd.toml" not in files
    assert f"network {node.pod_cidr}" in files["frr.conf"]
    assert frr_daemons(node) == ["zebra", "bgpd", "bfdd"]


def test_service_proxy_spreads_over_ready_endpoints(plan: LabPlan) -> None:
    node = plan.node("sin-k8s-n3")
    text = render_service_proxy(plan, node)
    assert "numgen random mod 2 vmap" in text
    for pod in node.pods:
        assert f"dnat ip to {pod.address.ip}:53" in text
    none_ready = render_service_proxy(plan, node, {"dns": [], "web": []})
    assert "no ready endpoint" in none_ready and "dnat" not in none_ready
    remote = plan.node("sin-k8s-n1").pods[0].address.ip
    cluster = render_service_proxy(plan, node, {"dns": [Endpoint(remote, False)]})
    assert "meta mark set 0x00004000 dnat ip to" in cluster


def test_clients_get_no_files_and_routers_get_frr(plan: LabPlan) -> None:
    for node in plan.nodes:
        files = render_node(plan, node)
        if node.role == Role.CLIENT:
            continue
        if node.role != Role.K8S_NODE:
            assert set(files) == {"frr.conf", "daemons", "vtysh.conf"}


def test_templates_refuse_undefined_values() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_template("daemons.j2", hostname="x")


def test_raw_frr_lines_are_appended_per_role() -> None:
    import yaml

    from lab.plan.planner import build_plan
    from lab.topology.model import Topology

    doc = yaml.safe_load((TOPOLOGIES / "two-sites-mini.yaml").read_text())
    doc["frr_raw"] = {"leaf": ["ip prefix-list EXTRA seq 5 permit 203.0.113.0/24"]}
    doc["sites"][0]["frr_raw"] = {"spine": ["bgp community-list standard X permit 1:1"]}
    plan = build_plan(Topology.model_validate(doc))
    assert "permit 203.0.113.0/24" in render_node(plan, plan.node("beta-l1"))["frr.conf"]
    spine = render_node(plan, plan.node("alpha-s1"))["frr.conf"]
    assert "community-list standard X" in spine
    assert "community-list standard X" not in render_node(plan, plan.node("beta-s1"))["frr.conf"]
