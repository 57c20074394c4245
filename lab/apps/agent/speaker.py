"""The node's BGP speaker as the agent sees it: originate a prefix, stop, list what it originates.

- ``GobgpSpeaker`` (kube-router model) drives gobgpd through its CLI: ``global rib add/del``
  for locally originated paths; gobgpd sets the eBGP next hop to the session's local address.
- ``FrrSpeaker`` (MetalLB FRR mode) edits ``network`` statements of ``router bgp ASN`` with
  vtysh; the node's frr.conf says ``no bgp network import-check``, so a /32 needs no route.
Both raise CommandError when the daemon does not answer or refuses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Network
from pathlib import Path
from typing import Protocol

from lab.errors import CommandError
from lab.proc import run

SPEAKER_TIMEOUT_S = 10.0


class Speaker(Protocol):
    name: str
    originates_pod_cidr: bool  # True: the agent must announce the pod CIDR itself

    def announced(self) -> frozenset[IPv4Network]: ...

    def announce(self, prefix: IPv4Network) -> None: ...

    def withdraw(self, prefix: IPv4Network) -> None: ...


def parse_gobgp_rib(text: str) -> frozenset[IPv4Network]:
    """Locally originated prefixes in ``gobgp global rib -a ipv4 -j`` output.

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
            prefixes.add(IPv4Network(prefix))
    return frozenset(prefixes)


class GobgpSpeaker:
    name = "gobgp"
    originates_pod_cidr = True

    def __init__(self, host: str, port: int, cli: str = "gobgp",
                 timeout: float = SPEAKER_TIMEOUT_S) -> None:
        self.host, self.port, self.cli, self.timeout = host, port, cli, timeout

    def _run(self, *args: str) -> str:
        argv = [self.cli, "-u", self.host, "-p", str(self.port), *args]
        return run(argv, timeout=self.timeout).stdout

    def announced(self) -> frozenset[IPv4Network]:
        argv_tail = ("global", "rib", "-a", "ipv4", "-j")
        text = self._run(*argv_tail)
        try:
            return parse_gobgp_rib(text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise CommandError([self.cli, *argv_tail], 0, text, f"unreadable: {exc}") from exc

    def announce(self, prefix: IPv4Network) -> None:
        self._run("global", "rib", "add", "-a", "ipv4", str(prefix))

    def withdraw(self, prefix: IPv4Network) -> None:
        self._run("global", "rib", "del", "-a", "ipv4", str(prefix))


def parse_frr_networks(running_config: str, asn: int) -> frozenset[IPv4Network]:
    """The IPv4 ``network`` statements of ``router bgp ASN`` (default VRF) in a running config."""
    prefixes = set()
    in_router = in_ipv4 = False
    for raw in running_config.splitlines():
        line = raw.strip()
        if not raw.startswith(" "):
            in_router = line == f"router bgp {asn}"
            in_ipv4 = False
        elif in_router and line.startswith("address-family "):
            in_ipv4 = line == "address-family ipv4 unicast"
        elif in_router and line == "exit-address-family":
            in_ipv4 = False
        elif in_router and in_ipv4 and line.startswith("network "):
            prefixes.add(IPv4Network(line.split()[1]))
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

    def _configure(self, statement: str) -> None:
        self._vtysh(["configure terminal", f"router bgp {self.asn}",
                     "address-family ipv4 unicast", statement])

    def announced(self) -> frozenset[IPv4Network]:
        return parse_frr_networks(self._vtysh(["show running-config"]), self.asn)

    def announce(self, prefix: IPv4Network) -> None:
        self._configure(f"network {prefix}")

    def withdraw(self, prefix: IPv4Network) -> None:
        try:
            self._configure(f"no network {prefix}")
        except CommandError as exc:
            if "Can't find" not in exc.stdout + exc.stderr:
                raise  # not already gone: a real failure
