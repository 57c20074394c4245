"""What a router boots from, and how readiness turns it into its ``frr.conf``.

BFD on BGP sessions is switched on per session once BGP is Established. Why: FRR 8.4's
bgpd registers a peer's BFD session with bfdd when the configuration is read, before it
knows the local address and interface of the session. When the session comes up it learns
them and registers the session again; bfdd deletes the first session and creates a new one,
which starts Down, and bgpd resets the BGP session it was up for ("Cease/BFD Down"). Both
routers do it, so a fresh fabric flaps every BFD-protected session once or twice, about two
seconds in all. Configured after Established, the registration carries the final addresses
and interface at once and BGP never flaps.

Routers therefore boot from their ``frr.conf`` without the ``neighbor ... bfd profile``
lines (``boot_config``); readiness adds them (``attach``) as sessions come up. So that BFD
need not then leave its one-second slow start (another 1-2 s), the boot configuration also
holds each of those sessions as a static bfdd peer with the same addresses, interface and
profile: it comes up beside BGP, bgpd's registration finds it up, and once every session is
attached readiness removes the static peers (``finish_start``); bfdd keeps the session for
bgpd, which then owns it alone, as on a router configured from ``frr.conf``.

The boot configuration also sets ``coalesce-time`` to ``BOOT_COALESCE_MS``: FRR holds a new
update group's first updates for its coalesce time (1 s plus 50 ms per peer by default),
which at start delays every router's first routes by that long, hop after hop.
``finish_start`` restores FRR's default before the lab is declared ready, so that sessions
that come up later (a node back from a crash) wait as on a real router. The running
configuration then equals ``frr.conf``, which daemons restarted later read whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from lab.backend.daemons import NodeFiles, daemon_json
from lab.backend.vty import vty_commands
from lab.errors import BackendError
from lab.plan.model import LabPlan, SessionPlan
from lab.render.configs import frr_daemons

ROUTER_BGP = "router bgp "
# FRR's coalesce time while the lab starts: long enough to group a router's sessions that
# come up together, short beside the default's second
BOOT_COALESCE_MS = 100


@dataclass(frozen=True)
class BfdAttachment:
    """``neighbor PEER bfd profile PROFILE`` under ``router bgp ASN`` of ``router``."""

    session: str
    router: str
    asn: int
    peer: str
    profile: str
    local: str
    ifname: str

    @property
    def line(self) -> str:
        return f" neighbor {self.peer} bfd profile {self.profile}"

    @property
    def static_peer(self) -> str:
        """The same session as a bfdd peer (under ``bfd``)."""
        return f" peer {self.peer} local-address {self.local} interface {self.ifname}"


def attachments(plan: LabPlan, session: SessionPlan) -> list[BfdAttachment]:
    """The BFD lines of a session: one per end that runs bgpd (none without BFD)."""
    found = []
    for end in (session.a, session.b):
        bfd = session.bfd_at(end)
        if bfd is not None and "bgpd" in frr_daemons(plan.node(end)):
            local, asn, ifname, _, peer, _ = session.side(end)
            found.append(BfdAttachment(session.id, end, asn, str(peer), bfd.profile,
                                       str(local), ifname))
    return found


def router_attachments(plan: LabPlan, router: str) -> list[BfdAttachment]:
    return [a for s in plan.sessions for a in attachments(plan, s) if a.router == router]


def boot_config(plan: LabPlan, router: str, frr_conf: str) -> str:
    """``frr_conf`` without the router's BFD lines on BGP neighbors, with those sessions as
    static bfdd peers and the start's short coalesce time in every BGP instance."""
    items = router_attachments(plan, router)
    lines = frr_conf.split("\n")
    for item in items:
        if lines.count(item.line) != 1:
            raise BackendError(f"the configuration of {router} should hold {item.line.strip()!r}"
                               " once")
        lines.remove(item.line)
    booted: list[str] = []
    for line in lines:
        if line == "end" and items:
            booted += ["bfd"]
            for item in items:
                booted += [item.static_peer, f"  profile {item.profile}", " exit"]
            booted += ["exit"]
        booted.append(line)
        if line.startswith(ROUTER_BGP):
            booted.append(f" coalesce-time {BOOT_COALESCE_MS}")
    return "\n".join(booted)


def attach(files: NodeFiles, items: list[BfdAttachment]) -> None:
    """Add BFD lines to one router's running bgpd (one connection to its vty)."""
    session = ["enable", "configure terminal"]
    for asn, group in _by_asn(items).items():
        session += [f"router bgp {asn}", *(item.line.strip() for item in group), "exit"]
    session.append("end")
    try:
        vty_commands(files.vty_socket("bgpd"), session)
    except BackendError as exc:
        raise BackendError(f"cannot switch BFD on in {files.directory}: {exc}") from exc


def finish_start(files: NodeFiles, items: list[BfdAttachment]) -> None:
    """One router from its boot configuration to its ``frr.conf``: FRR's default coalesce
    time back in every BGP instance, the static bfdd peers gone (bgpd holds the sessions)."""
    bgp = ["enable", "configure terminal"]
    for line in files.frr_conf.read_text(encoding="utf-8").split("\n"):
        if line.startswith(ROUTER_BGP):
            bgp += [line, f"no coalesce-time {BOOT_COALESCE_MS}", "exit"]
    try:
        vty_commands(files.vty_socket("bgpd"), [*bgp, "end"])
        if items:
            vty_commands(files.vty_socket("bfdd"), [
                "enable", "configure terminal", "bfd",
                *(f"no {item.static_peer.strip()}" for item in items), "exit", "end"])
    except BackendError as exc:
        raise BackendError(f"cannot finish the start of {files.directory}: {exc}") from exc


def _by_asn(items: list[BfdAttachment]) -> dict[int, list[BfdAttachment]]:
    groups: dict[int, list[BfdAttachment]] = defaultdict(list)
    for item in items:
        groups[item.asn].append(item)
    return groups


def bfd_peer_states(files: NodeFiles) -> dict[str, str]:
    """Peer address -> BFD state ("up", "down", "init", ...) as the router's bfdd sees it."""
    data: Any = daemon_json(files, "bfdd", "show bfd peers json")
    if not isinstance(data, list):
        return {}
    return {str(p.get("peer")): str(p.get("status", "?")) for p in data if isinstance(p, dict)}
