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
IPv6 mirrors IPv4 on its own sessions: each prefix list has an IPv6 twin (NAME6, with the
/128s and IPv6 pod CIDRs), and each route map that matches a prefix list has an entry per
family (FRR's `match ip` does not match an IPv6 route, so the IPv6 entry decides it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lab.plan.model import (
    IPV4,
    IPV6,
    BfdTimers,
    Family,
    IPAddress,
    IPNetwork,
    IPv4Address,
    LabPlan,
    LinkKind,
    NodePlan,
    Role,
    SessionPlan,
    host_prefix,
)

WAN_LEARNED_COMMUNITY = "64999:100"
TO_WAN_VIPS_SEQ = 10  # TO-WAN's first entry that announces the site's VIPs (IPv4's)
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
    family: Family = IPV4

    @property
    def keyword(self) -> str:
        """`ip` or `ipv6`, as FRR's commands spell the family."""
        return "ip" if self.family == IPV4 else "ipv6"


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
    match_family: Family = IPV4  # the family of match_prefix_list

    @property
    def match_keyword(self) -> str:
        return "ip" if self.match_family == IPV4 else "ipv6"


@dataclass(frozen=True)
class BgpNeighbor:
    address: IPAddress
    remote_as: int
    description: str
    keepalive_s: int
    hold_s: int
    connect_retry_s: int
    passive: bool
    bfd_profile: str | None
    route_map_in: str
    route_map_out: str
    family: Family = IPV4


@dataclass(frozen=True)
class AddressFamilyConfig:
    """One `address-family ... unicast` block of `router bgp`."""

    family: Family
    networks: tuple[IPNetwork, ...]
    redistribute_connected_map: str | None
    neighbors: tuple[BgpNeighbor, ...]

    @property
    def keyword(self) -> str:
        return self.family


@dataclass(frozen=True)
class BgpConfig:
    asn: int
    router_id: IPv4Address
    ecmp: int
    neighbors: tuple[BgpNeighbor, ...]
    address_families: tuple[AddressFamilyConfig, ...]
    # an FRR-speaker node with graceful restart: its restart time (the leafs are helpers,
    # FRR's default)
    graceful_restart_s: int | None = None


@dataclass(frozen=True)
class BfdPeer:
    """A single-hop bfdd peer found by its addresses: no interface, so bfdd needs no zebra
    (measured: bfdd 8.4 refuses a peer with an interface it has not heard of from zebra,
    and brings one without up as fast)."""
    address: IPAddress
    local_address: IPAddress
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


def _prefix_lists(name: str, prefixes: list[IPNetwork],
                  families: tuple[Family, ...]) -> list[PrefixList]:
    """The list NAME of the IPv4 prefixes, and NAME6 of the IPv6 ones in a dual-stack lab."""
    lists = []
    for family in families:
        chosen = [p for p in prefixes if (p.version == 4) == (family == IPV4)]
        entries = (tuple(PrefixListEntry(5 * (i + 1), "permit", str(p))
                         for i, p in enumerate(chosen))
                   or (PrefixListEntry(5, "deny", "any"),))
        lists.append(PrefixList(_family_name(name, family), entries, family))
    return lists


def _family_name(name: str, family: Family) -> str:
    return name if family == IPV4 else f"{name}6"


def _neighbor(node: NodePlan, session: SessionPlan, rm_in: str, rm_out: str) -> BgpNeighbor:
    _, _, _, peer, peer_address, peer_asn = session.side(node.name)
    timers = session.timers
    return BgpNeighbor(peer_address, peer_asn, peer, timers.keepalive_s, timers.hold_s,
                       timers.connect_retry_s, session.listener == node.name,
                       bfd.profile if (bfd := session.bfd_at(node.name)) else None,
                       rm_in, rm_out, session.family)


def _site_vips(plan: LabPlan, site: str) -> list[IPNetwork]:
    clusters = set(plan.site(site).clusters)
    return [p for s in plan.services if clusters.intersection(s.clusters) for p in s.prefixes]


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


def family_entry(seq: int, family: Family, families: tuple[Family, ...]) -> int:
    """The sequence number of ``family``'s entry among a route map's per-family entries that
    start at ``seq`` (SEQ for the first family of the lab, SEQ+10 for the second)."""
    return seq + 10 * families.index(family)


def _route_maps(used: set[str], families: tuple[Family, ...]) -> list[RouteMapEntry]:
    def matching(name: str, seq: int, description: str, prefix_list: str) -> list[RouteMapEntry]:
        """permit entries, one per family, each with its own prefix list"""
        return [RouteMapEntry(name, "permit", family_entry(seq, family, families), description,
                              match_prefix_list=_family_name(prefix_list, family),
                              match_family=family)
                for family in families]

    catalogue = {
        ALLOW_ALL: [RouteMapEntry(ALLOW_ALL, "permit", 10)],
        DENY_ALL: [RouteMapEntry(DENY_ALL, "deny", 10)],
        "FROM-NODES": matching("FROM-NODES", 10, "service VIPs and pod CIDRs", "NODE-PREFIXES"),
        "FROM-WAN": [RouteMapEntry("FROM-WAN", "permit", 10, "tag routes learned from the WAN",
                                   set_community=WAN_LEARNED_COMMUNITY)],
        "TO-WAN": [RouteMapEntry("TO-WAN", "deny", 5, "never re-announce WAN routes",
                                 match_community="WAN-LEARNED"),
                   *matching("TO-WAN", TO_WAN_VIPS_SEQ, "this site's service VIPs",
                             "SITE-VIPS")],
        "FROM-SITES": matching("FROM-SITES", 10, "only anycast service VIPs", "ANYCAST-VIPS"),
        "CLIENT-NETS": matching("CLIENT-NETS", 10, "client access subnets", "CLIENT-NETS"),
    }
    return [entry for name in sorted(used) for entry in catalogue[name]]


def _policy_prefix_lists(plan: LabPlan, node: NodePlan,
                         used_maps: set[str]) -> list[PrefixList]:
    lists: list[PrefixList] = []
    families = plan.families
    if "FROM-NODES" in used_maps:
        attached = [plan.node(i.peer) for i in node.interfaces if i.kind == LinkKind.NODE]
        clusters = {n.cluster for n in attached}
        vips = [p for s in plan.services if clusters.intersection(s.clusters) for p in s.prefixes]
        pod_cidrs: list[IPNetwork] = [cidr for n in attached for cidr in (n.pod_cidr, n.pod_cidr6)
                                      if cidr is not None]
        lists += _prefix_lists("NODE-PREFIXES", vips + pod_cidrs, families)
    if "TO-WAN" in used_maps and node.site is not None:
        lists += _prefix_lists("SITE-VIPS", _site_vips(plan, node.site), families)
    if "FROM-SITES" in used_maps:
        lists += _prefix_lists("ANYCAST-VIPS", [p for s in plan.services for p in s.prefixes],
                               families)
    if "CLIENT-NETS" in used_maps:
        nets: list[IPNetwork] = []
        for interface in node.interfaces:
            if interface.kind != LinkKind.ACCESS:
                continue
            link = plan.link(interface.link_id)
            if IPV4 in link.families:
                nets.append(interface.address.network)
            if interface.address6 is not None:
                nets.append(interface.address6.network)
        lists += _prefix_lists("CLIENT-NETS", nets, families)
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
    networks: list[IPNetwork] = []
    if node.role != Role.TRANSIT:
        networks += [host_prefix(a) for a in (node.loopback, node.loopback6) if a is not None]
    networks += [cidr for cidr in (node.pod_cidr, node.pod_cidr6) if cidr is not None]
    assert node.asn is not None and node.router_id is not None and node.timers is not None
    profiles = _profiles(s.bfd_at(node.name) for s in sessions)
    families = tuple(f for f in (IPV4, IPV6) if f == IPV4 or any(
        n.family == f for n in neighbors))
    address_families = tuple(AddressFamilyConfig(
        family, tuple(n for n in networks if (n.version == 4) == (family == IPV4)),
        redistribute, tuple(n for n in neighbors if n.family == family))
        for family in families)
    return FrrConfig(
        hostname=node.name, role=node.role.value, site=node.site,
        prefix_lists=tuple(_policy_prefix_lists(plan, node, used)),
        community_lists=(CommunityList("WAN-LEARNED", WAN_LEARNED_COMMUNITY),)
        if "TO-WAN" in used else (),
        route_maps=tuple(_route_maps(used, plan.families)),
        bfd_profiles=tuple(profiles), bfd_peers=(),
        bgp=BgpConfig(node.asn, node.router_id, node.timers.ecmp, tuple(neighbors),
                      address_families, _restart_time(node, sessions)),
        raw=node.frr_raw)


def _restart_time(node: NodePlan, sessions: list[SessionPlan]) -> int | None:
    if node.role != Role.K8S_NODE:
        return None
    return next((s.timers.graceful_restart.restart_time_s for s in sessions
                 if s.timers.graceful_restart is not None), None)


def _bfd_companion_config(plan: LabPlan, node: NodePlan) -> FrrConfig:
    """GoBGP has no BFD; FRR's bfdd answers for the node so its leaf can detect failures."""
    peers = []
    for session in plan.sessions_of(node.name):
        bfd = session.bfd_at(node.name)
        if bfd is None:
            continue
        local, _, _, _, peer_address, _ = session.side(node.name)
        peers.append(BfdPeer(peer_address, local, bfd.profile))
    return FrrConfig(hostname=node.name, role="k8s-node (bfd for gobgp)", site=node.site,
                     prefix_lists=(), community_lists=(), route_maps=(),
                     bfd_profiles=_profiles(s.bfd_at(node.name)
                                            for s in plan.sessions_of(node.name)),
                     bfd_peers=tuple(peers), bgp=None, raw=())


def _profiles(ends: Iterable[BfdTimers | None]) -> tuple[BfdTimers, ...]:
    """The bfdd profiles a router's sessions use, each once, in name order."""
    return tuple(sorted({bfd for bfd in ends if bfd is not None}, key=lambda b: b.profile))
