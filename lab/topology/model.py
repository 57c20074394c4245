"""The topology file as typed data (pydantic, ``extra="forbid"``).

Only the shape and the value ranges are checked here; cross-references (unknown names,
overlapping pools, interface-name lengths) are checked in ``lab.topology.validate``. Durations are
stored in milliseconds, rates in bit/s, loss in percent.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from lab.source.units import (
    DURATION_HINT,
    PERCENT_HINT,
    RATE_HINT,
    parse_percent,
    parse_rate_bps,
)
from lab.topology.fields import DurationMs
from lab.topology.fields import custom_error as _custom
from lab.topology.workload import ServiceProbe, Workload

NAME_PATTERN = r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _to_rate(value: object) -> int:
    try:
        return parse_rate_bps(value)
    except ValueError as exc:
        raise _custom("rate", str(exc)) from exc


def _to_percent(value: object) -> float:
    try:
        return parse_percent(value)
    except ValueError as exc:
        raise _custom("percent", str(exc)) from exc


def _check_name(value: str) -> str:
    # fullmatch, not match: `$` would also accept a trailing newline ("nyc\n")
    if not _NAME_RE.fullmatch(value):
        raise _custom("name", f"{value!r} is not a valid name: {_name_problem(value)}")
    return value


def _name_problem(value: str) -> str:
    bad = next((c for c in value if c not in _NAME_CHARS), None)
    if bad is not None:
        return f"{bad!r} is not allowed" + (" (use lowercase)" if bad.isupper() else "")
    if not value[:1].isalpha():
        return "it must start with a letter"
    return "it must end with a letter or digit"


def _to_network(value: object, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    family = f"IPv{version}"
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            raise _custom(f"network_v{version}", f"{value!r} is not an {family} prefix") from exc
        if loose.version != version:
            raise _custom(f"network_v{version}", f"{value!r} is not an {family} prefix") from exc
        raise _custom(f"network_v{version}", f"{value!r} has host bits set; the prefix is "
                                             f"{str(loose)!r}") from exc
    if network.version != version:
        raise _custom(f"network_v{version}", f"{value!r} is not an {family} prefix")
    return network


def _to_address(value: object, version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError as exc:
        if "/" in str(value):
            raise _custom(f"address_v{version}",
                          f"{value!r} is a prefix; a VIP is one address") from exc
        raise _custom(f"address_v{version}", f"{value!r} is not an IP address") from exc
    if address.version != version:
        field = "vip" if address.version == 4 else "vip6"
        raise _custom(f"address_v{version}",
                      f"{value!r} is an IPv{address.version} address; write it as `{field}:`")
    return address


def _unique_families(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise _custom("families", "a family is listed twice")
    return value


def _to_pod_count(value: object) -> object:
    """A number of pods, or a share of the replicas: ``1``, ``"25%"``."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1]
        if not number.isdigit() or int(number) > 100:
            raise _custom("pod_count", f"{value!r} is not a share of the replicas",)
        return f"{int(number)}%"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _custom("pod_count", f"{value!r} is neither a number of pods nor a share ('25%')")
    return value


RateBps = Annotated[int, BeforeValidator(_to_rate)]
# a number of pods (0, 1, ...) or a share of the replicas ("25%")
PodCount = Annotated[int | str, BeforeValidator(_to_pod_count)]
Percent = Annotated[float, BeforeValidator(_to_percent)]
Name = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_check_name)]
# each parsed for its one version (the messages name the other one); pydantic then checks the type
Ipv4Pool = Annotated[ipaddress.IPv4Network, BeforeValidator(lambda v: _to_network(v, 4))]
Ipv6Pool = Annotated[ipaddress.IPv6Network, BeforeValidator(lambda v: _to_network(v, 6))]
Vip = Annotated[ipaddress.IPv4Address, BeforeValidator(lambda v: _to_address(v, 4))]
Vip6 = Annotated[ipaddress.IPv6Address, BeforeValidator(lambda v: _to_address(v, 6))]
Family = Literal["ipv4", "ipv6"]
# the address families a link carries (default: every family of the lab)
Families = Annotated[list[Family], Field(min_length=1), AfterValidator(_unique_families)]
Asn = Annotated[int, Field(ge=1, le=4_294_967_294)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class LinkProperties(StrictModel):
    """Impairments of a link, the same in both directions."""

    delay: DurationMs = 0.0
    jitter: DurationMs = 0.0
    loss: Percent = 0.0
    rate: RateBps | None = None


class BfdSettings(StrictModel):
    enabled: bool = True
    interval: DurationMs = 300.0
    multiplier: Annotated[int, Field(ge=2, le=255)] = 3


def _bfd_switch(value: object) -> object:
    """`bfd: false` (or `off`) turns BFD off; `bfd: true` keeps the defaults."""
    if isinstance(value, bool):
        return {"enabled": value}
    return value


class BgpSettings(StrictModel):
    """BGP/BFD timers; every field optional so a site can override just one."""

    keepalive: DurationMs | None = None
    hold: DurationMs | None = None
    connect_retry: DurationMs | None = None
    ecmp: Annotated[int, Field(ge=1, le=256)] | None = None
    bfd: Annotated[BfdSettings, BeforeValidator(_bfd_switch)] | None = None


class RawFrr(StrictModel):
    """Raw FRR configuration lines appended per router role (the escape hatch)."""

    spine: list[str] = []
    leaf: list[str] = []
    border: list[str] = []
    transit: list[str] = []
    node: list[str] = []


class ReadinessProbe(StrictModel):
    period: DurationMs = 1000.0
    timeout: DurationMs = 500.0
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    success_threshold: Annotated[int, Field(ge=1, le=100)] = 1


def _graceful_restart_switch(value: object) -> object:
    """`graceful_restart: true` takes the speaker's defaults; `false` turns it off."""
    if isinstance(value, bool):
        return {"enabled": value}
    return value


class BfdProfile(StrictModel):
    """MetalLB's BFDProfile: the BFD of the node's end of its sessions (the leaf's end keeps
    the node sessions' ``bgp.bfd``); MetalLB's fields and defaults. Passive: the node waits
    for its leaf's first BFD packet. Echo: the node also sends echo packets, which its leaf
    forwards back, every ``echo_interval`` (docs/speakers.md, "BFD profiles")."""

    receive_interval: DurationMs = 300.0
    transmit_interval: DurationMs = 300.0
    multiplier: Annotated[int, Field(ge=2, le=255)] = 3
    echo: bool = False
    echo_interval: DurationMs = 50.0
    passive: bool = False


class RolloutPolicy(StrictModel):
    """How ``rolling-update`` replaces a cluster's pods (a Deployment's RollingUpdate
    strategy, its defaults): at most ``max_surge`` pods above the replicas, at most
    ``max_unavailable`` of them not ready; a terminating pod's preStop hook sleeps
    ``pre_stop`` before its server gets SIGTERM, and it is killed ``termination_grace``
    after its deletion began."""

    max_surge: PodCount = "25%"
    max_unavailable: PodCount = "25%"
    pre_stop: DurationMs = 0.0
    termination_grace: DurationMs = 30000.0


class GracefulRestart(StrictModel):
    """BGP graceful restart (RFC 4724) of the node sessions: when the speaker restarts, its
    leaf keeps the node's routes (stale) and forwarding for up to ``restart_time``."""

    enabled: bool = True
    # kube-router's --bgp-graceful-restart-time (90 s) and FRR's default (120 s, MetalLB's)
    restart_time: DurationMs | None = None
    # how long a restarting GoBGP waits for its peers' End-of-RIB before it sends its routes
    # (kube-router's --bgp-graceful-restart-deferral-time)
    deferral_time: DurationMs = 360000.0


class DrainPolicy(StrictModel):
    """How ``node-drain`` takes a node out before its pods stop: withdraw its VIPs, or keep
    them announced with the GSHUT community (RFC 8326: the leaf sets local preference 0) or
    with the node's AS prepended ``prepend`` times; then ``wait`` for the fabric to move.

    The default, one prepend, is the one that loses nothing in a leaf-spine fabric: the
    node's own leaf still prefers it (2 ASes against 3 through a spine) while the spines
    already prefer the other leafs, so no packet bounces between a leaf that moved and a
    spine that has not yet (docs/speakers.md, "Draining a node")."""

    method: Literal["withdraw", "gshut", "prepend"] = "prepend"
    prepend: Annotated[int, Field(ge=1, le=10)] = 1
    wait: DurationMs = 2000.0


class Cluster(StrictModel):
    name: Name
    nodes: Annotated[int, Field(ge=1, le=999)]
    leafs: list[Annotated[int, Field(ge=1)]] | Literal["all"] = "all"
    # 2: each node attaches to a pair of the cluster's leafs (two ToRs per rack: leafs 1-2,
    # 3-4, ... of the list), with a BGP session to each and a default route over both
    leafs_per_node: Annotated[int, Field(ge=1, le=2)] = 1
    pods_per_node: Annotated[int, Field(ge=1, le=64)] = 2
    # named after the project whose speaker it models (docs/speakers.md); gobgp and frr,
    # the daemons they run, name them too
    speaker: Literal["kube-router", "metallb", "gobgp", "frr"] = "gobgp"
    # when a node announces the VIP of a traffic-policy Local service: while it has a ready
    # local endpoint, or while it has a local endpoint at all, ready or not (the check by
    # the endpoint's node that keeps an unready pod's VIP announced: docs/speakers.md)
    announce_with: Literal["ready-endpoint", "local-endpoint"] = "ready-endpoint"
    pod_cidr_size: Annotated[int, Field(ge=16, le=29)] = 24
    pod_cidr_size6: Annotated[int, Field(ge=48, le=120)] = 64  # Kubernetes' default is 64
    asn: Asn | None = None
    readiness: ReadinessProbe = ReadinessProbe()
    # the node sessions' timers and BFD, over the site's: e.g. `bfd: false` for speakers
    # without BFD (kube-router before 2.11) while the fabric keeps it
    bgp: BgpSettings = BgpSettings()
    # how long an endpoint change takes to reach the node's proxy and speaker after the
    # readiness probe decided it (kubelet -> EndpointSlice -> watch; docs/speakers.md)
    control_plane_delay: DurationMs = 0.0
    graceful_restart: Annotated[GracefulRestart,
                                BeforeValidator(_graceful_restart_switch)] | None = None
    drain: DrainPolicy = DrainPolicy()
    # MetalLB's BFDProfile on the node's end of its sessions (a metallb cluster only)
    bfd_profile: BfdProfile | None = None
    # how rolling-update replaces the pods (the replicas: nodes x pods_per_node)
    rollout: RolloutPolicy = RolloutPolicy()

    @property
    def daemon(self) -> Literal["gobgp", "frr"]:
        """The BGP daemon of the nodes: kube-router's GoBGP, MetalLB's FRR (its FRR mode)."""
        return "frr" if self.speaker in ("metallb", "frr") else "gobgp"

    @model_validator(mode="after")
    def _no_ecmp_for_nodes(self) -> Cluster:
        if self.bgp.ecmp is not None:
            raise _custom("node_ecmp", "a cluster's `bgp` sets its node sessions' timers and "
                                       "BFD; `ecmp` belongs to the routers (defaults or site)")
        return self


class Fabric(StrictModel):
    spines: Annotated[int, Field(ge=1, le=16)] = 2
    leafs: Annotated[int, Field(ge=1, le=128)] = 4
    border: Literal["spines", "leafs"] = "spines"
    border_leafs: Annotated[int, Field(ge=1, le=8)] = 2


class Uplink(LinkProperties):
    transit: Name
    families: Families | None = None


class Site(StrictModel):
    name: Name
    location: str | None = None
    uplinks: Annotated[list[Uplink], Field(min_length=1)]
    fabric: Fabric = Fabric()
    clusters: list[Cluster] = []
    bgp: BgpSettings = BgpSettings()
    frr_raw: RawFrr = RawFrr()


class Transit(StrictModel):
    name: Name
    location: str | None = None
    asn: Asn | None = None


class WanLink(LinkProperties):
    between: tuple[Name, Name]
    families: Families | None = None


class Client(LinkProperties):
    """A client vantage point; delay/jitter/loss/rate describe its access link."""

    name: Name
    transit: Name
    families: Families | None = None  # dual-stack when the lab is


class Service(StrictModel):
    """An anycast service on an IPv4 VIP, an IPv6 VIP, or both (at least one)."""

    name: Name
    vip: Vip | None = None
    vip6: Vip6 | None = None
    protocol: Literal["udp", "tcp"] = "udp"
    port: Annotated[int, Field(ge=1, le=65535)]
    clusters: list[Name] | Literal["all"] = "all"
    traffic_policy: Literal["Local", "Cluster"] = "Local"
    # how the service proxy picks an endpoint for a new flow (lab.render.consistent)
    load_balancing: Literal["random", "consistent"] = "random"
    workload: Workload | None = None  # None: the built-in server (lab.topology.workload)
    probe: ServiceProbe = ServiceProbe()

    @model_validator(mode="after")
    def _one_vip_at_least(self) -> Service:
        if self.vip is None and self.vip6 is None:
            raise _custom("vip_missing", "a service needs `vip:`, `vip6:` or both")
        return self

    @property
    def vips(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [vip for vip in (self.vip, self.vip6) if vip is not None]


class Ipv6Addressing(StrictModel):
    """IPv6 pools (from the documentation range), used when a service has a `vip6`."""

    loopbacks: Ipv6Pool = ipaddress.IPv6Network("2001:db8:ffff::/64")
    fabric: Ipv6Pool = ipaddress.IPv6Network("2001:db8:fffe::/64")
    wan: Ipv6Pool = ipaddress.IPv6Network("2001:db8:fffd::/64")
    clients: Ipv6Pool = ipaddress.IPv6Network("2001:db8:fffc::/64")
    pods: Ipv6Pool = ipaddress.IPv6Network("2001:db8:4000::/40")


class Addressing(StrictModel):
    loopbacks: Ipv4Pool = ipaddress.IPv4Network("10.255.0.0/16")
    fabric: Ipv4Pool = ipaddress.IPv4Network("10.254.0.0/16")
    wan: Ipv4Pool = ipaddress.IPv4Network("100.64.0.0/16")
    pods: Ipv4Pool = ipaddress.IPv4Network("10.64.0.0/10")
    clients: Ipv4Pool = ipaddress.IPv4Network("198.18.0.0/16")
    ipv6: Ipv6Addressing = Ipv6Addressing()


class EcmpGroups(StrictModel):
    """How a router spreads flows over equal-cost next hops: the kernel's ``hash-threshold``
    groups (the default, what FRR installs: removing a next hop moves flows of the others
    too) or ``resilient`` ones (buckets stay with their next hop; a bucket moves to a new
    next hop only after ``idle_timer`` without traffic, or when ``unbalanced_timer`` forces
    it; 0: never)."""

    type: Literal["hash-threshold", "resilient"] = "resilient"
    buckets: Annotated[int, Field(ge=2, le=4096)] = 128
    idle_timer: Annotated[DurationMs, Field(ge=0, le=3_600_000)] = 1000.0
    unbalanced_timer: Annotated[DurationMs, Field(ge=0, le=3_600_000)] = 0.0


class Defaults(StrictModel):
    bgp: BgpSettings = BgpSettings()
    # per router role (transit, border, spine, leaf): its next-hop groups (docs/collateral.md)
    ecmp_groups: dict[Literal["transit", "border", "spine", "leaf"], EcmpGroups] = {}
    impairment_driver: Literal["auto", "netem", "userspace"] = "auto"
    # where `anylab up` builds the lab unless told otherwise (--backend)
    backend: Literal["netns", "containerlab", "mininet"] = "netns"


class Topology(StrictModel):
    name: Name
    description: str = ""
    defaults: Defaults = Defaults()
    addressing: Addressing = Addressing()
    transits: Annotated[list[Transit], Field(min_length=1)]
    wan_links: list[WanLink] = []
    sites: Annotated[list[Site], Field(min_length=1)]
    services: list[Service] = []
    clients: list[Client] = []
    frr_raw: RawFrr = RawFrr()

    @property
    def families(self) -> tuple[Family, ...]:
        """The lab is dual-stack as soon as one service has an IPv6 VIP."""
        return ("ipv4", "ipv6") if any(s.vip6 for s in self.services) else ("ipv4",)


DURATION_FIELDS = frozenset({"delay", "jitter", "keepalive", "hold", "connect_retry", "interval",
                             "period", "timeout"})
HINTS_BY_ERROR_TYPE = {
    "duration": DURATION_HINT,
    "rate": RATE_HINT,
    "percent": PERCENT_HINT,
    "name": "names use lowercase letters, digits and '-', start with a letter and end with a "
            "letter or digit, e.g. 'nyc' or 'edge-1'",
    "network_v4": "write an IPv4 prefix such as '10.255.0.0/16' whose host bits are zero "
                  "(IPv6 pools go under `addressing.ipv6`)",
    "network_v6": "write an IPv6 prefix such as '2001:db8:ffff::/64' whose host bits are zero",
    "address_v4": "write an IPv4 address such as '192.0.2.53'",
    "address_v6": "write an IPv6 address such as '2001:db8:53::53'",
    "vip_missing": "add `vip: 192.0.2.53` (IPv4), `vip6: 2001:db8:53::53` (IPv6) or both",
    "families": "list each family once, e.g. [ipv4] or [ipv4, ipv6]",
    "node_ecmp": "remove `ecmp` from the cluster's `bgp`; set it under `defaults.bgp` or the "
                 "site's `bgp`",
}
