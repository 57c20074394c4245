"""Route and nexthop netlink messages: pyroute2 message classes and what the recorder takes
from them (destination, table, gateways, nexthop objects).

pyroute2 0.9.7 knows ``rtmsg`` but not the attributes added since Linux 4.x, among them
``RTA_NH_ID`` (30), and has no class for nexthop objects (``RTM_*NEXTHOP``, Linux 5.3). Both
are declared here in pyroute2's own declarative form, so pyroute2 does the decoding.
FRR 8.4 installs routes with kernel nexthop objects: the route carries ``RTA_NH_ID`` and, while
``net.ipv4.nexthop_compat_mode`` is 1 (the default), also the expanded gateways.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from pyroute2.netlink import nlmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEXTHOP, RTM_DELNEXTHOP, RTM_GETNEXTHOP = 104, 105, 106
NLMSG_ERROR, NLMSG_DONE = 2, 3
RT_TABLE_MAIN = 254
RTNH_F_DEAD = 0x1
IFF_UP, IFF_RUNNING, IFF_LOWER_UP = 0x1, 0x40, 0x10000
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_GROUP_ENTRY = struct.Struct("=IBBH")  # struct nexthop_grp: id, weight-1, resvd1, resvd2

# iproute2's rt_protos with FRR's additions (/etc/iproute2/rt_protos.d/frr.conf)
PROTOCOL_NAMES = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra",
    10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
    18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf",
    189: "rip", 190: "ripng", 191: "nhrp", 192: "eigrp", 193: "ldp", 194: "sharp", 195: "pbr",
    196: "static", 197: "openfabric",
}
ROUTE_TYPES = {0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
               5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw",
               10: "nat", 11: "xresolve"}


class RouteMessage(rtmsg):  # type: ignore[misc]
    """``rtmsg`` with the attributes after ``RTA_EXPIRES`` (23), up to ``RTA_NH_ID`` (30)."""

    __slots__ = ()
    # pyroute2 caches the compiled attribute table on the class: without these a subclass
    # inherits its parent's cache once the parent was used (e.g. by IPRoute), and RTA_NH_ID
    # would silently be missing.
    _nlmsg_base__compiled_nla = False
    _nlmsg_base__t_nla_map = None
    _nlmsg_base__r_nla_map = None
    nla_map = (*rtmsg.nla_map,
               ("RTA_PAD", "hex"),
               ("RTA_UID", "uint32"),
               ("RTA_TTL_PROPAGATE", "uint8"),
               ("RTA_IP_PROTO", "uint8"),
               ("RTA_SPORT", "uint16"),
               ("RTA_DPORT", "uint16"),
               ("RTA_NH_ID", "uint32"))


class NexthopMessage(nlmsg):  # type: ignore[misc]
    """``struct nhmsg`` and its ``NHA_*`` attributes (include/uapi/linux/nexthop.h)."""

    __slots__ = ()
    _nlmsg_base__compiled_nla = False  # see RouteMessage
    _nlmsg_base__t_nla_map = None
    _nlmsg_base__r_nla_map = None
    prefix = "NHA_"
    fields = (("family", "B"), ("scope", "B"), ("proto", "B"), ("resvd", "B"), ("flags", "I"))
    nla_map = (("NHA_UNSPEC", "none"),
               ("NHA_ID", "uint32"),
               ("NHA_GROUP", "cdata"),  # array of struct nexthop_grp, see group_members()
               ("NHA_GROUP_TYPE", "uint16"),
               ("NHA_BLACKHOLE", "flag"),
               ("NHA_OIF", "uint32"),
               ("NHA_GATEWAY", "target"),  # IPv4 or IPv6 after the message's family
               ("NHA_ENCAP_TYPE", "uint16"),
               ("NHA_ENCAP", "hex"),
               ("NHA_GROUPS", "flag"),
               ("NHA_MASTER", "uint32"),
               ("NHA_FDB", "flag"))


class LinkMessage(nlmsg):  # type: ignore[misc]
    """``struct ifinfomsg`` and the interface name: all the recorder needs of a link."""

    __slots__ = ()
    _nlmsg_base__compiled_nla = False  # see RouteMessage
    _nlmsg_base__t_nla_map = None
    _nlmsg_base__r_nla_map = None
    prefix = "IFLA_"
    fields = (("family", "B"), ("__align", "x"), ("ifi_type", "H"), ("index", "i"),
              ("flags", "I"), ("change", "I"))
    nla_map = (("IFLA_UNSPEC", "none"), ("IFLA_ADDRESS", "hex"), ("IFLA_BROADCAST", "hex"),
               ("IFLA_IFNAME", "asciiz"))


class Hop(NamedTuple):
    """One path of a route: gateway (None for a device route), output interface, and
    whether the kernel marked it dead (its interface is down: not used for forwarding)."""

    gateway: str | None
    oif: int | None
    dead: bool = False


@dataclass(frozen=True)
class Nexthop:
    """A kernel nexthop object: one gateway, or a group of other nexthop ids."""

    nhid: int
    gateway: str | None = None
    members: tuple[int, ...] = ()
    blackhole: bool = False
    oif: int | None = None


@dataclass(frozen=True)
class RouteChange:
    """What one route message says about an IPv4 main-table route."""

    deleted: bool
    prefix: str
    hops: tuple[Hop, ...] | None  # None: only RTA_NH_ID, resolve from the nexthop table
    nhid: int | None
    proto: str
    route_type: str
    metric: int
    tos: int


def split_messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """The netlink messages of one datagram: (type, sequence, port id, bytes)."""
    offset = 0
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _flags, seq, pid = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            return
        yield kind, seq, pid, data[offset:offset + length]
        offset += (length + 3) & ~3


def error_code(message: bytes) -> int:
    """The (negative) errno of an NLMSG_ERROR message; 0 is an acknowledgement."""
    (code,) = struct.unpack_from("=i", message, _NLMSG_HEADER.size)
    return int(code)


def dump_request(kind: int, seq: int) -> bytes:
    """An RTM_GETROUTE (every family) or RTM_GETNEXTHOP dump request."""
    msg: Any = RouteMessage() if kind == RTM_GETROUTE else NexthopMessage()
    msg["header"]["type"] = kind
    msg["header"]["flags"] = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
    msg["header"]["sequence_number"] = seq
    msg["family"] = socket.AF_UNSPEC
    msg.encode()
    return bytes(msg.data)


def live_gateways(hops: Iterable[Hop]) -> tuple[str, ...]:
    """The sorted gateway addresses the kernel forwards to (dead paths left out)."""
    return sort_addresses(h.gateway for h in hops if h.gateway and not h.dead)


def _gateway_of(hop: Any) -> str | None:
    gateway = hop.get_attr("RTA_GATEWAY")
    if gateway is not None:
        return str(gateway)
    via = hop.get_attr("RTA_VIA")  # IPv4 route over an IPv6 nexthop (RFC 5549)
    if via is not None:
        addr = via.get("addr") if hasattr(via, "get") else None
        return str(addr) if addr else None
    return None


def route_hops(msg: Any) -> tuple[Hop, ...] | None:
    """Paths carried by the route message itself; None if it names a nexthop object only."""
    multipath = msg.get_attr("RTA_MULTIPATH")
    if multipath:
        return tuple(Hop(_gateway_of(h), h["oif"] or None, bool(h["flags"] & RTNH_F_DEAD))
                     for h in multipath)
    single, oif = _gateway_of(msg), msg.get_attr("RTA_OIF")
    if single is not None or oif is not None:
        return (Hop(single, oif, bool(msg["flags"] & RTNH_F_DEAD)),)
    if msg.get_attr("RTA_NH_ID") is not None:
        return None
    return ()  # blackhole, unreachable, ...


def parse_route(message: bytes, prefixes: frozenset[str]) -> RouteChange | None:
    """Decode an RTM_NEWROUTE/RTM_DELROUTE; None unless it is IPv4 or IPv6, main table, one of
    ``prefixes`` (normalised strings, as ``str(ipaddress.ip_network(...))`` writes them)."""
    msg: Any = RouteMessage(message)
    msg.decode()
    if msg["family"] not in (socket.AF_INET, socket.AF_INET6):
        return None
    table = msg.get_attr("RTA_TABLE")
    if (table if table is not None else msg["table"]) != RT_TABLE_MAIN:
        return None
    unspecified = "0.0.0.0" if msg["family"] == socket.AF_INET else "::"
    prefix = f"{msg.get_attr('RTA_DST') or unspecified}/{msg['dst_len']}"
    if prefix not in prefixes:
        return None
    metric = msg.get_attr("RTA_PRIORITY")
    return RouteChange(
        deleted=msg["header"]["type"] == RTM_DELROUTE,
        prefix=prefix,
        hops=route_hops(msg),
        nhid=msg.get_attr("RTA_NH_ID"),
        proto=PROTOCOL_NAMES.get(msg["proto"], str(msg["proto"])),
        route_type=ROUTE_TYPES.get(msg["type"], str(msg["type"])),
        metric=int(metric) if metric is not None else 0,
        tos=int(msg["tos"]),
    )


def group_members(raw: bytes | None) -> tuple[int, ...]:
    if not raw:
        return ()
    return tuple(entry[0] for entry in _GROUP_ENTRY.iter_unpack(bytes(raw)))


def parse_nexthop(message: bytes) -> tuple[bool, Nexthop]:
    """Decode an RTM_NEWNEXTHOP/RTM_DELNEXTHOP: (deleted, nexthop)."""
    msg: Any = NexthopMessage(message)
    msg.decode()
    gateway = msg.get_attr("NHA_GATEWAY")
    nexthop = Nexthop(nhid=int(msg.get_attr("NHA_ID") or 0),
                      gateway=str(gateway) if gateway is not None else None,
                      members=group_members(msg.get_attr("NHA_GROUP")),
                      blackhole=msg.get_attr("NHA_BLACKHOLE") is not None,
                      oif=msg.get_attr("NHA_OIF"))
    return msg["header"]["type"] == RTM_DELNEXTHOP, nexthop


def parse_link(message: bytes) -> tuple[int, bool, bool]:
    """An RTM_NEWLINK/RTM_DELLINK: (interface index, administratively up, carrier up).
    A deleted interface is neither."""
    msg: Any = LinkMessage(message)
    msg.decode()
    flags = int(msg["flags"]) if msg["header"]["type"] == RTM_NEWLINK else 0
    return int(msg["index"]), bool(flags & IFF_UP), bool(flags & (IFF_RUNNING | IFF_LOWER_UP))


def sort_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """Unique addresses in numeric order (IPv4 before IPv6)."""
    def key(text: str) -> tuple[int, int, str]:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return (9, 0, text)
        return (address.version, int(address), text)
    return tuple(sorted(set(addresses), key=key))


class NexthopTable:
    """Nexthop objects of one namespace, kept current from dumps and notifications."""

    def __init__(self) -> None:
        self._by_id: dict[int, Nexthop] = {}

    def __contains__(self, nhid: int) -> bool:
        return nhid in self._by_id

    def update(self, deleted: bool, nexthop: Nexthop) -> None:
        if not deleted:
            self._by_id[nexthop.nhid] = nexthop
            return
        self._by_id.pop(nexthop.nhid, None)
        # The kernel drops a deleted nexthop from its groups, and a group left empty with it.
        for other in list(self._by_id.values()):
            if nexthop.nhid not in other.members:
                continue
            members = tuple(m for m in other.members if m != nexthop.nhid)
            if members:
                self._by_id[other.nhid] = dataclasses.replace(other, members=members)
            else:
                del self._by_id[other.nhid]

    def flush_device(self, oif: int) -> set[int]:
        """Forget the nexthops on interface ``oif`` (the kernel deletes them, without a
        notification, when the interface goes down or loses its carrier); returns the ids
        whose routes change."""
        gone = [n.nhid for n in self._by_id.values() if n.oif == oif and not n.members]
        affected: set[int] = set()
        for nhid in gone:
            affected |= self.users_of(nhid)
            self.update(True, Nexthop(nhid))
        return affected

    def resolve(self, nhid: int) -> tuple[Hop, ...] | None:
        """Paths of nexthop ``nhid`` (a group's members); None if unknown."""
        nexthop = self._by_id.get(nhid)
        if nexthop is None:
            return None
        if not nexthop.members:
            return () if nexthop.blackhole else (Hop(nexthop.gateway, nexthop.oif),)
        members = (self._by_id.get(m) for m in nexthop.members)
        return tuple(Hop(m.gateway, m.oif) for m in members if m is not None)

    def users_of(self, nhid: int) -> set[int]:
        """``nhid`` and the groups that contain it."""
        return {nhid} | {n.nhid for n in self._by_id.values() if nhid in n.members}
