"""lab.backend.netns.netspec.build_network_spec on the two-sites-mini plan: one veth per link and
pod, impaired links replaced by their driver's veth pairs, MACs and permanent neighbour
entries that agree with each other, and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from lab import pipeline
from lab.backend.bringup import impaired_links
from lab.backend.names import mac_address
from lab.backend.netns.names import hidden_netns, netns_name
from lab.backend.netns.netspec import NetworkSpec, VethSpec, build_network_spec
from lab.impair.model import VethPair
from lab.plan import naming
from lab.plan.model import LabPlan, LinkPlan
from tests.conftest import TOPOLOGIES

LAB = "unit"


@pytest.fixture(scope="module")
def plan() -> LabPlan:
    return pipeline.render(TOPOLOGIES / "two-sites-mini.yaml")[0]


def link_veth(link: LinkPlan) -> VethSpec:
    return VethSpec(netns_name(LAB, link.a.node), link.a.ifname,
                    netns_name(LAB, link.b.node), link.b.ifname,
                    mac=mac_address(LAB, link.a.node, link.a.ifname),
                    peer_mac=mac_address(LAB, link.b.node, link.b.ifname))


def driver_pairs(plan: LabPlan) -> dict[str, list[VethPair]]:
    """Two pairs per impaired link through the emulator's namespace, as a driver asks."""
    emu = hidden_netns(LAB)
    return {link.id: [VethPair(netns_name(LAB, link.a.node), link.a.ifname, emu, f"i{k}a",
                               1400 + k, True),
                      VethPair(netns_name(LAB, link.b.node), link.b.ifname, emu, f"i{k}b",
                               1400 + k, True)]
            for k, link in enumerate(impaired_links(plan))}


def test_one_veth_per_link_and_pod(plan: LabPlan) -> None:
    spec = build_network_spec(LAB, plan, {})
    pods = [VethSpec(netns_name(LAB, p.node), p.node_ifname, netns_name(LAB, p.name),
                     naming.POD_IFNAME, mac=mac_address(LAB, p.node, p.node_ifname),
                     peer_mac=mac_address(LAB, p.name, naming.POD_IFNAME))
            for p in plan.pods()]
    assert pods
    assert sorted(spec.veths, key=repr) == sorted(
        [link_veth(link) for link in plan.links] + pods, key=repr)
    assert all(v.mtu == 1500 and not v.offloads_off for v in spec.veths)


def test_impaired_links_use_the_driver_pairs(plan: LabPlan) -> None:
    clean = build_network_spec(LAB, plan, {})
    pairs = driver_pairs(plan)
    assert set(pairs) == {"east--west", "east--alpha-s1", "west--beta-s1", "east--east-c1",
                          "west--west-c1"}
    spec = build_network_spec(LAB, plan, pairs)
    replaced = {link_veth(link) for link in plan.links if link.id in pairs}
    assert [v for v in spec.veths if not v.offloads_off] == [
        v for v in clean.veths if v not in replaced]
    # the node ends keep their planned MACs; the emulator's ports get the kernel's
    assert [v for v in spec.veths if v.offloads_off] == [
        VethSpec(p.netns, p.ifname, p.peer_netns, p.peer_ifname, p.mtu, p.offloads_off,
                 mac_address(LAB, p.netns.removeprefix(f"al.{LAB}."), p.ifname), "")
        for link_pairs in pairs.values() for p in link_pairs]
    assert (spec.addresses, spec.routes, spec.bridges, spec.sysctls, spec.neighbours) == (
        clean.addresses, clean.routes, clean.bridges, clean.sysctls, clean.neighbours)


def test_every_address_peer_has_a_permanent_neighbour_with_its_mac(plan: LabPlan) -> None:
    """Each end of a link, each pod and each pod gateway: the entry's MAC is the MAC the
    other side's interface is created with."""
    spec = build_network_spec(LAB, plan, {})
    macs = {(v.ns, v.ifname): v.mac for v in spec.veths}
    macs |= {(v.peer_ns, v.peer_ifname): v.peer_mac for v in spec.veths}
    macs |= {(b.ns, b.ifname): b.mac for b in spec.bridges}
    owner = {(a.ns, a.address.split("/")[0]): (a.ns, a.ifname) for a in spec.addresses}
    neighbours = {(n.ns, n.address): n for n in spec.neighbours}
    assert len(neighbours) == len(spec.neighbours)
    links = sum(len(n.interfaces) for n in plan.nodes)
    assert len(spec.neighbours) == links + 2 * len(plan.pods())
    for entry in spec.neighbours:
        holder = [where for (ns, address), where in owner.items() if address == entry.address]
        assert len(holder) == 1, entry
        assert macs[holder[0]] == entry.mac, entry
    assert len(set(macs.values())) == len(macs)  # no two interfaces share a MAC
    assert all(m.startswith("02:") and len(m) == 17 for m in macs.values())


@pytest.mark.parametrize("impaired", [False, True])
def test_round_trip_through_json(plan: LabPlan, impaired: bool) -> None:
    spec = build_network_spec(LAB, plan, driver_pairs(plan) if impaired else {})
    back = NetworkSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    assert any(v.offloads_off for v in back.veths) == impaired
