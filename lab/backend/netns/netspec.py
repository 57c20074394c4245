"""What the kernel side of a lab looks like, as plain data: namespaces and their sysctls, veth
pairs, bridges, addresses, static routes and neighbour entries. Built from the plan (pure),
applied by ``lab.backend.netns.nsworker`` in one process through netlink.

Every interface gets a MAC derived from its names, and each end of a link and each pod a
permanent neighbour entry for the other side: the kernel's neighbour (ARP) table is one for
all namespaces, capped at ``net.ipv4.neigh.default.gc_thresh3`` (1024 by default, settable
only in the host namespace), and permanent entries do not count against the cap. Without them
a lab of a few hundred speakers fills it and its ARP requests fail ("neighbor table
overflow"); a link is a point-to-point wire, so nothing is lost by not asking. IPv6 (in
dual-stack labs) gets the same: entries for the peer's address and for its link-local address
(EUI-64 of its MAC), the next hop FRR installs for routes learned over IPv6.

IPv6 is switched off in every namespace of an IPv4 lab. In a dual-stack lab it is on with
duplicate address detection off (an address would be unusable for a second or more, and a
point-to-point wire has no duplicates), no router advertisements, and addresses kept when a
link goes down (by default the kernel drops a link's IPv6 addresses with its carrier, and a
link-down fault would leave the link without them when it comes back)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lab.backend.names import mac_address
from lab.backend.netns.names import netns_name
from lab.impair.model import VethPair
from lab.plan import naming
from lab.plan.model import IPV6, InterfacePlan, LabPlan, NodePlan, Role

ROUTER_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/rp_filter": "0",
    "net/ipv4/conf/default/rp_filter": "0",
    "net/ipv4/conf/all/ignore_routes_with_linkdown": "1",  # carrier loss drops routes at once
    "net/ipv4/conf/default/ignore_routes_with_linkdown": "1",
}
HOST_SYSCTLS = {
    "net/ipv4/conf/all/rp_filter": "0",
    "net/ipv4/conf/default/rp_filter": "0",
}
# a pod keeps its routes when the first of its addresses goes (a rolling update gives it a
# second address, then removes the first: lab.faults.rollout)
POD_SYSCTLS = {"net/ipv4/conf/all/promote_secondaries": "1"}
IPV6_OFF = {
    "net/ipv6/conf/all/disable_ipv6": "1",
    "net/ipv6/conf/default/disable_ipv6": "1",
}
IPV6_HOST = {
    "net/ipv6/conf/all/disable_ipv6": "0",
    "net/ipv6/conf/default/disable_ipv6": "0",
    "net/ipv6/conf/all/accept_dad": "0",
    "net/ipv6/conf/default/accept_dad": "0",
    "net/ipv6/conf/all/accept_ra": "0",
    "net/ipv6/conf/default/accept_ra": "0",
    "net/ipv6/conf/all/keep_addr_on_down": "1",
    "net/ipv6/conf/default/keep_addr_on_down": "1",
    "net/ipv6/conf/all/router_solicitations": "0",
    "net/ipv6/conf/default/router_solicitations": "0",
}
IPV6_ROUTER = {
    **IPV6_HOST,
    "net/ipv6/conf/all/forwarding": "1",
    "net/ipv6/conf/all/ignore_routes_with_linkdown": "1",
    "net/ipv6/conf/default/ignore_routes_with_linkdown": "1",
}


@dataclass(frozen=True)
class VethSpec:
    ns: str
    ifname: str
    peer_ns: str
    peer_ifname: str
    mtu: int = 1500
    offloads_off: bool = False  # both ends (links through the userspace emulator)
    mac: str = ""  # "" lets the kernel choose
    peer_mac: str = ""
    exists: bool = False  # made by someone else (containerlab): only configured here


@dataclass(frozen=True)
class AddressSpec:
    ns: str
    ifname: str
    address: str  # "10.0.0.1/31"


@dataclass(frozen=True)
class RouteSpec:
    ns: str
    dst: str
    gateway: str
    ifname: str
    src: str | None = None  # the preferred source of the namespace's own packets


@dataclass(frozen=True)
class BridgeSpec:
    ns: str
    ifname: str
    ports: tuple[str, ...]
    mac: str = ""


@dataclass(frozen=True)
class NeighbourSpec:
    """A permanent neighbour entry: ``address`` is at ``mac`` through ``ifname``."""

    ns: str
    ifname: str
    address: str
    mac: str


@dataclass
class NetworkSpec:
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)  # ns -> key -> value
    veths: list[VethSpec] = field(default_factory=list)
    bridges: list[BridgeSpec] = field(default_factory=list)
    addresses: list[AddressSpec] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)
    neighbours: list[NeighbourSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        return cls(
            sysctls=data["sysctls"],
            veths=[VethSpec(**v) for v in data["veths"]],
            bridges=[BridgeSpec(**{**b, "ports": tuple(b["ports"])}) for b in data["bridges"]],
            addresses=[AddressSpec(**a) for a in data["addresses"]],
            routes=[RouteSpec(**r) for r in data["routes"]],
            neighbours=[NeighbourSpec(**n) for n in data.get("neighbours", [])])


def node_namespaces(lab: str, plan: LabPlan) -> list[str]:
    """Every namespace of the lab except the emulator's: nodes, then pods."""
    names = [netns_name(lab, n.name) for n in plan.nodes]
    names += [netns_name(lab, p.name) for p in plan.pods()]
    return names


# ECMP hashes the L4 5-tuple, so that flows (source ports) spread. The kernel hashes with one
# key for every namespace, so routers in series that hash the same fields make the same choice
# ("hash polarisation": a spine would get only the flows whose hash fell in its share at the
# transit, and use only part of its own paths; measured: one leaf of four never got a flow).
# Real routers each have their own key; here each tier hashes its own subset of the fields
# (policy 3, custom fields: 0x01 source, 0x02 destination address, 0x04 protocol, 0x10 source,
# 0x20 destination port), which makes the tiers' choices independent.
MULTIPATH_FIELDS = {Role.TRANSIT: "0x0035", Role.BORDER: "0x0036", Role.SPINE: "0x0037",
                    Role.LEAF: "0x0033"}


def _is_forwarder(node: NodePlan) -> bool:
    return node.role not in {Role.CLIENT}


def sysctls(plan: LabPlan, forwarder: bool, role: Role | None = None) -> dict[str, str]:
    """A node's (or a pod's, role None) sysctls in this lab."""
    if IPV6 not in plan.families:
        values = (ROUTER_SYSCTLS if forwarder else HOST_SYSCTLS) | IPV6_OFF
    else:
        values = ROUTER_SYSCTLS | IPV6_ROUTER if forwarder else HOST_SYSCTLS | IPV6_HOST
    if forwarder:
        families = ("ipv4",) + (("ipv6",) if IPV6 in plan.families else ())
        fields = MULTIPATH_FIELDS.get(role or Role.K8S_NODE, "0x0037")
        for family in families:
            values = values | {f"net/{family}/fib_multipath_hash_policy": "3",
                               f"net/{family}/fib_multipath_hash_fields": fields}
    return values


def peer_neighbours(lab: str, interface: InterfacePlan) -> list[tuple[str, str]]:
    """(address, MAC) of the permanent neighbour entries an interface has for its peer: the
    peer's IPv4 address, and in a dual-stack link its IPv6 and link-local addresses."""
    mac = mac_address(lab, interface.peer, interface.peer_ifname)
    entries = [(str(interface.peer_address), mac)]
    if interface.peer_address6 is not None:
        entries += [(str(interface.peer_address6), mac), (link_local(mac), mac)]
    return entries


def link_local(mac: str) -> str:
    """The EUI-64 link-local address the kernel gives an interface with this MAC."""
    octets = [int(part, 16) for part in mac.split(":")]
    eui = [octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


def build_network_spec(lab: str, plan: LabPlan, impaired_links: dict[str, list[VethPair]],
                       namer: Callable[[str, str], str] = netns_name,
                       links_exist: bool = False) -> NetworkSpec:
    """The whole kernel side. Impaired links (link id -> the veth pairs their impairment
    driver asked for) are created here too, and then handed to the driver. ``namer`` names
    a node's namespace; with ``links_exist`` every veth pair is already there (containerlab
    made them with these names and MACs) and is only configured."""
    spec = NetworkSpec()
    for node in plan.nodes:
        ns = namer(lab, node.name)
        spec.sysctls[ns] = sysctls(plan, _is_forwarder(node), node.role)
        if node.loopback is not None:
            spec.addresses.append(AddressSpec(ns, "lo", f"{node.loopback}/32"))
        if node.loopback6 is not None:
            spec.addresses.append(AddressSpec(ns, "lo", f"{node.loopback6}/128"))
        for interface in node.interfaces:
            spec.addresses.append(AddressSpec(ns, interface.name, str(interface.address)))
            if interface.address6 is not None:
                spec.addresses.append(AddressSpec(ns, interface.name, str(interface.address6)))
            spec.neighbours += [NeighbourSpec(ns, interface.name, address, mac)
                                for address, mac in peer_neighbours(lab, interface)]
        for route in node.routes:
            spec.routes.append(RouteSpec(ns, str(route.prefix), str(route.via), route.dev,
                                         str(route.src) if route.src is not None else None))
        if node.pods:
            _add_pods(spec, lab, plan, node, namer)
    for link in plan.links:
        macs = {namer(lab, end.node): {end.ifname: mac_address(lab, end.node, end.ifname)}
                for end in (link.a, link.b)}
        if link.id in impaired_links:
            spec.veths += [VethSpec(p.netns, p.ifname, p.peer_netns, p.peer_ifname, p.mtu,
                                    p.offloads_off, macs.get(p.netns, {}).get(p.ifname, ""),
                                    macs.get(p.peer_netns, {}).get(p.peer_ifname, ""))
                           for p in impaired_links[link.id]]
            continue
        spec.veths.append(VethSpec(namer(lab, link.a.node), link.a.ifname,
                                   namer(lab, link.b.node), link.b.ifname,
                                   mac=mac_address(lab, link.a.node, link.a.ifname),
                                   peer_mac=mac_address(lab, link.b.node, link.b.ifname)))
    if links_exist:
        spec.veths = [replace(v, exists=True) for v in spec.veths]
    return spec


def _add_pods(spec: NetworkSpec, lab: str, plan: LabPlan, node: NodePlan,
              namer: Callable[[str, str], str]) -> None:
    ns = namer(lab, node.name)
    assert node.pod_gateway is not None
    bridge_mac = mac_address(lab, node.name, naming.POD_BRIDGE)
    spec.bridges.append(BridgeSpec(ns, naming.POD_BRIDGE, tuple(p.node_ifname for p in node.pods),
                                   bridge_mac))
    spec.addresses.append(AddressSpec(ns, naming.POD_BRIDGE, str(node.pod_gateway)))
    if node.pod_gateway6 is not None:
        spec.addresses.append(AddressSpec(ns, naming.POD_BRIDGE, str(node.pod_gateway6)))
    for pod in node.pods:
        pod_ns = namer(lab, pod.name)
        pod_mac = mac_address(lab, pod.name, naming.POD_IFNAME)
        spec.sysctls[pod_ns] = sysctls(plan, forwarder=False) | POD_SYSCTLS
        spec.veths.append(VethSpec(ns, pod.node_ifname, pod_ns, naming.POD_IFNAME,
                                   mac=mac_address(lab, node.name, pod.node_ifname),
                                   peer_mac=pod_mac))
        spec.addresses.append(AddressSpec(pod_ns, naming.POD_IFNAME, str(pod.address)))
        spec.routes.append(RouteSpec(pod_ns, "0.0.0.0/0", str(pod.gateway), naming.POD_IFNAME))
        spec.neighbours.append(NeighbourSpec(pod_ns, naming.POD_IFNAME, str(pod.gateway),
                                             bridge_mac))
        spec.neighbours.append(NeighbourSpec(ns, naming.POD_BRIDGE, str(pod.address.ip),
                                             pod_mac))
        if pod.address6 is not None and pod.gateway6 is not None:
            spec.addresses.append(AddressSpec(pod_ns, naming.POD_IFNAME, str(pod.address6)))
            spec.routes.append(RouteSpec(pod_ns, "::/0", str(pod.gateway6), naming.POD_IFNAME))
            spec.neighbours += [
                NeighbourSpec(pod_ns, naming.POD_IFNAME, str(pod.gateway6), bridge_mac),
                NeighbourSpec(ns, naming.POD_BRIDGE, str(pod.address6.ip), pod_mac)]
