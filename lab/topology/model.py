"""The topology file as typed data (pydantic, ``extra="forbid"``).

Only the shape and the value ranges are checked here; cross-references (unknown names,
overlapping pools, interface-name lengths) are checked in ``lab.topology.validate``. Durations are
stored in milliseconds, rates in bit/s, loss in percent.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from lab.source.units import (
    DURATION_HINT,
    PERCENT_HINT,
    RATE_HINT,
    parse_duration_ms,
    parse_percent,
    parse_rate_bps,
)

NAME_PATTERN = r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _custom(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _to_duration(value: object) -> float:
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise _custom("duration", str(exc)) from exc


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


def _to_ipv4_network(value: object) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            raise _custom("network", f"{value!r} is not an IPv4 prefix") from exc
        if not isinstance(loose, ipaddress.IPv4Network):
            raise _custom("network_v6", f"{value!r}: IPv6 pools are not supported yet") from exc
        raise _custom("network", f"{value!r} has host bits set; the prefix is "
                                 f"{str(loose)!r}") from exc
    if not isinstance(network, ipaddress.IPv4Network):
        raise _custom("network_v6", f"{value!r}: IPv6 pools are not supported yet")
    return network


def _to_vip(value: object) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError as exc:
        if "/" in str(value):
            raise _custom("address", f"{value!r} is a prefix; a VIP is one address") from exc
        raise _custom("address", f"{value!r} is not an IP address") from exc
    if not isinstance(address, ipaddress.IPv4Address):
        raise _custom("vip_v6", f"{value!r}: IPv6 VIPs are not supported yet")
    return address


DurationMs = Annotated[float, BeforeValidator(_to_duration)]
RateBps = Annotated[int, BeforeValidator(_to_rate)]
Percent = Annotated[float, BeforeValidator(_to_percent)]
Name = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_check_name)]
Ipv4Pool = Annotated[ipaddress.IPv4Network, BeforeValidator(_to_ipv4_network)]
Vip = Annotated[ipaddress.IPv4Address, BeforeValidator(_to_vip)]
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


class Cluster(StrictModel):
    name: Name
    nodes: Annotated[int, Field(ge=1, le=999)]
    leafs: list[Annotated[int, Field(ge=1)]] | Literal["all"] = "all"
    pods_per_node: Annotated[int, Field(ge=1, le=64)] = 2
    speaker: Literal["gobgp", "frr"] = "gobgp"
    pod_cidr_size: Annotated[int, Field(ge=16, le=29)] = 24
    asn: Asn | None = None
    readiness: ReadinessProbe = ReadinessProbe()


class Fabric(StrictModel):
    spines: Annotated[int, Field(ge=1, le=16)] = 2
    leafs: Annotated[int, Field(ge=1, le=128)] = 4
    border: Literal["spines", "leafs"] = "spines"
    border_leafs: Annotated[int, Field(ge=1, le=8)] = 2


class Uplink(LinkProperties):
    transit: Name


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


class Client(LinkProperties):
    """A client vantage point; delay/jitter/loss/rate describe its access link."""

    name: Name
    transit: Name


class Service(StrictModel):
    name: Name
    vip: Vip
    protocol: Literal["udp", "tcp"] = "udp"
    port: Annotated[int, Field(ge=1, le=65535)]
    clusters: list[Name] | Literal["all"] = "all"
    traffic_policy: Literal["Local", "Cluster"] = "Local"


class Addressing(StrictModel):
    loopbacks: Ipv4Pool = ipaddress.IPv4Network("10.255.0.0/16")
    fabric: Ipv4Pool = ipaddress.IPv4Network("10.254.0.0/16")
    wan: Ipv4Pool = ipaddress.IPv4Network("100.64.0.0/16")
    pods: Ipv4Pool = ipaddress.IPv4Network("10.64.0.0/10")
    clients: Ipv4Pool = ipaddress.IPv4Network("198.18.0.0/16")


class Defaults(StrictModel):
    bgp: BgpSettings = BgpSettings()
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


DURATION_FIELDS = frozenset({"delay", "jitter", "keepalive", "hold", "connect_retry", "interval",
                             "period", "timeout"})
HINTS_BY_ERROR_TYPE = {
    "duration": DURATION_HINT,
    "rate": RATE_HINT,
    "percent": PERCENT_HINT,
    "name": "names use lowercase letters, digits and '-', start with a letter and end with a "
            "letter or digit, e.g. 'nyc' or 'edge-1'",
    "network": "write a prefix such as '10.255.0.0/16' whose host bits are zero",
    "network_v6": "use an IPv4 prefix",
    "address": "write an address such as '192.0.2.53'",
    "vip_v6": "use an IPv4 VIP; IPv6 service addresses are planned",
}
