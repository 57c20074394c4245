"""The node agent's spec file: what to probe, which services to proxy and announce, and how."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from lab.apps.agent.readiness import ProbePolicy
from lab.apps.server.spec import PROTOCOLS, SpecReader, read_spec_document
from lab.plan.model import IPAddress, IPNetwork, ReadinessCheck

SPEAKERS = ("gobgp", "frr")
TRAFFIC_POLICIES = ("Local", "Cluster")
ANNOUNCE_WITH = ("ready-endpoint", "local-endpoint")
LOAD_BALANCING = ("random", "consistent")
DEFAULT_GOBGP_API = "127.0.0.1:50051"
MAX_ASN = 4294967295
MAX_PERIOD_MS = 3_600_000

def address_order(address: IPAddress) -> tuple[int, int]:
    """Sort key for addresses of both families (IPv4 first); they do not compare."""
    return address.version, int(address)


@dataclass(frozen=True)
class AgentService:
    name: str
    vip: IPv4Address | None
    protocol: str
    port: int
    traffic_policy: str  # "Local" | "Cluster" (Kubernetes externalTrafficPolicy)
    vip6: IPv6Address | None = None
    load_balancing: str = "random"  # "random" | "consistent" (lab.render.consistent)

    @property
    def vips(self) -> tuple[IPAddress, ...]:
        return tuple(v for v in (self.vip, self.vip6) if v is not None)


@dataclass(frozen=True)
class AgentCheck:
    """The readiness check of a pod's own server for one service (lab.apps.agent.probe)."""

    service: str
    check: ReadinessCheck


@dataclass(frozen=True)
class AgentPod:
    """A pod the agent probes: one of the node's (local) or, for Cluster services, another.
    It is ready when its health port says so and every check of its own servers passes."""

    name: str
    address: IPv4Address
    health_port: int
    local: bool
    address6: IPv6Address | None = None
    checks: tuple[AgentCheck, ...] = ()


@dataclass(frozen=True)
class AgentSpec:
    lab: str
    node: str
    cluster: str
    speaker: str  # "gobgp" | "frr"
    gobgp_api: tuple[str, int]
    vty_socket_dir: Path | None
    asn: int
    pod_cidr: IPv4Network
    readiness: ProbePolicy
    services: tuple[AgentService, ...]
    pods: tuple[AgentPod, ...]
    events: Path
    nft: str
    pod_cidr6: IPv6Network | None = None
    # the node's own address toward other nodes' pods (its pod gateway, which the fabric
    # reaches): proxied flows to them are SNATed to it; None: masquerade
    source: IPv4Address | None = None
    source6: IPv6Address | None = None
    announce_with: str = "ready-endpoint"  # or "local-endpoint" (lab.apps.agent.state)
    # an endpoint change reaches the proxy and the speaker this long after readiness decided
    control_plane_delay_ms: int = 0

    @property
    def status_file(self) -> Path:
        return self.events.parent / "status.json"

    @property
    def vips(self) -> frozenset[IPAddress]:
        return frozenset(v for s in self.services for v in s.vips)

    @property
    def pod_cidrs(self) -> tuple[IPNetwork, ...]:
        return (self.pod_cidr,) + ((self.pod_cidr6,) if self.pod_cidr6 is not None else ())

    @property
    def families(self) -> tuple[str, ...]:
        """The address families the node announces in."""
        return ("ipv4", "ipv6") if self.pod_cidr6 is not None else ("ipv4",)


AGENT_FIELDS = ("lab", "node", "cluster", "speaker", "gobgp_api", "vty_socket_dir", "asn",
                "pod_cidr", "pod_cidr6", "readiness", "services", "pods", "events", "nft",
                "source", "source6", "announce_with", "control_plane_delay_ms")
READINESS_FIELDS = ("period_ms", "timeout_ms", "failure_threshold", "success_threshold")
SERVICE_FIELDS = ("name", "vip", "vip6", "protocol", "port", "traffic_policy", "load_balancing")
POD_FIELDS = ("name", "address", "address6", "health_port", "local", "checks")
CHECK_FIELDS = ("service", "kind", "port", "path", "name", "rr_type", "send", "command")
CHECK_KINDS = ("dns", "http", "tcp", "udp", "exec")


def load_agent_spec(path: Path) -> AgentSpec:
    """Read and validate an agent spec; raise SpecError listing every problem."""
    reader, document = read_spec_document(path)
    top = reader.mapping(document, "", AGENT_FIELDS)
    speaker = reader.choice(top, "speaker", "", SPEAKERS)
    vty_dir = reader.text(top, "vty_socket_dir", default="")
    if speaker == "frr" and not vty_dir:
        reader.fail("vty_socket_dir", "field required with speaker frr",
                    "the directory of the node's FRR vty sockets (vtysh --vty_socket)")
    spec = AgentSpec(
        lab=reader.text(top, "lab"), node=reader.text(top, "node"),
        cluster=reader.text(top, "cluster"), speaker=speaker,
        gobgp_api=_host_port(reader, reader.text(top, "gobgp_api", default=DEFAULT_GOBGP_API)),
        vty_socket_dir=Path(vty_dir) if vty_dir else None,
        asn=reader.integer(top, "asn", low=1, high=MAX_ASN),
        pod_cidr=_network(reader, reader.text(top, "pod_cidr")),
        readiness=_readiness(reader, top.get("readiness", {})),
        services=tuple(_service(reader, p, item) for p, item in reader.items(top, "services")),
        pods=tuple(read_pod(reader, p, item) for p, item in reader.items(top, "pods")),
        events=Path(reader.text(top, "events")),
        nft=reader.text(top, "nft", default="nft"),
        pod_cidr6=_network6(reader, reader.text(top, "pod_cidr6", default="")),
        source=reader.ipv4(top, "source") if "source" in top else None,
        source6=reader.ipv6(top, "source6"),
        announce_with=reader.choice(top, "announce_with", "", ANNOUNCE_WITH,
                                    default="ready-endpoint"),
        control_plane_delay_ms=reader.integer(top, "control_plane_delay_ms", low=0,
                                              high=MAX_PERIOD_MS, default=0))
    _check_unique(reader, "services", [s.name for s in spec.services])
    _check_unique(reader, "pods", [p.name for p in spec.pods])
    reader.check()
    return spec


def _readiness(reader: SpecReader, value: object) -> ProbePolicy:
    obj = reader.mapping(value, "readiness", READINESS_FIELDS)
    defaults = ProbePolicy()
    return ProbePolicy(
        period_ms=reader.integer(obj, "period_ms", "readiness", low=1, high=MAX_PERIOD_MS,
                                 default=defaults.period_ms),
        timeout_ms=reader.integer(obj, "timeout_ms", "readiness", low=1, high=MAX_PERIOD_MS,
                                  default=defaults.timeout_ms),
        failure_threshold=reader.integer(obj, "failure_threshold", "readiness", low=1,
                                         high=1000, default=defaults.failure_threshold),
        success_threshold=reader.integer(obj, "success_threshold", "readiness", low=1,
                                         high=1000, default=defaults.success_threshold))


def _service(reader: SpecReader, path: str, value: object) -> AgentService:
    obj: Mapping[str, Any] = reader.mapping(value, path, SERVICE_FIELDS)
    vip6 = reader.ipv6(obj, "vip6", path)
    vip = reader.ipv4(obj, "vip", path) if "vip" in obj or vip6 is None else None
    return AgentService(
        name=reader.text(obj, "name", path), vip=vip,
        protocol=reader.choice(obj, "protocol", path, PROTOCOLS),
        port=reader.integer(obj, "port", path, low=1, high=65535),
        traffic_policy=reader.choice(obj, "traffic_policy", path, TRAFFIC_POLICIES),
        vip6=vip6, load_balancing=reader.choice(obj, "load_balancing", path, LOAD_BALANCING,
                                                default="random"))


def read_pod(reader: SpecReader, path: str, value: object) -> AgentPod:
    obj: Mapping[str, Any] = reader.mapping(value, path, POD_FIELDS)
    checks = reader.items(obj, "checks", path) if "checks" in obj else []
    return AgentPod(
        name=reader.text(obj, "name", path), address=reader.ipv4(obj, "address", path),
        health_port=reader.integer(obj, "health_port", path, low=1, high=65535),
        local=reader.boolean(obj, "local", path), address6=reader.ipv6(obj, "address6", path),
        checks=tuple(_check(reader, p, item) for p, item in checks))


def _check(reader: SpecReader, path: str, value: object) -> AgentCheck:
    obj: Mapping[str, Any] = reader.mapping(value, path, CHECK_FIELDS)
    kind = reader.choice(obj, "kind", path, CHECK_KINDS)
    command = obj.get("command", [])
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command) \
            or (kind == "exec" and not command):
        reader.fail(f"{path}.command", "must be a non-empty list of strings")
        command = []
    return AgentCheck(reader.text(obj, "service", path), ReadinessCheck(
        kind=kind, port=reader.integer(obj, "port", path, low=1, high=65535),
        path=reader.text(obj, "path", path, default="/"),
        name=reader.text(obj, "name", path, default=""),
        rr_type=reader.integer(obj, "rr_type", path, low=1, high=65535, default=1),
        send=reader.text(obj, "send", path, default=""), command=tuple(command)))


def _network(reader: SpecReader, text: str) -> IPv4Network:
    try:
        return IPv4Network(text)
    except ValueError:
        if text:
            reader.fail("pod_cidr", f"must be an IPv4 prefix with no host bits, not {text!r}")
        return IPv4Network("0.0.0.0/32")


def _network6(reader: SpecReader, text: str) -> IPv6Network | None:
    if not text:
        return None
    try:
        return IPv6Network(text)
    except ValueError:
        reader.fail("pod_cidr6", f"must be an IPv6 prefix with no host bits, not {text!r}")
        return None


def _host_port(reader: SpecReader, text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536:
        return host, int(port)
    reader.fail("gobgp_api", f"must be HOST:PORT, not {text!r}", f"e.g. {DEFAULT_GOBGP_API}")
    return "127.0.0.1", 50051


def _check_unique(reader: SpecReader, field: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name and name in seen:
            reader.fail(f"{field}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)
