"""BFD on BGP sessions is switched on per session once BGP is Established.

Why: FRR 8.4's bgpd registers a peer's BFD session with bfdd when the configuration is read,
before it knows the local address and interface of the session. When the session comes up
it learns them and registers the session again; bfdd deletes the first session and creates
a new one, which starts Down, and bgpd resets the BGP session it was up for ("Cease/BFD
Down"). Both routers do it, so a fresh fabric flaps every BFD-protected session once or
twice, about two seconds in all. Configured after Established, the registration carries
the final addresses and interface at once and BGP never flaps.

Routers therefore boot from their ``frr.conf`` without the ``neighbor ... bfd profile``
lines (``boot_config``); readiness adds them (``attach``) as sessions come up.

The boot configuration also sets ``coalesce-time`` to ``BOOT_COALESCE_MS``: FRR holds a new
update group's first updates for its coalesce time (1 s plus 50 ms per peer by default),
which at start delays every router's first routes by that long, hop after hop. Once routing
has settled, readiness restores FRR's default (``restore_coalesce``) before the lab is
declared ready, so that sessions that come up later (a node back from a crash) wait as on a
real router. The running configuration then equals ``frr.conf``, which daemons restarted
later read whole.
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

    @property
    def line(self) -> str:
        return f" neighbor {self.peer} bfd profile {self.profile}"


def attachments(plan: LabPlan, session: SessionPlan) -> list[BfdAttachment]:
    """The BFD lines of a session: one per end that runs bgpd (none without BFD)."""
    if session.timers.bfd is None:
        return []
    found = []
    for end in (session.a, session.b):
        if "bgpd" in frr_daemons(plan.node(end)):
            _, asn, _, _, peer, _ = session.side(end)
            found.append(BfdAttachment(session.id, end, asn, str(peer),
                                       session.timers.bfd.profile))
    return found


def boot_config(plan: LabPlan, router: str, frr_conf: str) -> str:
    """``frr_conf`` without the router's BFD lines on BGP neighbors, with the start's short
    coalesce time in every BGP instance."""
    lines = frr_conf.split("\n")
    for item in (a for s in plan.sessions for a in attachments(plan, s) if a.router == router):
        if lines.count(item.line) != 1:
            raise BackendError(f"the configuration of {router} should hold {item.line.strip()!r}"
                               " once")
        lines.remove(item.line)
    booted: list[str] = []
    for line in lines:
        booted.append(line)
        if line.startswith(ROUTER_BGP):
            booted.append(f" coalesce-time {BOOT_COALESCE_MS}")
    return "\n".join(booted)


def bgp_instances(frr_conf: str) -> list[str]:
    """The ``router bgp ...`` lines of a configuration."""
    return [line for line in frr_conf.split("\n") if line.startswith(ROUTER_BGP)]


def restore_coalesce(files: NodeFiles) -> None:
    """FRR's default coalesce time back in every BGP instance of one router's running bgpd."""
    session = ["enable", "configure terminal"]
    for instance in bgp_instances(files.frr_conf.read_text(encoding="utf-8")):
        session += [instance, f"no coalesce-time {BOOT_COALESCE_MS}", "exit"]
    session.append("end")
    try:
        vty_commands(files.vty_socket("bgpd"), session)
    except BackendError as exc:
        raise BackendError(f"cannot restore the coalesce time in {files.directory}: {exc}"
                           ) from exc


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
