"""The deterministic lab plan: every node, interface, address, ASN, session and route.

Frozen dataclasses, built by ``lab.plan.planner.build_plan`` from a validated Topology. The plan
does not depend on the lab's name, so the same file always gives the same plan.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

# where every pod's built-in server answers the kubelet-style health checks (GET /ready)
HEALTH_PORT = 8080

IPv4Address = ipaddress.IPv4Address
IPv4Interface = ipaddress.IPv4Interface
IPv4Network = ipaddress.IPv4Network
IPv6Address = ipaddress.IPv6Address
IPv6Interface = ipaddress.IPv6Interface
IPv6Network = ipaddress.IPv6Network
IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

Family = Literal["ipv4", "ipv6"]
IPV4: Family = "ipv4"
IPV6: Family = "ipv6"
V6_SESSION_SUFFIX = "/v6"  # an IPv6 session's id is its link's id plus this


def family_of(value: IPAddress | IPNetwork | IPv4Interface | IPv6Interface) -> Family:
    return IPV4 if value.version == 4 else IPV6


def service_label(service: str, family: str) -> str:
    """How messages, tables and figures name what a client asks for: ``dns``, or
    ``dns (IPv6)``."""
    return f"{service} (IPv6)" if family == IPV6 else str(service)


def host_prefix(address: IPAddress) -> IPNetwork:
    """The /32 or /128 of one address (how a VIP or a loopback is announced)."""
    return ipaddress.ip_network(address)


class Role(StrEnum):
    TRANSIT = "transit"
    SPINE = "spine"
    LEAF = "leaf"
    BORDER = "border"
    K8S_NODE = "k8s-node"
    CLIENT = "client"


FRR_ROUTER_ROLES = frozenset({Role.TRANSIT, Role.SPINE, Role.LEAF, Role.BORDER})


class LinkKind(StrEnum):
    WAN = "wan"  # transit - transit
    UPLINK = "uplink"  # site border - transit
    FABRIC = "fabric"  # spine - leaf / border leaf
    NODE = "node"  # leaf - cluster node
    ACCESS = "access"  # transit - client


@dataclass(frozen=True)
class BfdTimers:
    """One end's BFD: the intervals it asks for, its detection multiplier, echo mode (at
    ``echo_ms``) and passive mode (it waits for the peer's first packet)."""

    receive_ms: int
    transmit_ms: int
    multiplier: int
    echo_ms: int | None = None
    passive: bool = False

    @property
    def profile(self) -> str:
        """The bfdd profile's name, e.g. ``bfd-300x3``, ``bfd-300-100x5-echo50-passive``."""
        intervals = (f"{self.receive_ms}" if self.receive_ms == self.transmit_ms
                     else f"{self.receive_ms}-{self.transmit_ms}")
        return (f"bfd-{intervals}x{self.multiplier}"
                + (f"-echo{self.echo_ms}" if self.echo_ms is not None else "")
                + ("-passive" if self.passive else ""))

    def describe(self) -> str:
        intervals = (f"{self.receive_ms}ms" if self.receive_ms == self.transmit_ms
                     else f"rx {self.receive_ms}ms tx {self.transmit_ms}ms")
        return (f"{intervals} x{self.multiplier}"
                + (f", echo {self.echo_ms}ms" if self.echo_ms is not None else "")
                + (", passive" if self.passive else ""))


@dataclass(frozen=True)
class GracefulRestartPlan:
    """BGP graceful restart of a node session: the speaker advertises the capability with
    ``restart_time_s``; GoBGP, restarting, waits up to ``deferral_time_s`` for End-of-RIB."""

    restart_time_s: int
    deferral_time_s: int


@dataclass(frozen=True)
class BgpTimers:
    keepalive_s: int
    hold_s: int
    connect_retry_s: int
    ecmp: int
    bfd: BfdTimers | None
    graceful_restart: GracefulRestartPlan | None = None  # node sessions of a cluster only
    # the node's end of a node session where it differs from ``bfd`` (MetalLB's BFDProfile)
    node_bfd: BfdTimers | None = None


DrainMethod = Literal["withdraw", "gshut", "prepend"]


@dataclass(frozen=True)
class RolloutPlan:
    """What ``rolling-update`` does to a cluster's pods (lab.topology.model.RolloutPolicy):
    surge and unavailability as a count of pods or a share of the replicas."""

    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    pre_stop_ms: float = 0.0
    termination_grace_ms: float = 30000.0

    @property
    def replaces_nothing(self) -> bool:
        """Both limits 0, which Kubernetes refuses."""
        return self.max_surge in (0, "0%") and self.max_unavailable in (0, "0%")

    def limits(self, replicas: int) -> tuple[int, int]:
        """(surge, unavailable) in pods, as Kubernetes rounds them: a share of the replicas
        up for the surge, down for the unavailable; both 0 becomes unavailable 1."""
        surge = pod_count(self.max_surge, replicas, round_up=True)
        unavailable = pod_count(self.max_unavailable, replicas, round_up=False)
        return surge, 1 if surge == unavailable == 0 else unavailable


def pod_count(value: int | str, replicas: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    share = int(value.removesuffix("%")) * replicas
    return -(-share // 100) if round_up else share // 100


@dataclass(frozen=True)
class DrainPlan:
    """What ``node-drain`` does to a cluster's node (lab.topology.model.DrainPolicy)."""

    method: DrainMethod = "prepend"
    prepend: int = 1
    wait_ms: float = 2000.0


@dataclass(frozen=True)
class Impairment:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    rate_bps: int | None = None

    @property
    def is_clean(self) -> bool:
        return not (self.delay_ms or self.jitter_ms or self.loss_pct or self.rate_bps)


@dataclass(frozen=True)
class Endpoint:
    """One end of a link. Every link is numbered with an IPv4 /31; a link that carries IPv6
    also has an IPv6 /127 (RFC 6164)."""

    node: str
    ifname: str
    address: IPv4Interface
    address6: IPv6Interface | None = None


@dataclass(frozen=True)
class LinkPlan:
    id: str
    kind: LinkKind
    a: Endpoint
    b: Endpoint
    impairment: Impairment = Impairment()
    families: tuple[Family, ...] = (IPV4,)  # the families it routes (sessions, client routes)


@dataclass(frozen=True)
class InterfacePlan:
    """One end of a link as its own node sees it."""

    name: str
    address: IPv4Interface
    peer: str
    peer_ifname: str
    peer_address: IPv4Address
    link_id: str
    kind: LinkKind
    address6: IPv6Interface | None = None
    peer_address6: IPv6Address | None = None


@dataclass(frozen=True)
class SessionPlan:
    """One eBGP session of one address family (IPv4 and IPv6 run separate sessions over a
    link's own addresses); BFD runs on it when ``timers.bfd`` is set."""

    id: str
    kind: LinkKind
    a: str
    a_address: IPAddress
    a_asn: int
    a_ifname: str
    b: str
    b_address: IPAddress
    b_asn: int
    b_ifname: str
    timers: BgpTimers
    family: Family = IPV4

    @property
    def link_id(self) -> str:
        return self.id.removesuffix(V6_SESSION_SUFFIX)

    def side(self, node: str) -> tuple[IPAddress, int, str, str, IPAddress, int]:
        """(local address, local ASN, local ifname, peer name, peer address, peer ASN)."""
        if node == self.a:
            return self.a_address, self.a_asn, self.a_ifname, self.b, self.b_address, self.b_asn
        if node == self.b:
            return self.b_address, self.b_asn, self.b_ifname, self.a, self.a_address, self.a_asn
        raise KeyError(f"{node} is not an end of session {self.id}")

    def bfd_at(self, end: str) -> BfdTimers | None:
        """The BFD of one end: a node session's node (``b``) may run its own profile."""
        if self.timers.bfd is not None and self.timers.node_bfd is not None and end == self.b \
                and self.kind == LinkKind.NODE:
            return self.timers.node_bfd
        return self.timers.bfd

    @property
    def listener(self) -> str | None:
        """The end that only listens (FRR ``neighbor X passive``, GoBGP ``passive-mode``); the
        other end alone opens the TCP connection, so the two ends never open two at once:
        FRR 8.4 resolves such a collision by closing a connection one end already counts as
        Established, a reset at start. Between routers the upper end listens (transit, spine;
        the first transit named on a WAN link); between a leaf and a cluster node, the node:
        FRR opens a session the moment it is configured, while GoBGP waits 5-10 s before its
        first try (its minimum connect-retry interval, randomised). A node session with
        graceful restart has no listener: after the node's speaker restarts, its leaf waits
        for the node to connect (FRR's "NSF passive")."""
        if self.kind == LinkKind.NODE:
            return None if self.timers.graceful_restart is not None else self.b
        return self.a


@dataclass(frozen=True)
class RoutePlan:
    prefix: IPNetwork
    via: IPAddress
    dev: str
    # the source of the host's own packets on this route: a Kubernetes node's pod gateway,
    # which the fabric can reach (its link address is known only to its leaf)
    src: IPAddress | None = None


@dataclass(frozen=True)
class PodPlan:
    name: str
    node: str
    cluster: str
    site: str
    index: int
    address: IPv4Interface
    gateway: IPv4Address
    node_ifname: str
    address6: IPv6Interface | None = None
    gateway6: IPv6Address | None = None


@dataclass(frozen=True)
class ReadinessPlan:
    period_ms: float
    timeout_ms: float
    failure_threshold: int
    success_threshold: int


@dataclass(frozen=True)
class ResilientGroups:
    """A router's resilient next-hop groups for the VIPs (lab.topology.model.EcmpGroups)."""

    buckets: int
    idle_timer_s: float
    unbalanced_timer_s: float


@dataclass(frozen=True)
class NodePlan:
    name: str
    role: Role
    site: str | None = None
    cluster: str | None = None
    location: str | None = None
    asn: int | None = None
    router_id: IPv4Address | None = None
    loopback: IPv4Address | None = None
    speaker: Literal["frr", "gobgp"] | None = None
    interfaces: tuple[InterfacePlan, ...] = ()
    routes: tuple[RoutePlan, ...] = ()
    pod_cidr: IPv4Network | None = None
    pod_gateway: IPv4Interface | None = None
    pods: tuple[PodPlan, ...] = ()
    timers: BgpTimers | None = None
    frr_raw: tuple[str, ...] = ()
    loopback6: IPv6Address | None = None
    pod_cidr6: IPv6Network | None = None
    pod_gateway6: IPv6Interface | None = None
    families: tuple[Family, ...] = (IPV4,)  # a client's are its access link's
    resilient: ResilientGroups | None = None  # None: the kernel's hash-threshold groups

    @property
    def runs_frr(self) -> bool:
        return self.role in FRR_ROUTER_ROLES or self.speaker == "frr" or self.bfd_companion

    @property
    def bfd_companion(self) -> bool:
        """GoBGP has no BFD: a gobgp node runs FRR's bfdd beside it when BFD is on."""
        return self.speaker == "gobgp" and self.timers is not None and self.timers.bfd is not None

    def interface_to(self, peer: str) -> InterfacePlan:
        for interface in self.interfaces:
            if interface.peer == peer:
                return interface
        raise KeyError(f"{self.name} has no link to {peer}")


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    site: str
    asn: int
    speaker: Literal["frr", "gobgp"]
    nodes: tuple[str, ...]
    readiness: ReadinessPlan
    services: tuple[str, ...]
    announce_with: Literal["ready-endpoint", "local-endpoint"] = "ready-endpoint"
    drain: DrainPlan = DrainPlan()
    control_plane_delay_ms: float = 0.0
    rollout: RolloutPlan = RolloutPlan()


@dataclass(frozen=True)
class ReadinessCheck:
    """How the node's agent decides that a pod's own server is ready (lab.topology.workload):
    ``port`` for dns/http/tcp/udp (the service's when not given), ``path`` (http), ``name``
    and ``rr_type`` (dns), ``send`` (udp), ``command`` (exec)."""

    kind: str  # dns | http | tcp | udp | exec (lab.topology.workload.CHECK_KINDS)
    port: int
    path: str = "/"
    name: str = ""
    rr_type: int = 1
    send: str = ""
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkloadPlan:
    """The user's server of a service, as written (placeholders not yet replaced)."""

    command: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (path in the pod's folder, text)
    env: tuple[tuple[str, str], ...]
    readiness: ReadinessCheck
    packages: tuple[str, ...] = ()  # Debian packages of the containerlab backend's images


@dataclass(frozen=True)
class DnsProbePlan:
    """Clients probe the service with DNS queries (lab.topology.workload.DnsProbe)."""

    name: str
    rr_type: int
    identity: Literal["nsid", "chaos", "none"]


@dataclass(frozen=True)
class TcpProbePlan:
    """Clients probe the service with HTTP requests (``mode`` http) or TCP handshakes
    (connect) every ``interval_ms`` per flow (lab.topology.workload.HttpProbe,
    ConnectProbe)."""

    mode: Literal["http", "connect"]
    interval_ms: float
    path: str = "/"
    host: str | None = None
    identity_header: str | None = None
    keepalive: bool = True


@dataclass(frozen=True)
class ServicePlan:
    name: str
    vip: IPv4Address | None
    protocol: Literal["udp", "tcp"]
    port: int
    traffic_policy: Literal["Local", "Cluster"]
    clusters: tuple[str, ...]
    vip6: IPv6Address | None = None
    workload: WorkloadPlan | None = None  # None: the pods' built-in server answers
    dns_probe: DnsProbePlan | None = None  # None: the built-in server's echo probe
    tcp_probe: TcpProbePlan | None = None  # None: the built-in server's line echo (TCP)
    load_balancing: Literal["random", "consistent"] = "random"

    @property
    def vips(self) -> tuple[IPAddress, ...]:
        """The service's addresses, IPv4 first (at least one)."""
        return tuple(vip for vip in (self.vip, self.vip6) if vip is not None)

    @property
    def prefixes(self) -> tuple[IPNetwork, ...]:
        return tuple(host_prefix(vip) for vip in self.vips)

    def vip_of(self, family: Family) -> IPAddress | None:
        return self.vip if family == IPV4 else self.vip6


@dataclass(frozen=True)
class SitePlan:
    name: str
    location: str | None
    spine_asn: int
    spines: tuple[str, ...]
    leafs: tuple[str, ...]
    borders: tuple[str, ...]
    uplinkers: tuple[str, ...]
    transits: tuple[str, ...]
    clusters: tuple[str, ...]


@dataclass(frozen=True)
class LabPlan:
    topology: str
    description: str
    impairment_driver: str
    backend: str
    pools: dict[str, IPNetwork]  # IPv6 pools as "ipv6.NAME", in dual-stack labs only
    sites: tuple[SitePlan, ...]
    nodes: tuple[NodePlan, ...]
    links: tuple[LinkPlan, ...]
    sessions: tuple[SessionPlan, ...]
    clusters: tuple[ClusterPlan, ...]
    services: tuple[ServicePlan, ...]
    families: tuple[Family, ...] = (IPV4,)
    # `up --merge-memory` (lab.backend.memmerge), not the topology's
    merge_memory: bool = False
    _by_name: dict[str, NodePlan] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({n.name: n for n in self.nodes})

    def node(self, name: str) -> NodePlan:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} in lab plan {self.topology!r}") from None

    def nodes_with_role(self, *roles: Role) -> list[NodePlan]:
        return [n for n in self.nodes if n.role in roles]

    def link(self, link_id: str) -> LinkPlan:
        return next(link for link in self.links if link.id == link_id)

    def sessions_of(self, node: str) -> list[SessionPlan]:
        return [s for s in self.sessions if node in (s.a, s.b)]

    def cluster(self, name: str) -> ClusterPlan:
        return next(c for c in self.clusters if c.name == name)

    def site(self, name: str) -> SitePlan:
        return next(s for s in self.sites if s.name == name)

    def services_of_cluster(self, cluster: str) -> list[ServicePlan]:
        return [s for s in self.services if cluster in s.clusters]

    def pods(self) -> list[PodPlan]:
        return [p for n in self.nodes for p in n.pods]

    def pod(self, name: str) -> PodPlan:
        found = next((p for p in self.pods() if p.name == name), None)
        if found is None:
            raise KeyError(f"no pod {name!r} in the plan")
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (addresses as strings), for `plan --json` and golden files.
        A service's ``workload``, ``dns_probe`` and ``tcp_probe``, and a node's
        ``resilient``, appear only when it has them."""
        data = asdict(self)
        data.pop("_by_name", None)
        for service in data["services"]:
            for optional in ("workload", "dns_probe", "tcp_probe"):
                if service[optional] is None:
                    del service[optional]
        for node in data["nodes"]:
            if node["resilient"] is None:
                del node["resilient"]
        result: dict[str, Any] = _jsonable(data)
        return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv4Interface | ipaddress.IPv4Network
                  | ipaddress.IPv6Address | ipaddress.IPv6Interface | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, StrEnum):
        return value.value
    return value
