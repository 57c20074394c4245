"""Properties of the plan that must hold for every topology (shipped and generated)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import yaml

from lab import pipeline
from lab.plan.model import LabPlan, LinkKind, Role
from lab.plan.planner import build_plan
from lab.topology.generate import ScaleParameters, scale_topology
from lab.topology.model import Topology
from tests.conftest import SHIPPED_TOPOLOGIES, TOPOLOGIES


def _plans() -> list[LabPlan]:
    plans = [pipeline.plan(path) for path in SHIPPED_TOPOLOGIES]
    plans.append(build_plan(Topology.model_validate(scale_topology(ScaleParameters(sites=3)))))
    return plans


PLANS = _plans()
IDS = [p.topology for p in PLANS]


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_addresses_are_unique(plan: LabPlan) -> None:
    addresses = [e.address.ip for link in plan.links for e in (link.a, link.b)]
    addresses += [n.loopback for n in plan.nodes if n.loopback]
    addresses += [p.address.ip for p in plan.pods()]
    duplicates = [a for a, count in Counter(addresses).items() if count > 1]
    assert duplicates == []


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_pod_cidrs_are_disjoint_and_hold_their_pods(plan: LabPlan) -> None:
    cidrs = [n.pod_cidr for n in plan.nodes if n.pod_cidr is not None]
    for a, b in itertools.combinations(cidrs, 2):
        assert not a.overlaps(b)
    for node in plan.nodes:
        for pod in node.pods:
            assert node.pod_cidr is not None and pod.address.ip in node.pod_cidr
            assert pod.gateway == node.pod_gateway.ip if node.pod_gateway else False


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_interface_names_fit_and_are_unique_per_node(plan: LabPlan) -> None:
    for node in plan.nodes:
        names = [i.name for i in node.interfaces]
        assert len(names) == len(set(names)), node.name
        assert all(len(name) <= 15 for name in names)
    assert all(len(n.name) <= 15 for n in plan.nodes)


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_asns_follow_rfc7938(plan: LabPlan) -> None:
    for site in plan.sites:
        spine_asns = {plan.node(s).asn for s in site.spines}
        leaf_asns = [plan.node(leaf).asn for leaf in site.leafs]
        assert len(spine_asns) == 1
        assert len(set(leaf_asns)) == len(leaf_asns)
        assert spine_asns.isdisjoint(leaf_asns)
        assert all(a is not None and 4_200_000_000 <= a <= 4_294_967_294
                   for a in [*spine_asns, *leaf_asns])
    transit_asns = [n.asn for n in plan.nodes_with_role(Role.TRANSIT)]
    assert len(set(transit_asns)) == len(transit_asns)


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_every_session_runs_over_a_link_between_different_asns(plan: LabPlan) -> None:
    links = {link.id: link for link in plan.links}
    for session in plan.sessions:
        link = links[session.link_id]
        assert {link.a.node, link.b.node} == {session.a, session.b}
        assert session.a_asn != session.b_asn
        assert session.family in link.families
        assert link.a.address.network == link.b.address.network


@pytest.mark.parametrize("plan", PLANS, ids=IDS)
def test_hosts_have_a_default_route_over_their_own_link(plan: LabPlan) -> None:
    for node in plan.nodes_with_role(Role.CLIENT, Role.K8S_NODE):
        links = len(node.interfaces)  # a dual-homed node: one route per leaf and family
        assert sorted(r.prefix.version for r in node.routes) == sorted(
            (4 if family == "ipv4" else 6) for family in node.families for _ in range(links))
        for route in node.routes:
            assert route.prefix.prefixlen == 0
            interface = next(i for i in node.interfaces if i.name == route.dev)
            assert route.via in (interface.peer_address, interface.peer_address6)
            # a node's own packets leave from its pod gateway: the fabric routes to it
            gateways = (node.pod_gateway, node.pod_gateway6)
            assert route.src == next((g.ip for g in gateways if g is not None
                                      and g.version == route.prefix.version), None)


def test_plan_is_deterministic() -> None:
    for path in SHIPPED_TOPOLOGIES:
        assert pipeline.plan(path).to_dict() == pipeline.plan(path).to_dict()


def test_reference_lab_shape() -> None:
    plan = pipeline.plan(TOPOLOGIES / "three-sites.yaml")
    assert [s.name for s in plan.sites] == ["nyc", "ams", "sin"]
    for site in plan.sites:
        assert len(site.spines) == 2 and len(site.leafs) == 4
        cluster = plan.cluster(site.clusters[0])
        assert len(cluster.nodes) == 4
        assert all(len(plan.node(n).pods) == 2 for n in cluster.nodes)
    assert len(plan.nodes_with_role(Role.TRANSIT)) == 3
    assert len(plan.nodes_with_role(Role.CLIENT)) == 6
    assert {s.protocol for s in plan.services} == {"udp", "tcp"}
    wan = [link.impairment.delay_ms for link in plan.links if link.kind == LinkKind.WAN]
    assert all(20 <= d <= 120 for d in wan)


def test_cluster_nodes_spread_over_listed_leafs() -> None:
    doc = yaml.safe_load((TOPOLOGIES / "three-sites.yaml").read_text())
    doc["sites"][0]["clusters"][0]["leafs"] = [2, 3]
    plan = build_plan(Topology.model_validate(doc))
    leafs = [plan.node(n).interfaces[0].peer for n in plan.cluster("nyc-k8s").nodes]
    assert leafs == ["nyc-l2", "nyc-l3", "nyc-l2", "nyc-l3"]


def test_a_clusters_bgp_sets_its_node_sessions_only() -> None:
    """No BFD on node sessions (kube-router before 2.11), BFD in the fabric."""
    doc = yaml.safe_load((TOPOLOGIES / "three-sites.yaml").read_text())
    doc["sites"][0]["clusters"][0]["bgp"] = {"bfd": False, "hold": "6s", "keepalive": "2s"}
    plan = build_plan(Topology.model_validate(doc))
    for session in plan.sessions:
        timers = session.timers
        nyc_node = session.b.startswith("nyc-k8s-") or session.a.startswith("nyc-k8s-")
        assert (timers.bfd is None) == nyc_node, session
        assert (timers.hold_s, timers.keepalive_s) == ((6, 2) if nyc_node else (9, 3)), session
    node = plan.node("nyc-k8s-n1").timers
    assert node is not None and node.bfd is None and node.ecmp == plan.node("nyc-l1").timers.ecmp


def test_speakers_are_named_after_their_projects() -> None:
    """kube-router runs GoBGP, metallb FRR; gobgp and frr stay their names."""
    doc = yaml.safe_load((TOPOLOGIES / "three-sites.yaml").read_text())
    doc["sites"][0]["clusters"][0] |= {"speaker": "metallb"}
    doc["sites"][1]["clusters"][0] |= {"speaker": "kube-router",
                                       "announce_with": "local-endpoint"}
    plan = build_plan(Topology.model_validate(doc))
    assert [c.speaker for c in plan.clusters] == ["frr", "gobgp", "gobgp"]
    assert [c.announce_with for c in plan.clusters] == [
        "ready-endpoint", "local-endpoint", "ready-endpoint"]
    assert plan.node("nyc-k8s-n1").speaker == "frr" and plan.node("ams-k8s-n1").speaker == "gobgp"


def test_site_overrides_only_the_fields_it_sets() -> None:
    doc = yaml.safe_load((TOPOLOGIES / "three-sites.yaml").read_text())
    doc["sites"][1]["bgp"] = {"bfd": False, "hold": "30s", "keepalive": "10s"}
    plan = build_plan(Topology.model_validate(doc))
    ams = plan.node("ams-l1").timers
    nyc = plan.node("nyc-l1").timers
    assert ams is not None and nyc is not None
    assert (ams.hold_s, ams.keepalive_s, ams.bfd, ams.ecmp) == (30, 10, None, nyc.ecmp)
    assert nyc.bfd is not None and nyc.bfd.receive_ms == nyc.bfd.transmit_ms == 300


def test_border_leafs_uplink_instead_of_spines() -> None:
    doc = yaml.safe_load((TOPOLOGIES / "two-sites-mini.yaml").read_text())
    doc["sites"][0]["fabric"] = {"spines": 2, "leafs": 2, "border": "leafs", "border_leafs": 2}
    plan = build_plan(Topology.model_validate(doc))
    site = plan.site("alpha")
    assert site.uplinkers == ("alpha-b1", "alpha-b2")
    uplinks = [s for s in plan.sessions if s.kind == LinkKind.UPLINK and "east" in (s.a, s.b)]
    assert {s.b for s in uplinks} == {"alpha-b1", "alpha-b2"}
    assert plan.node("alpha-b1").asn != plan.node("alpha-b2").asn


def test_generated_scale_topology_has_hundreds_of_speakers() -> None:
    params = ScaleParameters(sites=8, leafs=8, nodes=32)
    plan = build_plan(Topology.model_validate(scale_topology(params)))
    speakers = [n for n in plan.nodes if n.role != Role.CLIENT]
    assert len(speakers) == params.speakers >= 300
