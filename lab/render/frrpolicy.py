"""What each FRR router's configuration says: neighbours, prefix lists, route maps, BFD.

Every decision about routing policy lives here; the Jinja template only prints the result.
Policy, in words:
- leafs accept from cluster nodes only the service /32s their cluster serves and the pod CIDRs
  of the nodes attached to them, and send nodes nothing;
- the fabric (spine <-> leaf/border) exchanges everything;
- routers that uplink to the WAN tag what they learn there (WAN-LEARNED) and announce to the
  WAN only their site's service /32s that were not learned from the WAN (no transit leaks);
- transits accept from sites only service /32s, exchange everything among themselves and
  originate their clients' access subnets.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from lab.plan.model import BfdTimers, LabPlan, LinkKind, NodePlan, Role, SessionPlan

WAN_LEARNED_COMMUNITY = "64999:100"
ALLOW_ALL = "ALLOW-ALL"
DENY_ALL = "DENY-ALL"


@dataclass(frozen=True)
class PrefixListEntry:
    seq: int
    action: str
    prefix: str
    le: int | None = None


@dataclass(frozen=True)
class PrefixList:
    name: str
    entries: tuple[PrefixListEntry, ...]


@dataclass(frozen=True)
class CommunityList:
    name: str
    community: str


@dataclass(frozen=True)
class RouteMapEntry:
    name: str
    action: str
    seq: int
    description: str = ""
    match_prefix_list: str | None = None
    match_community: str | None = None
    set_community: str | None = None


@dataclass(frozen=True)
class BgpNeighbor:
    address: IPv4Address
    remote_as: int
    description: str
    keepalive_s: int
    hold_s: int
    connect_retry_s: int
    passive: bool
    bfd_profile: str | None
    route_map_in: str
    route_map_out: str


@dataclass(frozen=True)
class BgpConfig:
    asn: int
    router_id: IPv4Address
    ecmp: int
    neighbors: tuple[BgpNeighbor, ...]
    networks: tuple[IPv4Network, ...]
    redistribute_connected_map: str | None


@dataclass(frozen=True)
class BfdPeer:
    address: IPv4Address
    local_address: IPv4Address
    ifname: str
    profile: str


@dataclass(frozen=True)
class FrrConfig:
    hostname: str
    role: str
    site: str | None
    prefix_lists: tuple[PrefixList, ...]
    community_lists: tuple[CommunityList, ...]
    route_maps: tuple[RouteMapEntry, ...]
    bfd_profiles: tuple[BfdTimers, ...]
    bfd_peers: tuple[BfdPeer, ...]
    bgp: BgpConfig | None
    raw: tuple[str, ...]


def _prefix_list(name: str, prefixes: list[IPv4Network], le: int | None = None) -> PrefixList:
    if not prefixes:
        return PrefixList(name, (PrefixListEntry(5, "deny", "any"),))
    return PrefixList(name, tuple(PrefixListEntry(5 * (i + 1), "permit", str(p), le)
                                  for i, p in enumerate(prefixes)))


def _neighbor(node: NodePlan, session: SessionPlan, rm_in: str, rm_out: str) -> BgpNeighbor:
    _, _, _, peer, peer_address, peer_asn = session.side(node.name)
    timers = session.timers
    return BgpNeighbor(peer_address, peer_asn, peer, timers.keepalive_s, timers.hold_s,
                       timers.connect_retry_s, session.listener == node.name,
                       timers.bfd.profile if timers.bfd else None,
                       rm_in, rm_out)


def _site_vips(plan: LabPlan, site: str) -> list[IPv4Network]:
    clusters = set(plan.site(site).clusters)
    return [s.prefix for s in plan.services if clusters.intersection(s.clusters)]


def _policy_for_session(plan: LabPlan, node: NodePlan,
                        session: SessionPlan) -> tuple[str, str]:
    """(route-map in, route-map out) for one session of an FRR router."""
    peer_role = plan.node(session.side(node.name)[3]).role
    if session.kind == LinkKind.NODE:
        if node.role == Role.LEAF:
            return "FROM-NODES", DENY_ALL
        return DENY_ALL, ALLOW_ALL  # an FRR-speaker node: learn nothing, announce its own
    if session.kind == LinkKind.UPLINK:
        if node.role == Role.TRANSIT:
            return "FROM-SITES", ALLOW_ALL
        return "FROM-WAN", "TO-WAN"
    del peer_role
    return ALLOW_ALL, ALLOW_ALL


def _route_maps(node: NodePlan, used: set[str]) -> list[RouteMapEntry]:
    catalogue = {
        ALLOW_ALL: [RouteMapEntry(ALLOW_ALL, "permit", 10)],
        DENY_ALL: [RouteMapEntry(DENY_ALL, "deny", 10)],
        "FROM-NODES": [RouteMapEntry("FROM-NODES", "permit", 10, "service VIPs and pod CIDRs",
                                     match_prefix_list="NODE-PREFIXES")],
        "FROM-WAN": [RouteMapEntry("FROM-WAN", "permit", 10, "tag routes learned from the WAN",
                                   set_community=WAN_LEARNED_COMMUNITY)],
        "TO-WAN": [RouteMapEntry("TO-WAN", "deny", 5, "never re-announce WAN routes",
                                 match_community="WAN-LEARNED"),
                   RouteMapEntry("TO-WAN", "permit", 10, "this site's service VIPs",
                                 match_prefix_list="SITE-VIPS")],
        "FROM-SITES": [RouteMapEntry("FROM-SITES", "permit", 10, "only anycast service VIPs",
                                     match_prefix_list="ANYCAST-VIPS")],
        "CLIENT-NETS": [RouteMapEntry("CLIENT-NETS", "permit", 10, "client access subnets",
                                      match_prefix_list="CLIENT-NETS")],
    }
    return [entry for name in sorted(used) for entry in catalogue[name]]


def _prefix_lists(plan: LabPlan, node: NodePlan, used_maps: set[str]) -> list[PrefixList]:
    lists: list[PrefixList] = []
    if "FROM-NODES" in used_maps:
        attached = [plan.node(i.peer) for i in node.interfaces if i.kind == LinkKind.NODE]
        clusters = {n.cluster for n in attached}
        vips = [s.prefix for s in plan.services if clusters.intersection(s.clusters)]
        pod_cidrs = [n.pod_cidr for n in attached if n.pod_cidr is not None]
        lists.append(_prefix_list("NODE-PREFIXES", vips + pod_cidrs))
    if "TO-WAN" in used_maps and node.site is not None:
        lists.append(_prefix_list("SITE-VIPS", _site_vips(plan, node.site)))
    if "FROM-SITES" in used_maps:
        lists.append(_prefix_list("ANYCAST-VIPS", [s.prefix for s in plan.services]))
    if "CLIENT-NETS" in used_maps:
        nets = [i.address.network for i in node.interfaces if i.kind == LinkKind.ACCESS]
        lists.append(_prefix_list("CLIENT-NETS", nets))
    return lists


def frr_config(plan: LabPlan, node: NodePlan) -> FrrConfig:
    """The configuration of an FRR router, an FRR-speaker node, or a gobgp node's bfdd."""
    if node.role == Role.K8S_NODE and node.speaker == "gobgp":
        return _bfd_companion_config(plan, node)
    sessions = plan.sessions_of(node.name)
    neighbors = []
    used: set[str] = set()
    for session in sessions:
        rm_in, rm_out = _policy_for_session(plan, node, session)
        used.update((rm_in, rm_out))
        neighbors.append(_neighbor(node, session, rm_in, rm_out))
    redistribute = None
    if node.role == Role.TRANSIT and any(i.kind == LinkKind.ACCESS for i in node.interfaces):
        redistribute = "CLIENT-NETS"
        used.add(redistribute)
    networks: list[IPv4Network] = []
    if node.loopback is not None and node.role != Role.TRANSIT:
        networks.append(IPv4Network(f"{node.loopback}/32"))
    if node.pod_cidr is not None:
        networks.append(node.pod_cidr)
    assert node.asn is not None and node.router_id is not None and node.timers is not None
    profiles = sorted({s.timers.bfd for s in sessions if s.timers.bfd},
                      key=lambda b: (b.interval_ms, b.multiplier))
    return FrrConfig(
        hostname=node.name, role=node.role.value, site=node.site,
        prefix_lists=tuple(_prefix_lists(plan, node, used)),
        community_lists=(CommunityList("WAN-LEARNED", WAN_LEARNED_COMMUNITY),)
        if "TO-WAN" in used else (),
        route_maps=tuple(_route_maps(node, used)),
        bfd_profiles=tuple(profiles), bfd_peers=(),
        bgp=BgpConfig(node.asn, node.router_id, node.timers.ecmp, tuple(neighbors),
                      tuple(networks), redistribute),
        raw=node.frr_raw)


def _bfd_companion_config(plan: LabPlan, node: NodePlan) -> FrrConfig:
    """GoBGP has no BFD; FRR's bfdd answers for the node so its leaf can detect failures."""
    peers = []
    profiles = set()
    for session in plan.sessions_of(node.name):
        if session.timers.bfd is None:
            continue
        local, _, ifname, _, peer_address, _ = session.side(node.name)
        peers.append(BfdPeer(peer_address, local, ifname, session.timers.bfd.profile))
        profiles.add(session.timers.bfd)
    return FrrConfig(hostname=node.name, role="k8s-node (bfd for gobgp)", site=node.site,
                     prefix_lists=(), community_lists=(), route_maps=(),
                     bfd_profiles=tuple(sorted(profiles, key=lambda b: b.interval_ms)),
                     bfd_peers=tuple(peers), bgp=None, raw=())
