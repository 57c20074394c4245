"""Looking at a running lab: BGP sessions, announcements, and what clients get on each VIP.

Session states come from the FRR end of each session (every session has one: leafs face the
GoBGP nodes). Client checks send a real request from the client's namespace to the VIP and
read which site, node and pod answered, and the round-trip time.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.backend.bfdstart import bfd_peer_states
from lab.backend.daemons import NodeFiles, bgp_peer_states, daemon_json
from lab.backend.names import node_dir
from lab.backend.processes import is_alive
from lab.backend.state import LabState
from lab.errors import BackendError
from lab.measure.dnsid import answer_identity, make_query
from lab.netns import socket_at
from lab.plan import naming
from lab.plan.model import (
    IPV4,
    DnsProbePlan,
    Family,
    LabPlan,
    NodePlan,
    PodPlan,
    Role,
    ServicePlan,
    SessionPlan,
    TcpProbePlan,
    service_label,
)
from lab.render.configs import frr_daemons

if TYPE_CHECKING:
    from lab.backend.protocol import Backend

PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class SessionState:
    session: str
    a: str
    b: str
    state: str
    why: str = ""  # for a session that is down: what its daemons say (lab.backend.evidence)

    @property
    def established(self) -> bool:
        return self.state == "Established"


@dataclass(frozen=True)
class ClientAnswer:
    client: str
    service: str
    site: str | None
    node: str | None
    pod: str | None
    rtt_ms: float | None  # UDP: request to reply; TCP: the handshake (one round trip)
    error: str | None = None
    family: Family = IPV4
    request_ms: float | None = None  # TCP: connect, request and reply (about two round trips)

    @property
    def target(self) -> str:
        """'service' or, for IPv6, 'service (IPv6)': how messages name what was asked."""
        return service_label(self.service, self.family)


def client_targets(plan: LabPlan) -> list[tuple[str, ServicePlan, Family]]:
    """(client, service, family) for every VIP of every service, in each family the client
    has: the requests that show where clients land."""
    return [(client.name, service, family) for client in plan.nodes_with_role(Role.CLIENT)
            for service in plan.services for family in client.families
            if service.vip_of(family) is not None]


def frr_end(plan: LabPlan, session: SessionPlan) -> tuple[str, str]:
    """(router whose bgpd reports the session, the peer address it knows it by)."""
    a = plan.node(session.a)
    if a.role != Role.K8S_NODE or a.speaker == "frr":
        return session.a, str(session.b_address)
    return session.b, str(session.a_address)


def session_states(backend: Backend, state: LabState, plan: LabPlan,
                   only: list[SessionPlan] | None = None) -> list[SessionState]:
    """BGP state of sessions, from the bgpd of their FRR end ("Established" when up)."""
    sessions = only if only is not None else list(plan.sessions)
    return _states_at_frr_ends(backend, state, plan, sessions, bgp_peer_states, "Down")


def bfd_states(backend: Backend, state: LabState, plan: LabPlan,
               sessions: list[SessionPlan]) -> list[SessionState]:
    """BFD state of sessions that run BFD, from the bfdd of their FRR end ("up" when up)."""
    with_bfd = [s for s in sessions if s.timers.bfd is not None]
    return _states_at_frr_ends(backend, state, plan, with_bfd, bfd_peer_states, "absent")


def _states_at_frr_ends(backend: Backend, state: LabState, plan: LabPlan,
                        sessions: list[SessionPlan],
                        query: Callable[[NodeFiles], dict[str, str]],
                        missing: str) -> list[SessionState]:
    """Ask each router once (``query``: peer address -> state); ``missing`` for peers it
    does not know or routers that do not answer."""

    def peers(router: str) -> tuple[str, dict[str, str]]:
        try:
            return router, query(backend.router_files(state, router))
        except BackendError:
            return router, {}

    with ThreadPoolExecutor(max_workers=4) as pool:
        table = dict(pool.map(peers, sorted({frr_end(plan, s)[0] for s in sessions})))
    result = []
    for session in sessions:
        router, peer = frr_end(plan, session)
        result.append(SessionState(session.id, session.a, session.b,
                                   table.get(router, {}).get(peer, missing)))
    return result


def _identity(payload: bytes, sent: bytes) -> dict[str, Any]:
    if not payload.startswith(sent):
        raise ValueError("reply does not echo the request")
    data = json.loads(payload[len(sent):].strip())
    if not isinstance(data, dict):
        raise ValueError("identity is not an object")
    return data


def probe(backend: Backend, state: LabState, client: str, service: ServicePlan,
          timeout_s: float = PROBE_TIMEOUT_S, family: Family = IPV4,
          pods: Mapping[str, PodPlan] | None = None) -> ClientAnswer:
    """One request from the client's namespace to the service's VIP of ``family``: the
    built-in server's echo, or the service's DNS question (``pods``: the lab's pods by name,
    whom a DNS identity names)."""
    kind = socket.SOCK_DGRAM if service.protocol == "udp" else socket.SOCK_STREAM
    vip = service.vip_of(family)
    assert vip is not None, f"{service.name} has no {family} VIP"
    address_family = socket.AF_INET if vip.version == 4 else socket.AF_INET6
    try:
        sock = socket_at(backend.netns_path(state, client), address_family, kind)
    except Exception as exc:  # the namespace may be gone: report, don't crash status
        return ClientAnswer(client, service.name, None, None, None, None, str(exc), family)
    try:
        sock.settimeout(timeout_s)
        started = time.monotonic_ns()
        request_ms = None
        if service.dns_probe is not None:
            return _dns_answer(sock, client, service, service.dns_probe, str(vip), family,
                               pods or {})
        if service.tcp_probe is not None:
            return _tcp_answer(sock, client, service, service.tcp_probe, str(vip), family,
                               pods or {})
        if service.protocol == "udp":
            request = struct.pack("!QQ", 0, started)
            sock.sendto(request, (str(vip), service.port))
            reply = sock.recv(65535)
            rtt_ms = (time.monotonic_ns() - started) / 1e6
        else:
            request = b"status-probe\n"
            sock.connect((str(vip), service.port))
            rtt_ms = (time.monotonic_ns() - started) / 1e6  # SYN to SYN-ACK
            sock.sendall(request)
            reply = _read_line(sock)
            request = request.rstrip(b"\n")
            request_ms = round((time.monotonic_ns() - started) / 1e6, 3)
        who = _identity(reply, request)
        return ClientAnswer(client, service.name, who.get("site"), who.get("node"),
                            who.get("pod"), round(rtt_ms, 3), family=family,
                            request_ms=request_ms)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return ClientAnswer(client, service.name, None, None, None, None,
                            type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc),
                            family)
    finally:
        sock.close()


def _dns_answer(sock: socket.socket, client: str, service: ServicePlan, ask: DnsProbePlan,
                vip: str, family: Family, pods: Mapping[str, PodPlan]) -> ClientAnswer:
    """One DNS question to the VIP; the pod its identity names (an error when it names none:
    the server's identity must be its pod's name, e.g. NSD's ``nsid: "ascii_{pod}"``)."""
    query = make_query(ask)
    started = time.monotonic_ns()
    sock.sendto(query.to_wire(), (vip, service.port))
    wire = sock.recv(65535)
    rtt_ms = round((time.monotonic_ns() - started) / 1e6, 3)
    identity, problem = answer_identity(wire, query, ask)
    return _named_answer(client, service, family, pods, rtt_ms, identity,
                         problem, ask.identity != "none")


def _tcp_answer(sock: socket.socket, client: str, service: ServicePlan, ask: TcpProbePlan,
                vip: str, family: Family, pods: Mapping[str, PodPlan]) -> ClientAnswer:
    """A TCP handshake to the VIP, then (``mode`` http) one GET: the pod its identity
    header names."""
    started = time.monotonic_ns()
    sock.connect((vip, service.port))
    rtt_ms = round((time.monotonic_ns() - started) / 1e6, 3)  # SYN to SYN-ACK
    if ask.mode == "connect":
        return _named_answer(client, service, family, pods, rtt_ms, None, None, False)
    connection = http.client.HTTPConnection(ask.host or vip, service.port)
    connection.sock = sock  # made inside the client's namespace, already connected
    connection.request("GET", ask.path, headers={"User-Agent": "anylab-status"})
    response = connection.getresponse()
    response.read()
    request_ms = round((time.monotonic_ns() - started) / 1e6, 3)
    identity = response.getheader(ask.identity_header) if ask.identity_header else None
    problem = None if 200 <= response.status < 400 else f"HTTP {response.status}"
    if problem is None and ask.identity_header and identity is None:
        problem = f"no {ask.identity_header} header in the answer"
    return _named_answer(client, service, family, pods, rtt_ms, identity, problem,
                         ask.identity_header is not None, request_ms)


def _named_answer(client: str, service: ServicePlan, family: Family,
                  pods: Mapping[str, PodPlan], rtt_ms: float, identity: str | None,
                  problem: str | None, identity_asked: bool,
                  request_ms: float | None = None) -> ClientAnswer:
    """A real server's answer: the pod its identity names (an error when it names none: the
    server's identity must be its pod's name), or, when no identity was asked, only that the
    service answered (site "?"). A pod a rolling update made names itself ``POD-rN``
    (lab.plan.naming): its slot's place, its own name."""
    pod = pods.get(naming.pod_of_instance(identity or ""))
    if identity_asked and problem is None and pod is None:
        problem = f"answered as {identity!r}, which names no pod of the lab"
    if problem is not None:
        return ClientAnswer(client, service.name, None, None, None, rtt_ms, problem, family,
                            request_ms)
    if pod is None:
        return ClientAnswer(client, service.name, "?", None, None, rtt_ms, family=family,
                            request_ms=request_ms)
    return ClientAnswer(client, service.name, pod.site, pod.node, identity, rtt_ms,
                        family=family, request_ms=request_ms)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def probe_all(backend: Backend, state: LabState, plan: LabPlan) -> list[ClientAnswer]:
    # One at a time: parallel probes in one Python process would add GIL waits to the RTTs.
    pods = {pod.name: pod for pod in plan.pods()}
    return [probe(backend, state, client, service, family=family, pods=pods)
            for client, service, family in client_targets(plan)]


def daemons_alive(state: LabState) -> tuple[int, list[str]]:
    """(processes alive, descriptions of the dead ones)."""
    dead = [f"{r.kind} on {r.node} (pid {r.pid})" for r in state.processes if not is_alive(r)]
    return len(state.processes) - len(dead), dead


def agent_status(state: LabState, node: str) -> dict[str, Any]:
    """The node agent's status.json (lab.apps.agent.state.status_document); empty when it
    has written none yet, or none that reads."""
    path = Path(node_dir(state.directory, node)) / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def unready_pods(state: LabState, plan: LabPlan) -> dict[str, str]:
    """Pod -> what its last readiness probe said, for every pod its node's agent counts as
    unready (from the agents' status files; a rolling update's new pod as its slot)."""
    found: dict[str, str] = {}
    for node in plan.nodes_with_role(Role.K8S_NODE):
        status = agent_status(state, node.name)
        why = status.get("unready_why", {})
        own = {p.name for p in node.pods}
        found.update({naming.pod_of_instance(pod): str(why.get(pod, "not probed yet"))
                      for pod, ready in status.get("pods", {}).items()
                      if ready != "ready" and naming.pod_of_instance(pod) in own})
    return found


def announcements(state: LabState, plan: LabPlan) -> dict[str, list[str]]:
    """Service name -> nodes announcing its VIPs (every one of them: IPv4 and IPv6 in a
    dual-stack lab), from each node agent's status file."""
    result: dict[str, list[str]] = {s.name: [] for s in plan.services}
    for node in plan.nodes_with_role(Role.K8S_NODE):
        announced = set(agent_status(state, node.name).get("announced", []))
        for service in plan.services:
            if ({str(vip) for vip in service.vips} <= announced
                    and node.cluster in service.clusters):
                result[service.name].append(node.name)
    return result


def status_document(backend: Backend, state: LabState, plan: LabPlan) -> dict[str, Any]:
    from lab.backend.evidence import explain_sessions

    sessions = session_states(backend, state, plan)
    down = explain_sessions(backend, state, plan, [s for s in sessions if not s.established])
    answers = probe_all(backend, state, plan)
    alive, dead = daemons_alive(state)
    established = sum(s.established for s in sessions)
    ready = (established == len(sessions) and not dead
             and all(a.site is not None for a in answers))
    return {
        "lab": state.lab, "topology": state.topology, "phase": state.phase, "ready": ready,
        "impairment_driver": state.impairment_driver,
        "sessions": {"established": established, "total": len(sessions),
                     "down": [asdict(s) for s in down]},
        "processes": {"alive": alive, "total": len(state.processes), "dead": dead},
        "announcements": announcements(state, plan),
        "clients": [{"client": a.client, "service": a.service, "family": a.family,
                     "site": a.site, "node": a.node, "pod": a.pod, "rtt_ms": a.rtt_ms,
                     "request_ms": a.request_ms, "error": a.error} for a in answers],
    }


def planned_addresses(node: NodePlan) -> set[str]:
    """'IFNAME ADDRESS/LEN' for every address the plan gives a node's own interfaces."""
    found = {f"{i.name} {i.address}" for i in node.interfaces}
    found |= {f"{i.name} {i.address6}" for i in node.interfaces if i.address6 is not None}
    if node.loopback is not None:
        found.add(f"lo {node.loopback}/32")
    if node.loopback6 is not None:
        found.add(f"lo {node.loopback6}/128")
    for gateway in (node.pod_gateway, node.pod_gateway6):
        if gateway is not None:
            found.add(f"{naming.POD_BRIDGE} {gateway}")
    return found


def zebra_missing_addresses(backend: Backend, state: LabState,
                            plan: LabPlan) -> dict[str, list[str]]:
    """Router -> the planned addresses its zebra does not know (FRR 8.4's zebra can lose
    addresses added while it starts; lab.backend.netns.nsworker). A router whose zebra does not
    answer is left out: that is reported as a dead or silent daemon elsewhere."""

    def missing(node: NodePlan) -> tuple[str, list[str]]:
        try:
            data = daemon_json(backend.router_files(state, node.name), "zebra",
                               "show interface json")
        except BackendError:
            return node.name, []
        known = {f"{name} {address.get('address')}" for name, info in data.items()
                 if isinstance(info, dict) for address in info.get("ipAddresses", [])}
        return node.name, sorted(planned_addresses(node) - known)

    nodes = [n for n in plan.nodes if "zebra" in frr_daemons(n)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return {router: gaps for router, gaps in pool.map(missing, nodes) if gaps}


def frr_routers(plan: LabPlan) -> list[str]:
    return [n.name for n in plan.nodes if frr_daemons(n)]
