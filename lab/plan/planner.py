"""Expand a validated Topology into a LabPlan: names, addresses, ASNs, links, sessions, routes.

Deterministic by construction: everything is allocated in file order from fixed pools, so the
same file gives the same plan (golden tests pin it). ASNs follow RFC 7938: the spines of a site
share one ASN, each leaf has its own, from the private 4-byte range; transits use 2-byte
private ASNs; all nodes of a cluster share the cluster's ASN (the kube-router default).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)

from lab.plan import naming
from lab.plan.addressing import PoolAllocator
from lab.plan.model import (
    IPV4,
    IPV6,
    V6_SESSION_SUFFIX,
    BfdTimers,
    BgpTimers,
    ClusterPlan,
    DnsProbePlan,
    DrainPlan,
    Endpoint,
    Family,
    GracefulRestartPlan,
    Impairment,
    InterfacePlan,
    IPNetwork,
    LabPlan,
    LinkKind,
    LinkPlan,
    NodePlan,
    PodPlan,
    ReadinessCheck,
    ReadinessPlan,
    ResilientGroups,
    Role,
    RolloutPlan,
    RoutePlan,
    ServicePlan,
    SessionPlan,
    SitePlan,
    TcpProbePlan,
    WorkloadPlan,
)
from lab.topology.model import BfdProfile, BgpSettings, Cluster, LinkProperties, Site, Topology
from lab.topology.workload import ServiceProbe, Workload

TRANSIT_ASN_BASE = 65000
SITE_ASN_BASE = 4_200_000_000
SITE_ASN_STRIDE = 1000
BORDER_ASN_OFFSET = 200
CLUSTER_ASN_OFFSET = 500
DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")
DEFAULT_ROUTE6 = IPv6Network("::/0")

BUILTIN_TIMERS = BgpTimers(keepalive_s=3, hold_s=9, connect_retry_s=2, ecmp=16,
                           bfd=BfdTimers(receive_ms=300, transmit_ms=300, multiplier=3))


def resolve_timers(*layers: BgpSettings) -> BgpTimers:
    """Built-in defaults, then each layer (defaults, site, cluster for node sessions)
    overriding the fields it sets."""
    timers = BUILTIN_TIMERS
    for layer in layers:
        if layer.keepalive is not None:
            timers = replace(timers, keepalive_s=round(layer.keepalive / 1000))
        if layer.hold is not None:
            timers = replace(timers, hold_s=round(layer.hold / 1000))
        if layer.connect_retry is not None:
            timers = replace(timers, connect_retry_s=round(layer.connect_retry / 1000))
        if layer.ecmp is not None:
            timers = replace(timers, ecmp=layer.ecmp)
        if layer.bfd is not None:
            interval = round(layer.bfd.interval)
            bfd = (BfdTimers(interval, interval, layer.bfd.multiplier)
                   if layer.bfd.enabled else None)
            timers = replace(timers, bfd=bfd)
    return timers


def _impairment(props: LinkProperties) -> Impairment:
    return Impairment(props.delay, props.jitter, props.loss, props.rate)


@dataclass
class _Builder:
    topo: Topology
    nodes: dict[str, NodePlan] = field(default_factory=dict)
    links: list[LinkPlan] = field(default_factory=list)
    sessions: list[SessionPlan] = field(default_factory=list)
    routes: dict[str, list[RoutePlan]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        pools = self.topo.addressing
        self.families = self.topo.families
        self.loopbacks = PoolAllocator("loopbacks", pools.loopbacks)
        self.fabric = PoolAllocator("fabric", pools.fabric)
        self.wan = PoolAllocator("wan", pools.wan)
        self.pods = PoolAllocator("pods", pools.pods)
        self.clients = PoolAllocator("clients", pools.clients)
        v6 = pools.ipv6
        self.v6 = {"loopbacks": PoolAllocator("ipv6.loopbacks", v6.loopbacks),
                   "fabric": PoolAllocator("ipv6.fabric", v6.fabric),
                   "wan": PoolAllocator("ipv6.wan", v6.wan),
                   "pods": PoolAllocator("ipv6.pods", v6.pods),
                   "clients": PoolAllocator("ipv6.clients", v6.clients)}
        self.default_timers = resolve_timers(self.topo.defaults.bgp)

    def add_node(self, node: NodePlan) -> None:
        self.nodes[node.name] = node

    def loopback6(self) -> IPv6Address | None:
        if IPV6 not in self.families:
            return None
        address = self.v6["loopbacks"].host()
        assert isinstance(address, IPv6Address)
        return address

    def link(self, kind: LinkKind, a: str, b: str, pool: PoolAllocator[IPv4Network],
             impairment: Impairment | None = None,
             families: tuple[Family, ...] | None = None) -> LinkPlan:
        """A link numbered from ``pool`` (and from the IPv6 pool of the same name when it
        carries IPv6); ``families`` defaults to every family of the lab."""
        carried = families or self.families
        a_addr, b_addr = pool.p2p()
        assert isinstance(a_addr, IPv4Interface) and isinstance(b_addr, IPv4Interface)
        a6: IPv6Interface | None = None
        b6: IPv6Interface | None = None
        if IPV6 in carried:
            lower, upper = self.v6[pool.name].p2p()
            assert isinstance(lower, IPv6Interface) and isinstance(upper, IPv6Interface)
            a6, b6 = lower, upper
        plan = LinkPlan(f"{a}--{b}", kind, Endpoint(a, b, a_addr, a6), Endpoint(b, a, b_addr, b6),
                        impairment or Impairment(), carried)
        self.links.append(plan)
        return plan

    def session(self, link: LinkPlan, timers: BgpTimers) -> None:
        """One session per family the link carries."""
        a, b = self.nodes[link.a.node], self.nodes[link.b.node]
        assert a.asn is not None and b.asn is not None
        if IPV4 in link.families:
            self.sessions.append(SessionPlan(
                link.id, link.kind, a.name, link.a.address.ip, a.asn, link.a.ifname,
                b.name, link.b.address.ip, b.asn, link.b.ifname, timers))
        if link.a.address6 is not None and link.b.address6 is not None:
            self.sessions.append(SessionPlan(
                link.id + V6_SESSION_SUFFIX, link.kind, a.name, link.a.address6.ip, a.asn,
                link.a.ifname, b.name, link.b.address6.ip, b.asn, link.b.ifname, timers,
                family=IPV6))

    def default_routes(self, node: str, link: LinkPlan, src: IPv4Address | None = None,
                       src6: IPv6Address | None = None) -> None:
        """A host's default routes (per family its link carries) via the link's other end."""
        if IPV4 in link.families:
            self.routes[node].append(RoutePlan(DEFAULT_ROUTE, link.a.address.ip, link.b.ifname,
                                               src))
        if link.a.address6 is not None:
            self.routes[node].append(RoutePlan(DEFAULT_ROUTE6, link.a.address6.ip,
                                               link.b.ifname, src6))


def build_plan(topo: Topology) -> LabPlan:
    builder = _Builder(topo)
    raw = topo.frr_raw
    for index, transit in enumerate(topo.transits, start=1):
        builder.add_node(NodePlan(
            name=transit.name, role=Role.TRANSIT, location=transit.location,
            asn=transit.asn or TRANSIT_ASN_BASE + index, loopback=_v4(builder.loopbacks.host()),
            loopback6=builder.loopback6(), timers=builder.default_timers,
            frr_raw=tuple(raw.transit)))
    for wan_link in topo.wan_links:
        link = builder.link(LinkKind.WAN, *wan_link.between, builder.wan, _impairment(wan_link),
                            _families(wan_link.families))
        builder.session(link, builder.default_timers)
    sites = [_plan_site(builder, index, site) for index, site in enumerate(topo.sites, start=1)]
    clusters = [c for site in topo.sites for c in _plan_clusters(builder, site)]
    _plan_clients(builder)
    services = _plan_services(topo)
    clusters = [replace(c, services=tuple(s.name for s in services if c.name in s.clusters))
                for c in clusters]
    nodes = [_with_groups(topo, _with_interfaces(builder, node))
             for node in builder.nodes.values()]
    return LabPlan(
        topology=topo.name, description=topo.description,
        impairment_driver=topo.defaults.impairment_driver,
        backend=topo.defaults.backend,
        pools=_pools(topo),
        sites=tuple(sites), nodes=tuple(nodes), links=tuple(builder.links),
        sessions=tuple(builder.sessions), clusters=tuple(clusters), services=tuple(services),
        families=builder.families)


def _with_groups(topo: Topology, node: NodePlan) -> NodePlan:
    """A router whose role has resilient ECMP groups (``defaults.ecmp_groups``)."""
    groups = topo.defaults.ecmp_groups.get(node.role.value)  # type: ignore[call-overload]
    if groups is None or groups.type != "resilient":
        return node
    return replace(node, resilient=ResilientGroups(groups.buckets, groups.idle_timer / 1000,
                                                   groups.unbalanced_timer / 1000))


def _pools(topo: Topology) -> dict[str, IPNetwork]:
    pools: dict[str, IPNetwork] = {name: network for name, network
                                   in topo.addressing.model_dump().items() if name != "ipv6"}
    if IPV6 in topo.families:
        pools |= {f"ipv6.{name}": network
                  for name, network in topo.addressing.ipv6.model_dump().items()}
    return pools


def _families(listed: list[Family] | None) -> tuple[Family, ...] | None:
    """A link's families in the lab's order (None: every family of the lab)."""
    return None if listed is None else tuple(f for f in (IPV4, IPV6) if f in listed)


def _v4(address: IPv4Address | IPv6Address) -> IPv4Address:
    assert isinstance(address, IPv4Address)
    return address


def _plan_site(builder: _Builder, index: int, site: Site) -> SitePlan:
    topo = builder.topo
    timers = resolve_timers(topo.defaults.bgp, site.bgp)
    base = SITE_ASN_BASE + index * SITE_ASN_STRIDE
    fabric = site.fabric
    spines = [naming.spine_name(site.name, i) for i in range(1, fabric.spines + 1)]
    leafs = [naming.leaf_name(site.name, i) for i in range(1, fabric.leafs + 1)]
    borders = ([naming.border_name(site.name, i) for i in range(1, fabric.border_leafs + 1)]
               if fabric.border == "leafs" else [])

    def router(name: str, role: Role, asn: int, extra: list[str]) -> None:
        builder.add_node(NodePlan(
            name=name, role=role, site=site.name, location=site.location, asn=asn,
            loopback=_v4(builder.loopbacks.host()), loopback6=builder.loopback6(), timers=timers,
            frr_raw=tuple(getattr(topo.frr_raw, role.value)) + tuple(extra)))

    for name in spines:
        router(name, Role.SPINE, base, site.frr_raw.spine)
    for i, name in enumerate(leafs, start=1):
        router(name, Role.LEAF, base + i, site.frr_raw.leaf)
    for i, name in enumerate(borders, start=1):
        router(name, Role.BORDER, base + BORDER_ASN_OFFSET + i, site.frr_raw.border)
    for spine in spines:
        for below in leafs + borders:
            builder.session(builder.link(LinkKind.FABRIC, spine, below, builder.fabric), timers)
    uplinkers = borders or spines
    for uplink in site.uplinks:
        for border in uplinkers:
            link = builder.link(LinkKind.UPLINK, uplink.transit, border, builder.wan,
                                _impairment(uplink), _families(uplink.families))
            builder.session(link, timers)
    cluster_names = tuple(c.name for c in site.clusters)
    return SitePlan(site.name, site.location, base, tuple(spines), tuple(leafs), tuple(borders),
                    tuple(uplinkers), tuple(u.transit for u in site.uplinks), cluster_names)


def _plan_clusters(builder: _Builder, site: Site) -> Iterator[ClusterPlan]:
    site_index = next(i for i, s in enumerate(builder.topo.sites, start=1) if s.name == site.name)
    for index, cluster in enumerate(site.clusters, start=1):
        site_base = SITE_ASN_BASE + site_index * SITE_ASN_STRIDE
        asn = cluster.asn or site_base + CLUSTER_ASN_OFFSET + index
        timers = replace(resolve_timers(builder.topo.defaults.bgp, site.bgp, cluster.bgp),
                         graceful_restart=_graceful_restart(cluster),
                         node_bfd=_node_bfd(cluster.bfd_profile))
        nodes = list(_plan_cluster_nodes(builder, site, cluster, asn, timers))
        probe = cluster.readiness
        yield ClusterPlan(cluster.name, site.name, asn, cluster.daemon, tuple(nodes),
                          ReadinessPlan(probe.period, probe.timeout, probe.failure_threshold,
                                        probe.success_threshold), services=(),
                          announce_with=cluster.announce_with,
                          drain=DrainPlan(cluster.drain.method, cluster.drain.prepend,
                                          cluster.drain.wait),
                          control_plane_delay_ms=cluster.control_plane_delay,
                          rollout=RolloutPlan(cluster.rollout.max_surge,
                                              cluster.rollout.max_unavailable,
                                              cluster.rollout.pre_stop,
                                              cluster.rollout.termination_grace))


def _node_bfd(profile: BfdProfile | None) -> BfdTimers | None:
    if profile is None:
        return None
    return BfdTimers(round(profile.receive_interval), round(profile.transmit_interval),
                     profile.multiplier,
                     round(profile.echo_interval) if profile.echo else None, profile.passive)


# restart time of each daemon's model when the topology gives none: kube-router's
# --bgp-graceful-restart-time, and FRR's `bgp graceful-restart restart-time` (MetalLB's)
DEFAULT_RESTART_TIME_S = {"gobgp": 90, "frr": 120}


def _graceful_restart(cluster: Cluster) -> GracefulRestartPlan | None:
    settings = cluster.graceful_restart
    if settings is None or not settings.enabled:
        return None
    restart = (DEFAULT_RESTART_TIME_S[cluster.daemon] if settings.restart_time is None
               else max(1, round(settings.restart_time / 1000)))
    return GracefulRestartPlan(restart, max(1, round(settings.deferral_time / 1000)))


def _plan_cluster_nodes(builder: _Builder, site: Site, cluster: Cluster, asn: int,
                        timers: BgpTimers) -> Iterator[str]:
    leaf_numbers = (list(range(1, site.fabric.leafs + 1)) if cluster.leafs == "all"
                    else cluster.leafs)
    for index in range(1, cluster.nodes + 1):
        name = naming.k8s_node_name(cluster.name, index)
        leafs = [naming.leaf_name(site.name, number)
                 for number in _node_leafs(leaf_numbers, index, cluster.leafs_per_node)]
        pod_cidr = builder.pods.block(cluster.pod_cidr_size)
        gateway = IPv4Interface((pod_cidr[1], cluster.pod_cidr_size))
        pod_cidr6 = gateway6 = None
        if IPV6 in builder.families:
            pod_cidr6 = builder.v6["pods"].block(cluster.pod_cidr_size6)
            gateway6 = IPv6Interface((pod_cidr6[1], cluster.pod_cidr_size6))
        pods = tuple(
            PodPlan(naming.pod_name(cluster.name, index, k), name, cluster.name, site.name, k,
                    IPv4Interface((pod_cidr[1 + k], cluster.pod_cidr_size)), gateway.ip,
                    naming.pod_veth_name(k),
                    IPv6Interface((pod_cidr6[1 + k], cluster.pod_cidr_size6))
                    if pod_cidr6 is not None else None,
                    gateway6.ip if gateway6 is not None else None)
            for k in range(1, cluster.pods_per_node + 1))
        links = [builder.link(LinkKind.NODE, leaf, name, builder.fabric) for leaf in leafs]
        link = links[0]
        builder.add_node(NodePlan(
            name=name, role=Role.K8S_NODE, site=site.name, cluster=cluster.name,
            location=site.location, asn=asn, router_id=link.b.address.ip,
            speaker=cluster.daemon, pod_cidr=pod_cidr, pod_gateway=gateway, pods=pods,
            timers=timers,
            frr_raw=tuple(builder.topo.frr_raw.node) + tuple(site.frr_raw.node),
            pod_cidr6=pod_cidr6, pod_gateway6=gateway6))
        # traffic the node sends itself (its agent's probes of other nodes' pods, proxied
        # flows it masquerades) leaves from its pod gateway, which the node announces
        for link in links:  # two leafs: a default route over both (one multipath route)
            builder.default_routes(name, link, gateway.ip,
                                   gateway6.ip if gateway6 is not None else None)
            builder.session(link, timers)
        yield name


def _node_leafs(leaf_numbers: list[int], index: int, per_node: int) -> list[int]:
    """The leaf (or pair of leafs: the list's 1st and 2nd, 3rd and 4th, ...) of the cluster's
    node ``index`` (1-based), in turn over the cluster's leafs."""
    if per_node == 1:
        return [leaf_numbers[(index - 1) % len(leaf_numbers)]]
    pair = (index - 1) % (len(leaf_numbers) // 2)
    return leaf_numbers[2 * pair:2 * pair + 2]


def _plan_clients(builder: _Builder) -> None:
    for client in builder.topo.clients:
        link = builder.link(LinkKind.ACCESS, client.transit, client.name, builder.clients,
                            _impairment(client), _families(client.families))
        builder.add_node(NodePlan(name=client.name, role=Role.CLIENT,
                                  location=builder.nodes[client.transit].location,
                                  families=link.families))
        builder.default_routes(client.name, link)


def _plan_services(topo: Topology) -> list[ServicePlan]:
    all_clusters = tuple(c.name for s in topo.sites for c in s.clusters)
    return [ServicePlan(s.name, s.vip, s.protocol, s.port, s.traffic_policy,
                        all_clusters if s.clusters == "all" else tuple(s.clusters), s.vip6,
                        _workload(s.workload, s.port) if s.workload is not None else None,
                        DnsProbePlan(s.probe.dns.name, s.probe.dns.type, s.probe.dns.identity)
                        if s.probe.dns is not None else None, _tcp_probe(s.probe),
                        s.load_balancing)
            for s in topo.services]


def _tcp_probe(probe: ServiceProbe) -> TcpProbePlan | None:
    if probe.http is not None:
        http = probe.http
        return TcpProbePlan("http", http.interval, http.path, http.host, http.identity_header,
                            http.keepalive)
    if probe.connect is not None:
        return TcpProbePlan("connect", probe.connect.interval)
    return None


def _workload(workload: Workload, service_port: int) -> WorkloadPlan:
    ready = workload.readiness
    check = ReadinessCheck(ready.kind, service_port)
    if ready.dns is not None:
        check = replace(check, name=ready.dns.name, rr_type=ready.dns.type)
    elif ready.http is not None:
        check = replace(check, port=ready.http.port or service_port, path=ready.http.path)
    elif ready.tcp is not None:
        check = replace(check, port=ready.tcp.port or service_port)
    elif ready.udp is not None:
        check = replace(check, port=ready.udp.port or service_port, send=ready.udp.send)
    elif ready.exec is not None:
        check = replace(check, command=tuple(ready.exec))
    return WorkloadPlan(tuple(workload.command), tuple(sorted(workload.files.items())),
                        tuple(sorted(workload.env.items())), check,
                        tuple(sorted(set(workload.packages))))


def _with_interfaces(builder: _Builder, node: NodePlan) -> NodePlan:
    interfaces = []
    for link in builder.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if here.node == node.name:
                interfaces.append(InterfacePlan(
                    here.ifname, here.address, there.node, there.ifname, there.address.ip,
                    link.id, link.kind, here.address6,
                    there.address6.ip if there.address6 is not None else None))
    router_id = node.router_id or node.loopback
    if router_id is None and interfaces:
        router_id = interfaces[0].address.ip
    families = node.families if node.role == Role.CLIENT else builder.families
    return replace(node, interfaces=tuple(interfaces), routes=tuple(builder.routes[node.name]),
                   router_id=router_id, families=families)
