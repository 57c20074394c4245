"""The FIB state of the watched prefixes in one router namespace, from netlink messages.

Pure logic (no sockets), so it can be fed captured or built messages. Each route message
about a watched prefix becomes a row. The kernel also changes routes without any route
notification, and those changes are written too, marked with ``cause``:

- ``nexthop``: a nexthop object is deleted (routes using it vanish; a group loses the member
  and a group left empty is deleted with its routes), or, with ``nexthop_compat_mode`` 0,
  replaced (with compat mode 1, the default, the kernel re-announces the routes itself);
- ``link-down`` / ``link-up``: an interface loses its carrier (the kernel deletes its nexthop
  objects) or goes administratively down (also: routes without nexthop objects whose every
  path used it are flushed, the others' paths through it marked dead), or comes up again
  (dead paths of routes without nexthop objects come back; nexthop objects do not).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lab.measure.recorder.messages import (
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_DELLINK,
    RTM_DELNEXTHOP,
    RTM_DELROUTE,
    RTM_NEWLINK,
    RTM_NEWNEXTHOP,
    RTM_NEWROUTE,
    Hop,
    NexthopTable,
    RouteChange,
    live_gateways,
    parse_link,
    parse_nexthop,
    parse_route,
    split_messages,
)

Row = dict[str, Any]
Emit = Callable[[Row], None]
RouteKey = tuple[str, int, int]  # prefix, metric, tos: one kernel IPv4 route


@dataclass(frozen=True)
class InstalledRoute:
    nhid: int | None
    hops: tuple[Hop, ...]
    proto: str
    route_type: str

    @property
    def nexthops(self) -> tuple[str, ...]:
        return live_gateways(self.hops)

    def fields(self, metric: int) -> Row:
        return {"proto": self.proto, "type": self.route_type, "metric": metric,
                "nhid": self.nhid}


class FibTracker:
    """Turns one namespace's route, nexthop and link messages into recorder rows."""

    def __init__(self, router: str, prefixes: Iterable[str], compat_mode: bool,
                 emit: Emit) -> None:
        self.router = router
        self.prefixes = frozenset(prefixes)
        self.compat_mode = compat_mode
        self.emit = emit
        self.nexthops = NexthopTable()
        self.routes: dict[RouteKey, InstalledRoute] = {}
        self.seen_in_dump: set[RouteKey] = set()
        # Bytes every message about a watched prefix contains (its RTA_DST): messages
        # without them are skipped undecoded. A default route has no RTA_DST.
        self._needles = [] if any(p.endswith("/0") for p in self.prefixes) else [
            ipaddress.ip_address(p.split("/")[0]).packed for p in self.prefixes]

    def handle(self, data: bytes, t_ns: int, port: int = 0,
               dump_seq: int | None = None) -> bool:
        """Handle one datagram; messages from ``port`` with ``dump_seq`` are replies to our
        dump. Returns True if it held the end (or the error) of that dump."""
        ended = False
        for kind, seq, pid, message in split_messages(data):
            reply = dump_seq is not None and not ended and pid == port and seq == dump_seq
            if kind in (RTM_NEWROUTE, RTM_DELROUTE):
                if self._needles and not any(n in message for n in self._needles):
                    continue
                change = parse_route(message, self.prefixes)
                if change is not None:
                    self.route(t_ns, change, reply)
            elif kind in (RTM_NEWNEXTHOP, RTM_DELNEXTHOP):
                self.nexthop(t_ns, message, reply)
            elif kind in (RTM_NEWLINK, RTM_DELLINK):
                self.link(t_ns, *parse_link(message))
            elif kind in (NLMSG_DONE, NLMSG_ERROR) and reply:
                ended = True  # an error ends a dump too (a kernel without nexthop objects)
        return ended

    def route(self, t_ns: int, change: RouteChange, reply: bool = False) -> None:
        key = (change.prefix, change.metric, change.tos)
        hops = change.hops
        if hops is None:
            hops = self.nexthops.resolve(change.nhid) if change.nhid is not None else None
            if hops is None:
                print(f"recorder: {self.router}: route {change.prefix} uses unknown nexthop "
                      f"{change.nhid}", file=sys.stderr, flush=True)
                hops = ()
        route = InstalledRoute(change.nhid, hops, change.proto, change.route_type)
        if change.deleted:
            self.routes.pop(key, None)
            self._write(t_ns, key, "del", route)
            return
        self.routes[key] = route
        if reply:
            self.seen_in_dump.add(key)
        self._write(t_ns, key, "present" if reply else "add", route)

    def nexthop(self, t_ns: int, message: bytes, reply: bool = False) -> None:
        deleted, nexthop = parse_nexthop(message)
        affected = self.nexthops.users_of(nexthop.nhid)
        self.nexthops.update(deleted, nexthop)
        if reply or (self.compat_mode and not deleted):
            return  # compat mode: the kernel re-announces the routes of a replaced nexthop
        self._refresh(t_ns, affected, "nexthop")

    def link(self, t_ns: int, oif: int, up: bool, carrier: bool) -> None:
        """Mirror the kernel: nexthop objects on an interface that is down or without
        carrier are deleted; routes without nexthop objects lose the paths through an
        interface that is administratively down (a carrier loss only marks them linkdown,
        still used while net.ipv4.conf.*.ignore_routes_with_linkdown is 0)."""
        if not (up and carrier):
            self._refresh(t_ns, self.nexthops.flush_device(oif), "link-down")
        if up:
            self._revive(t_ns, oif)
            return
        for key, route in sorted(self.routes.items()):
            if route.nhid is not None or not any(h.oif == oif for h in route.hops):
                continue
            hops = tuple(h._replace(dead=True) if h.oif == oif else h for h in route.hops)
            if all(h.dead for h in hops):  # every path gone: the kernel flushes the route
                del self.routes[key]
                self._write(t_ns, key, "del", route, "link-down")
            elif hops != route.hops:
                self._replace(t_ns, key, dataclasses.replace(route, hops=hops), "link-down")

    def _revive(self, t_ns: int, oif: int) -> None:
        for key, route in sorted(self.routes.items()):
            if route.nhid is None and any(h.dead and h.oif == oif for h in route.hops):
                hops = tuple(h._replace(dead=False) if h.oif == oif else h for h in route.hops)
                self._replace(t_ns, key, dataclasses.replace(route, hops=hops), "link-up")

    def _refresh(self, t_ns: int, affected: set[int], cause: str) -> None:
        """Routes using the ``affected`` nexthop ids after a change of the nexthop table."""
        for key, route in sorted(self.routes.items()):
            if route.nhid is None or route.nhid not in affected:
                continue
            hops = self.nexthops.resolve(route.nhid)
            if hops is None:  # its nexthop (or group) is gone, and the route with it
                del self.routes[key]
                self._write(t_ns, key, "del", route, cause)
            elif hops != route.hops:
                self._replace(t_ns, key, dataclasses.replace(route, hops=hops), cause)

    def _replace(self, t_ns: int, key: RouteKey, route: InstalledRoute, cause: str) -> None:
        before = self.routes[key].nexthops
        self.routes[key] = route
        if route.nexthops != before:
            self._write(t_ns, key, "add", route, cause)

    def forget_missing(self, t_ns: int) -> None:
        """After a full dump: routes known before but not dumped were lost unheard."""
        for key in sorted(set(self.routes) - self.seen_in_dump):
            self._write(t_ns, key, "del", self.routes.pop(key), "resync")

    def _write(self, t_ns: int, key: RouteKey, action: str, route: InstalledRoute,
               cause: str | None = None) -> None:
        row: Row = {"t_ns": t_ns, "router": self.router, "prefix": key[0], "action": action,
                    "nexthops": list(route.nexthops), **route.fields(key[1])}
        if cause is not None:
            row["cause"] = cause
        self.emit(row)


def rows_of(router: str, prefixes: Sequence[str], datagrams: Iterable[tuple[int, bytes]],
            compat_mode: bool = True) -> list[Row]:
    """The rows a sequence of (t_ns, datagram) gives (for tests and offline replays)."""
    rows: list[Row] = []
    tracker = FibTracker(router, prefixes, compat_mode, rows.append)
    for t_ns, data in datagrams:
        tracker.handle(data, t_ns)
    return rows
