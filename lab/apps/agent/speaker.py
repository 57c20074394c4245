"""The node's BGP speaker as the agent sees it: originate a prefix, stop, list what it originates.

- ``GobgpSpeaker`` (kube-router model) drives gobgpd through its CLI: ``global rib add/del``
  for locally originated paths; gobgpd sets the eBGP next hop to the session's local address.
- ``FrrSpeaker`` (MetalLB FRR mode) edits ``network`` statements of ``router bgp ASN`` with
  vtysh; the node's frr.conf says ``no bgp network import-check``, so a /32 needs no route.
Each prefix goes to the address family of its own version (``-a ipv6``, ``address-family ipv6
unicast``); a speaker reads back only the families it was given.
Both raise CommandError when the daemon does not answer or refuses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import ip_network
from pathlib import Path
from typing import Protocol

from lab.apps.agent.drain import GSHUT_COMMUNITY, Drain
from lab.errors import CommandError
from lab.plan.model import IPV4, IPV6, IPNetwork, family_of
from lab.proc import run

SPEAKER_TIMEOUT_S = 10.0


class Speaker(Protocol):
    name: str
    originates_pod_cidr: bool  # True: the agent must announce the pod CIDR itself

    def announced(self) -> frozenset[IPNetwork]: ...

    def announce(self, prefix: IPNetwork, drain: Drain | None = None) -> None:
        """Originate ``prefix`` (again: the new attributes replace the old), with the GSHUT
        community or a prepended AS path while ``drain`` keeps announcing."""

    def withdraw(self, prefix: IPNetwork) -> None: ...


def parse_gobgp_rib(text: str) -> frozenset[IPNetwork]:
    """Locally originated prefixes in ``gobgp global rib -a ipv4|ipv6 -j`` output.

    Paths learned from a neighbour carry a ``neighbor-ip``; local ones do not (or say
    ``<nil>``/empty)."""
    document = json.loads(text) if text.strip() else {}
    if not isinstance(document, dict):
        raise ValueError("gobgp rib JSON is not an object")
    prefixes = set()
    for prefix, paths in document.items():
        if not isinstance(paths, list):
            continue
        if any(isinstance(p, dict) and p.get("neighbor-ip") in (None, "", "<nil>")
               for p in paths):
            prefixes.add(ip_network(prefix))
    return frozenset(prefixes)


class GobgpSpeaker:
    name = "gobgp"
    originates_pod_cidr = True

    def __init__(self, host: str, port: int, cli: str = "gobgp",
                 timeout: float = SPEAKER_TIMEOUT_S,
                 families: Sequence[str] = ("ipv4",), asn: int | None = None) -> None:
        self.host, self.port, self.cli, self.timeout = host, port, cli, timeout
        self.families = tuple(families)
        self.asn = asn

    def _run(self, *args: str) -> str:
        argv = [self.cli, "-u", self.host, "-p", str(self.port), *args]
        return run(argv, timeout=self.timeout).stdout

    def announced(self) -> frozenset[IPNetwork]:
        found: set[IPNetwork] = set()
        for family in self.families:
            argv_tail = ("global", "rib", "-a", family, "-j")
            text = self._run(*argv_tail)
            try:
                found |= parse_gobgp_rib(text)
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                raise CommandError([self.cli, *argv_tail], 0, text,
                                   f"unreadable: {exc}") from exc
        return frozenset(found)

    def announce(self, prefix: IPNetwork, drain: Drain | None = None) -> None:
        self._run("global", "rib", "add", "-a", family_of(prefix), str(prefix),
                  *self._attributes(drain))

    def _attributes(self, drain: Drain | None) -> list[str]:
        if drain is None or not drain.keeps_announcing:
            return []
        if drain.method == "gshut":
            return ["community", GSHUT_COMMUNITY]
        # gobgpd puts its own AS in front when it sends the path: ASN x prepend, plus that
        return ["aspath", " ".join([str(self.asn)] * drain.prepend)]

    def withdraw(self, prefix: IPNetwork) -> None:
        self._run("global", "rib", "del", "-a", family_of(prefix), str(prefix))


def parse_frr_networks(running_config: str, asn: int) -> frozenset[IPNetwork]:
    """The ``network`` statements of the IPv4 and IPv6 unicast address families of
    ``router bgp ASN`` (default VRF) in a running config."""
    prefixes: set[IPNetwork] = set()
    in_router = in_family = False
    for raw in running_config.splitlines():
        line = raw.strip()
        if not raw.startswith(" "):
            in_router = line == f"router bgp {asn}"
            in_family = False
        elif in_router and line.startswith("address-family "):
            in_family = line in {f"address-family {f} unicast" for f in (IPV4, IPV6)}
        elif in_router and line == "exit-address-family":
            in_family = False
        elif in_router and in_family and line.startswith("network "):
            prefixes.add(ip_network(line.split()[1]))
    return frozenset(prefixes)


class FrrSpeaker:
    name = "frr"
    originates_pod_cidr = False  # a ``network`` statement in the node's frr.conf

    def __init__(self, vty_socket_dir: Path, asn: int, vtysh: str = "vtysh",
                 timeout: float = SPEAKER_TIMEOUT_S) -> None:
        self.vty_socket_dir, self.asn = vty_socket_dir, asn
        self.vtysh, self.timeout = vtysh, timeout

    def _vtysh(self, commands: Sequence[str]) -> str:
        argv = [self.vtysh, "--vty_socket", str(self.vty_socket_dir)]
        for command in commands:
            argv += ["-c", command]
        return run(argv, timeout=self.timeout).stdout

    def _configure(self, prefix: IPNetwork, statement: str,
                   before: Sequence[str] = ()) -> None:
        self._vtysh(["configure terminal", *before, f"router bgp {self.asn}",
                     f"address-family {family_of(prefix)} unicast", statement])

    def announced(self) -> frozenset[IPNetwork]:
        return parse_frr_networks(self._vtysh(["show running-config"]), self.asn)

    def announce(self, prefix: IPNetwork, drain: Drain | None = None) -> None:
        """``network X`` entered again replaces the statement's route map (none, or the
        drain's): FRR sends the route again with the new attributes, never withdraws it."""
        if drain is None or not drain.keeps_announcing:
            self._configure(prefix, f"network {prefix}")
            return
        name, line = self._drain_route_map(drain)
        self._configure(prefix, f"network {prefix} route-map {name}",
                        before=(f"route-map {name} permit 10", line, "exit"))

    def _drain_route_map(self, drain: Drain) -> tuple[str, str]:
        """A route map per drain (defined again each time: the same lines change nothing)."""
        if drain.method == "gshut":
            return "NODE-DRAIN-GSHUT", f"set community {GSHUT_COMMUNITY} additive"
        return (f"NODE-DRAIN-PREPEND-{drain.prepend}",
                "set as-path prepend " + " ".join([str(self.asn)] * drain.prepend))

    def withdraw(self, prefix: IPNetwork) -> None:
        try:
            self._configure(prefix, f"no network {prefix}")
        except CommandError as exc:
            if "Can't find" not in exc.stdout + exc.stderr:
                raise  # not already gone: a real failure
