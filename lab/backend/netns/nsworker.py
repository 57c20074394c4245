"""Apply a NetworkSpec inside the lab's namespaces: ``python -m lab.backend.netns.nsworker``.

A separate single-threaded process reads the spec (JSON, from the file named by its argument,
or stdin) and, for each namespace, enters it with setns() and talks netlink there. Entering
namespaces from the CLI process itself would need threads or fork of a threaded process; a
worker keeps that simple, and one netlink socket per namespace is far cheaper than one `ip`
command per change.
Prints one JSON line: {"ok": true} or {"ok": false, "error": "..."}.

``python -m lab.backend.netns.nsworker SPEC PROGRESS`` also appends to file PROGRESS the name
of each namespace as soon as it is complete (links, addresses, routes, neighbours), so that
`up` starts the zebra of a router only then. FRR 8.4's zebra can lose an address that is
added right after its interface appears while zebra runs (measured: 2-7 % of such links on a
busy machine, at any time after zebra's start): the interface stays up without it, its bgpd
never reaches the peer ("Waiting for NHT") and resets every session the peer opens
("nexthop_set failed"). A zebra that starts in a complete namespace reads every address at
once (none lost in 240 tries with the same load); later link changes carry no new address.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from lab.backend.netns.netspec import NetworkSpec
from lab.errors import ImpairmentError
from lab.impair.namespaces import disable_offloads


class SpecError(Exception):
    pass


LOOPBACK_INDEX = 1  # the kernel gives lo index 1 in every namespace
IFF_UP = 0x1
IFA_F_NODAD = 0x02


def _write_sysctls(ns: str, values: dict[str, str]) -> None:
    for key, value in values.items():
        try:
            Path("/proc/sys", key).write_text(value)
        except OSError as exc:
            raise SpecError(f"{ns}: cannot set {key.replace('/', '.')}={value}: {exc}") from exc


def _for_existing_interfaces(values: dict[str, str]) -> dict[str, str]:
    """The per-interface IPv6 defaults (``conf/default/KEY``) for the interfaces already in
    the current namespace (made by containerlab or Mininet before the spec): a default
    applies only to interfaces made after it, and without this a pod made beforehand keeps
    sending router solicitations, which teach its node neighbour entries."""
    defaults = {key.rsplit("/", 1)[1]: value for key, value in values.items()
                if key.startswith("net/ipv6/conf/default/")}
    interfaces = [path.name for path in Path("/proc/sys/net/ipv6/conf").iterdir()
                  if path.name not in ("all", "default")] if defaults else []
    return {f"net/ipv6/conf/{name}/{key}": value for name in interfaces
            for key, value in defaults.items()}


def _phase_links(spec: NetworkSpec) -> None:
    """lo up and sysctls in every namespace, then the veth pairs (created from their A side,
    which starts up; the peer comes up in the second phase), except those that exist. Every
    namespace has its sysctls before any link is made: a peer is created straight into its
    namespace and takes that namespace's defaults then (IPv6 duplicate address detection)."""
    veths = defaultdict(list)
    existing = {v.ns for v in spec.veths if v.exists} | {v.peer_ns for v in spec.veths
                                                        if v.exists}
    for ns, values in spec.sysctls.items():
        netns.setns(ns, flags=0)
        _write_sysctls(ns, values)
        if ns in existing:
            _write_sysctls(ns, _for_existing_interfaces(values))
    for veth in spec.veths:
        veths[veth.ns].append(veth)
    for ns in list(spec.sysctls) + [ns for ns in veths if ns not in spec.sysctls]:
        netns.setns(ns, flags=0)
        with IPRoute() as ipr:
            ipr.link("set", index=LOOPBACK_INDEX, state="up")
            for veth in veths.get(ns, []):
                if veth.exists:
                    continue
                mine = {"address": veth.mac} if veth.mac else {}
                peer = {"address": veth.peer_mac} if veth.peer_mac else {}
                try:
                    ipr.link("add", ifname=veth.ifname, kind="veth", mtu=veth.mtu,
                             state="up", **mine, peer={"ifname": veth.peer_ifname,
                                                       "net_ns_fd": veth.peer_ns,
                                                       "mtu": veth.mtu, **peer})
                except NetlinkError as exc:
                    raise SpecError(f"veth {ns}/{veth.ifname} <-> {veth.peer_ns}/"
                                    f"{veth.peer_ifname}: {exc}") from exc


def _phase_addresses(spec: NetworkSpec, done: Callable[[str], None]) -> None:
    """Bridges, then every interface up (offloads off where asked) with its addresses, then
    permanent neighbours and routes."""
    per_ns: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for veth in spec.veths:
        if veth.offloads_off:
            per_ns[veth.ns]["offloads_off"].append(veth.ifname)
            per_ns[veth.peer_ns]["offloads_off"].append(veth.peer_ifname)
    for bridge in spec.bridges:
        per_ns[bridge.ns]["bridges"].append(bridge)
    for address in spec.addresses:
        per_ns[address.ns]["addresses"].append(address)
    for route in spec.routes:
        per_ns[route.ns]["routes"].append(route)
    for entry in spec.neighbours:
        per_ns[entry.ns]["neighbours"].append(entry)
    for ns, items in per_ns.items():
        netns.setns(ns, flags=0)
        with IPRoute() as ipr:
            _configure(ipr, ns, items)
        done(ns)


class _Links:
    """Interface name -> (index, up) in the current namespace, from one dump."""

    def __init__(self, ipr: Any, ns: str) -> None:
        self.ns = ns
        self.table = {link.get("IFLA_IFNAME"): (int(link["index"]), bool(link["flags"] & IFF_UP))
                      for link in ipr.get_links()}

    def index(self, ifname: str) -> int:
        if ifname not in self.table:
            raise SpecError(f"interface {ifname} not found in {self.ns}")
        return self.table[ifname][0]


def _configure(ipr: Any, ns: str, items: dict[str, list[Any]]) -> None:
    for bridge in items["bridges"]:
        mac = {"address": bridge.mac} if bridge.mac else {}  # set: ports never change it
        ipr.link("add", ifname=bridge.ifname, kind="bridge", br_stp_state=0,
                 br_forward_delay=0, state="up", **mac)
    links = _Links(ipr, ns)
    for bridge in items["bridges"]:
        master = links.index(bridge.ifname)
        for port in bridge.ports:
            ipr.link("set", index=links.index(port), master=master)
    for index, up in links.table.values():
        if not up:
            ipr.link("set", index=index, state="up")
    for ifname in items["offloads_off"]:
        try:  # a socket made here lives in this namespace: no helper process needed
            disable_offloads(ns, ifname, socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        except ImpairmentError as exc:
            raise SpecError(str(exc)) from exc
    for item in items["addresses"]:
        address, prefixlen = item.address.split("/")
        nodad = {"flags": IFA_F_NODAD} if ":" in address else {}  # usable at once
        try:
            ipr.addr("add", index=links.index(item.ifname), address=address,
                     prefixlen=int(prefixlen), **nodad)
        except NetlinkError as exc:
            if exc.code != 17:  # EEXIST: already there
                raise SpecError(f"{ns}/{item.ifname}: address {item.address}: {exc}") from exc
    for entry in items["neighbours"]:
        try:
            ipr.neigh("replace", dst=entry.address, lladdr=entry.mac,
                      ifindex=links.index(entry.ifname), state="permanent")
        except NetlinkError as exc:
            raise SpecError(f"{ns}/{entry.ifname}: neighbour {entry.address}: {exc}") from exc
    by_destination: dict[str, list[Any]] = defaultdict(list)
    for route in items["routes"]:
        by_destination[route.dst].append(route)
    for dst, routes in by_destination.items():
        first = routes[0]
        source = {"prefsrc": first.src} if first.src is not None else {}
        # one destination through several gateways (a dual-homed node): one multipath route
        hops = ({"gateway": first.gateway, "oif": links.index(first.ifname)} if len(routes) == 1
                else {"multipath": [{"gateway": r.gateway, "oif": links.index(r.ifname)}
                                    for r in routes]})
        try:
            ipr.route("replace", dst=dst, **hops, **source)
        except NetlinkError as exc:
            raise SpecError(f"{ns}: route {dst} via "
                            f"{', '.join(r.gateway for r in routes)}: {exc}") from exc


def apply_spec(spec: NetworkSpec, done: Callable[[str], None] = lambda _ns: None) -> None:
    """Build everything; ``done(ns)`` once namespace ``ns`` is complete (after the links of
    every namespace exist, each namespace is finished in turn)."""
    _phase_links(spec)
    _phase_addresses(spec, done)


@contextlib.contextmanager
def _progress(path: Path | None) -> Iterator[Callable[[str], None]]:
    """``done(ns)`` appends a line to ``path`` at once (None: reports nothing)."""
    if path is None:
        yield lambda _ns: None
        return
    with path.open("a", encoding="utf-8") as handle:
        def done(ns: str) -> None:
            handle.write(ns + "\n")
            handle.flush()

        yield done


def main() -> int:
    try:
        text = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else sys.stdin.read()
        spec = NetworkSpec.from_dict(json.loads(text))
        with _progress(Path(sys.argv[2]) if len(sys.argv) > 2 else None) as done:
            apply_spec(spec, done)
    except (SpecError, NetlinkError, OSError, ValueError, KeyError) as exc:
        sys.stdout.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")
        return 1
    sys.stdout.write(json.dumps({"ok": True}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
