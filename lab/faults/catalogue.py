"""Every fault of the catalogue with its inverse. ``apply_fault`` returns what it did (the
details recorded in events.jsonl and needed by ``undo_fault``)."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.apps.agent.drain import DRAIN_FILE, GSHUT_COMMUNITY, Drain, write_drain
from lab.backend import workloads
from lab.backend.inspect import agent_status
from lab.backend.names import node_dir
from lab.errors import BackendError
from lab.faults import primitives as p
from lab.faults.primitives import LabHandle
from lab.faults.rollout import Rollout
from lab.impair import Impairment
from lab.plan.model import LinkKind, LinkPlan, NodePlan, Role
from lab.render.frrpolicy import TO_WAN_VIPS_SEQ, family_entry
from lab.scenario.load import find_link, rollout_of
from lab.scenario.model import Step

FRR_SPEAKER_KINDS = ("bgpd",)
STOP_GRACE_S = 1.0
DRAIN_CONFIRM_S = 10.0  # beyond the readiness period: how long the agent may take to drain


@dataclass
class FaultContext:
    handle: LabHandle
    fault: str
    target: str  # resolved: node, pod, link id, cluster or site name
    step: Step


Details = dict[str, Any]
Applier = Callable[[FaultContext], Details]
Undoer = Callable[[FaultContext, Details], Details]


def _link(ctx: FaultContext) -> LinkPlan:
    link = find_link(ctx.handle.plan, ctx.target)
    if link is None:
        raise BackendError(f"no link {ctx.target!r}")
    return link


def _ends(link: LinkPlan) -> list[tuple[str, str]]:
    return [(link.a.node, link.a.ifname), (link.b.node, link.b.ifname)]


# ---------------------------------------------------------------- links

def link_down(ctx: FaultContext) -> Details:
    ends = _ends(_link(ctx))
    for node, ifname in ends:
        p.set_link_state(ctx.handle, node, ifname, up=False)
    return {"interfaces": [f"{n}:{i}" for n, i in ends]}


def link_up(ctx: FaultContext, _: Details) -> Details:
    ends = _ends(_link(ctx))
    for node, ifname in ends:
        p.set_link_state(ctx.handle, node, ifname, up=True)
    return {"interfaces": [f"{n}:{i}" for n, i in ends]}


def _blackhole_links(ctx: FaultContext, links: list[LinkPlan], on: bool) -> Details:
    touched = []
    for link in links:
        for node, ifname in _ends(link):
            p.set_blackhole(ctx.handle, node, ifname, on)
            touched.append(f"{node}:{ifname}")
    return {"interfaces": touched}


def link_blackhole(ctx: FaultContext) -> Details:
    return _blackhole_links(ctx, [_link(ctx)], True)


def link_unblackhole(ctx: FaultContext, _: Details) -> Details:
    return _blackhole_links(ctx, [_link(ctx)], False)


def link_impair(ctx: FaultContext) -> Details:
    link = _link(ctx)
    driver = ctx.handle.driver()
    before = driver.get(link.id)
    current = before.a_to_b.impairment
    step = ctx.step
    new = Impairment(
        delay_ms=step.delay if step.delay is not None else current.delay_ms,
        jitter_ms=step.jitter if step.jitter is not None else current.jitter_ms,
        loss_pct=step.loss if step.loss is not None else current.loss_pct,
        rate_bps=step.rate if step.rate is not None else current.rate_bps)
    driver.set(link.id, "both", new)
    return {"link": link.id, "before": current.to_dict(), "after": new.to_dict()}


def link_restore(ctx: FaultContext, applied: Details) -> Details:
    link = _link(ctx)
    before = Impairment.from_dict(applied["before"])
    ctx.handle.driver().set(link.id, "both", before)
    return {"link": link.id, "restored": before.to_dict()}


# ---------------------------------------------------------------- nodes and daemons

def _node(ctx: FaultContext) -> NodePlan:
    return ctx.handle.plan.node(ctx.target)


def _node_and_pods(ctx: FaultContext) -> list[str]:
    node = _node(ctx)
    return [node.name, *(pod.name for pod in node.pods)]


def node_crash(ctx: FaultContext) -> Details:
    """Silent: every process of the node (and its pods) frozen, every interface dropping."""
    node = _node(ctx)
    frozen = p.freeze(ctx.handle, _node_and_pods(ctx))
    for interface in node.interfaces:
        p.set_blackhole(ctx.handle, node.name, interface.name, True)
    return {"frozen_pids": frozen, "interfaces": [i.name for i in node.interfaces]}


def node_recover(ctx: FaultContext, _: Details) -> Details:
    node = _node(ctx)
    for interface in node.interfaces:
        p.set_blackhole(ctx.handle, node.name, interface.name, False)
    thawed = p.thaw(ctx.handle, _node_and_pods(ctx))
    return {"thawed_pids": thawed}


def node_power_off(ctx: FaultContext) -> Details:
    """A box that loses power: every link loses carrier at once (its peers see it) and its
    processes stop where they are (frozen, so that the undo is a reboot that keeps them)."""
    node = _node(ctx)
    p.set_links_state(ctx.handle, node.name, [i.name for i in node.interfaces], up=False)
    frozen = p.freeze(ctx.handle, _node_and_pods(ctx))
    return {"frozen_pids": frozen, "interfaces": [i.name for i in node.interfaces]}


def node_power_on(ctx: FaultContext, _: Details) -> Details:
    node = _node(ctx)
    thawed = p.thaw(ctx.handle, _node_and_pods(ctx))
    p.set_links_state(ctx.handle, node.name, [i.name for i in node.interfaces], up=True)
    return {"thawed_pids": thawed}


def node_stop(ctx: FaultContext) -> Details:
    """Graceful: the BGP speaker and agent stop (peers get a NOTIFICATION), then the links go
    down, as in an orderly shutdown."""
    node = _node(ctx)
    speakers = ctx.handle.processes(node.name, ("bgpd", "gobgpd", "agent"))
    p.signal_processes(ctx.handle, speakers, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and ctx.handle.processes(node.name,
                                                               ("bgpd", "gobgpd")):
        time.sleep(0.02)
    for interface in node.interfaces:
        p.set_link_state(ctx.handle, node.name, interface.name, up=False)
    return {"stopped_pids": [r.pid for r in speakers],
            "interfaces": [i.name for i in node.interfaces]}


def node_start(ctx: FaultContext, _: Details) -> Details:
    node = _node(ctx)
    for interface in node.interfaces:
        p.set_link_state(ctx.handle, node.name, interface.name, up=True)
    started = []
    if node.speaker == "gobgp":
        started.append(p.restart_gobgpd(ctx.handle, node.name, None).pid)
    elif "bgpd" in _frr_daemons(node):
        started.append(p.restart_frr_daemon(ctx.handle, node.name, "bgpd", None).pid)
    if node.role == Role.K8S_NODE:
        started.append(p.restart_agent(ctx.handle, node.name, None).pid)
    return {"started_pids": started}


def _speaker_kind(node: NodePlan) -> str:
    return "gobgpd" if node.speaker == "gobgp" else "bgpd"


def _stop(ctx: FaultContext, node: str, kinds: tuple[str, ...]) -> list[int]:
    """SIGTERM the node's processes of these kinds, wait (a while) until they are gone, and
    SIGKILL those still there (a pod's server drains its open connections until killed)."""
    records = ctx.handle.processes(node, kinds)
    stopped = p.signal_processes(ctx.handle, records, signal.SIGTERM)
    if not _gone(ctx, node, kinds):
        p.signal_processes(ctx.handle, ctx.handle.processes(node, kinds), signal.SIGKILL)
        _gone(ctx, node, kinds)
    return stopped


def _gone(ctx: FaultContext, node: str, kinds: tuple[str, ...]) -> bool:
    """Whether the node's processes of these kinds are gone within STOP_GRACE_S."""
    deadline = time.monotonic() + STOP_GRACE_S
    while ctx.handle.processes(node, kinds):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _start_speaker(ctx: FaultContext, node: NodePlan, restarting: bool,
                   announced: Sequence[str] = ()) -> Details:
    """The node's speaker and then its agent (which announces again at once). A gobgpd
    restarting gracefully starts with its sessions held down and opens them once its agent
    has announced ``announced`` again (``open_gobgp_sessions``): gobgpd sends its End-of-RIB
    as soon as its leafs have sent theirs, and one sent before the announcements had the
    leafs drop the stale routes (now and then, by the connect-retry phase: in one run the VIP
    went over the spine for 0.28 s)."""
    started_ns = time.monotonic_ns()
    if node.speaker == "gobgp":
        speaker = p.restart_gobgpd(ctx.handle, node.name, None, restarting)
    else:
        speaker = p.restart_frr_daemon(ctx.handle, node.name, "bgpd", None)
    details: Details = {"started_pids": [speaker.pid,
                                         p.restart_agent(ctx.handle, node.name, None).pid]}
    if node.speaker == "gobgp" and restarting:
        waited = p.open_gobgp_sessions(ctx.handle, node.name, announced, started_ns)
        details["sessions_opened_after_ms"] = round(waited * 1000, 1)
    return details


def _k8s_node(ctx: FaultContext) -> NodePlan:
    node = _node(ctx)
    if node.role != Role.K8S_NODE or node.cluster is None:
        raise BackendError(f"{node.name} is not a cluster node")
    return node


def _graceful_restart(ctx: FaultContext, node: NodePlan) -> bool:
    return any(s.timers.graceful_restart is not None and s.kind == LinkKind.NODE
               for s in ctx.handle.plan.sessions_of(node.name))


def speaker_stop(ctx: FaultContext) -> Details:
    """A speaker upgrade (the DaemonSet's pod replaced): the BGP daemon and the agent get
    SIGTERM and exit. With graceful restart the leafs keep the node's routes as stale and
    forward on; without, they drop them at once."""
    node = _k8s_node(ctx)
    graceful = _graceful_restart(ctx, node)
    # what a gracefully restarting gobgpd must originate again before its sessions open
    announced = p.announced_vips(ctx.handle, node.name) \
        if node.speaker == "gobgp" and graceful else []
    stopped = _stop(ctx, node.name, (_speaker_kind(node), "agent"))
    return {"stopped_pids": stopped, "speaker": _speaker_kind(node),
            "graceful_restart": graceful, "announced": announced}


def speaker_start(ctx: FaultContext, stopped: Details) -> Details:
    """The speaker and its agent started again (``_start_speaker``)."""
    node = _k8s_node(ctx)
    restarting = _graceful_restart(ctx, node)
    return {**_start_speaker(ctx, node, restarting, stopped.get("announced", [])),
            "restarting": restarting}


def _drain_of(ctx: FaultContext, node: NodePlan) -> tuple[Drain, float]:
    """The step's method and prepend count over the cluster's drain policy; its wait."""
    assert node.cluster is not None
    policy = ctx.handle.plan.cluster(node.cluster).drain
    method = ctx.step.method or policy.method
    return Drain(method, ctx.step.prepend or policy.prepend), policy.wait_ms / 1000


def _drain_file(ctx: FaultContext, node: str) -> Path:
    return node_dir(ctx.handle.state.directory, node) / DRAIN_FILE


def _wait_for_agent_drain(ctx: FaultContext, node: str, method: str) -> int:
    """The instant the node's agent reports the drain in force (status.json)."""
    deadline = time.monotonic() + DRAIN_CONFIRM_S
    while time.monotonic() < deadline:
        if agent_status(ctx.handle.state, node).get("drain") == method:
            return time.monotonic_ns()
        time.sleep(0.02)
    raise BackendError(f"the agent of {node} did not drain it within {DRAIN_CONFIRM_S:.0f} s")


def node_drain(ctx: FaultContext) -> Details:
    """``kubectl drain`` of one node, done the graceful way: the agent takes the node out of
    the fabric first (withdraw, GSHUT or prepend, the cluster's drain policy or the step's
    ``method``), the fabric gets the policy's ``wait`` to move the flows, then the pods stop
    (SIGTERM), then the speaker and the agent."""
    node = _k8s_node(ctx)
    drain, wait_s = _drain_of(ctx, node)
    write_drain(_drain_file(ctx, node.name), drain)
    drained_ns = _wait_for_agent_drain(ctx, node.name, drain.method)
    time.sleep(wait_s)
    pods = [pod.name for pod in node.pods]
    evicted = [pid for pod in pods
               for pid in _stop(ctx, pod, ("server", workloads.KIND))]
    evicted_ns = time.monotonic_ns()
    stopped = _stop(ctx, node.name, (_speaker_kind(node), "agent"))
    return {**drain.describe(), "drained_ns": drained_ns, "evicted_ns": evicted_ns,
            "speaker_stopped_ns": time.monotonic_ns(), "pods": pods, "evicted_pids": evicted,
            "stopped_pids": evicted + stopped}


def node_undrain(ctx: FaultContext, _: Details) -> Details:
    """Uncordon: the pods start again, then the speaker and the agent, which announces the
    VIPs as the pods get ready."""
    node = _k8s_node(ctx)
    started = [pid for pod in node.pods for pid in _start_pod(ctx, pod.name)]
    _drain_file(ctx, node.name).unlink(missing_ok=True)
    started += _start_speaker(ctx, node, restarting=False)["started_pids"]
    return {"started_pids": started}


def _frr_daemons(node: NodePlan) -> list[str]:
    from lab.render.configs import frr_daemons

    return frr_daemons(node)


def _daemon(ctx: FaultContext) -> str:
    node = _node(ctx)
    daemon = ctx.step.daemon or ("gobgpd" if node.speaker == "gobgp" else "bgpd")
    if daemon in ("gobgpd", "agent"):
        if daemon == "gobgpd" and node.speaker != "gobgp":
            raise BackendError(f"{node.name} runs no gobgpd")
        if daemon == "agent" and node.role != Role.K8S_NODE:
            raise BackendError(f"{node.name} runs no agent")
    elif daemon not in _frr_daemons(node):
        raise BackendError(f"{node.name} runs no {daemon}")
    return daemon


def daemon_kill(ctx: FaultContext) -> Details:
    daemon = _daemon(ctx)
    records = ctx.handle.processes(ctx.target, (daemon,))
    killed = p.signal_processes(ctx.handle, records, signal.SIGKILL)
    return {"daemon": daemon, "killed_pids": killed}


def daemon_start(ctx: FaultContext, _: Details) -> Details:
    daemon = _daemon(ctx)
    node = ctx.target
    if daemon == "gobgpd":
        record = p.restart_gobgpd(ctx.handle, node, None)
        # the agent re-announces at once when it restarts; otherwise it would wait for its
        # periodic re-read of the speaker
        agents = ctx.handle.processes(node, ("agent",))
        p.signal_processes(ctx.handle, agents, signal.SIGKILL)
        p.restart_agent(ctx.handle, node, agents[0] if agents else None)
    elif daemon == "agent":
        record = p.restart_agent(ctx.handle, node, None)
    else:
        record = p.restart_frr_daemon(ctx.handle, node, daemon, None)
    return {"daemon": daemon, "started_pid": record.pid}


def daemon_restart(ctx: FaultContext) -> Details:
    killed = daemon_kill(ctx)
    return {**killed, **daemon_start(ctx, killed)}


# ---------------------------------------------------------------- BGP sessions and sites

def _frr_sides(ctx: FaultContext, links: list[LinkPlan]) -> list[tuple[str, str]]:
    """(FRR router, peer address) of each session on the links: one per family a link
    carries, or the one of the step's ``family``."""
    ids = {link.id for link in links}
    sides = []
    for session in ctx.handle.plan.sessions:
        if session.link_id not in ids or ctx.step.family not in (None, session.family):
            continue
        a = ctx.handle.plan.node(session.a)
        if a.role != Role.K8S_NODE or a.speaker == "frr":
            sides.append((session.a, str(session.b_address)))
        else:
            sides.append((session.b, str(session.a_address)))
    if not sides:
        raise BackendError(f"{ctx.target}: no {ctx.step.family or ''} BGP session to shut")
    return sides


def _neighbors(ctx: FaultContext, links: list[LinkPlan], shutdown: bool) -> Details:
    """Shut (or re-enable) the sessions with one vtysh call per router, so that the sessions
    of a router go down together (a vtysh call takes a few hundred milliseconds here)."""
    sides = _frr_sides(ctx, links)
    peers: dict[str, list[str]] = defaultdict(list)
    for router, peer in sides:
        peers[router].append(peer)
    for router, addresses in peers.items():
        asn = ctx.handle.plan.node(router).asn
        p.vtysh_configure(ctx.handle, router, f"router bgp {asn}",
                          *(f"{'' if shutdown else 'no '}neighbor {peer} shutdown"
                            for peer in addresses))
    return {"sessions": [f"{router}:{peer}" for router, peer in sides]}


def session_shutdown(ctx: FaultContext) -> Details:
    return _neighbors(ctx, [_link(ctx)], shutdown=True)


def session_enable(ctx: FaultContext, _: Details) -> Details:
    return _neighbors(ctx, [_link(ctx)], shutdown=False)


def _shut_uplinks(ctx: FaultContext) -> list[LinkPlan]:
    """The site's uplinks (to the step's transit only, when it names one)."""
    return [link for link in _uplinks(ctx)
            if ctx.step.transit in (None, link.a.node, link.b.node)]


def uplink_shutdown(ctx: FaultContext) -> Details:
    """An operator shuts the site's BGP sessions to a transit (of one family, or all): the
    links stay up and carry what the remaining sessions route."""
    return _neighbors(ctx, _shut_uplinks(ctx), shutdown=True)


def uplink_enable(ctx: FaultContext, _: Details) -> Details:
    return _neighbors(ctx, _shut_uplinks(ctx), shutdown=False)


def _uplinks(ctx: FaultContext) -> list[LinkPlan]:
    site = ctx.handle.plan.site(ctx.target)
    return [link for link in ctx.handle.plan.links if link.kind == LinkKind.UPLINK
            and (link.a.node in site.uplinkers or link.b.node in site.uplinkers)]


def site_isolate(ctx: FaultContext) -> Details:
    return _blackhole_links(ctx, _uplinks(ctx), True)


def site_reconnect(ctx: FaultContext, _: Details) -> Details:
    return _blackhole_links(ctx, _uplinks(ctx), False)


def _drain_line(ctx: FaultContext, router: str) -> str:
    if (ctx.step.method or "prepend") == "gshut":
        return f"set community {GSHUT_COMMUNITY} additive"
    asn = ctx.handle.plan.node(router).asn
    return "set as-path prepend " + " ".join([str(asn)] * (ctx.step.prepend or 3))


def _drained_families(ctx: FaultContext) -> list[tuple[str, int]]:
    """(family, TO-WAN entry that announces the site's VIPs of it): the step's family, or
    every family of the lab."""
    families = ctx.handle.plan.families
    return [(family, family_entry(TO_WAN_VIPS_SEQ, family, families)) for family in families
            if ctx.step.family in (None, family)]


def site_drain(ctx: FaultContext) -> Details:
    """Graceful: make the site's VIP routes less preferred in the WAN before anything fails."""
    routers = list(ctx.handle.plan.site(ctx.target).uplinkers)
    drained = _drained_families(ctx)
    for router in routers:
        _set_drain(ctx, router, drained, _drain_line(ctx, router))
    return {"routers": routers, "method": ctx.step.method or "prepend",
            "families": [family for family, _ in drained]}


def site_undrain(ctx: FaultContext, _: Details) -> Details:
    routers = list(ctx.handle.plan.site(ctx.target).uplinkers)
    undo = ("no set community" if (ctx.step.method or "prepend") == "gshut"
            else "no set as-path prepend")
    for router in routers:
        _set_drain(ctx, router, _drained_families(ctx), undo)
    return {"routers": routers}


def _set_drain(ctx: FaultContext, router: str, drained: list[tuple[str, int]],
               line: str) -> None:
    """One line in each drained family's TO-WAN entry, then the routes sent again: one
    vtysh call for the configuration and one for the families' soft clears."""
    p.vtysh_configure(ctx.handle, router, *(part for _, seq in drained
                                            for part in (f"route-map TO-WAN permit {seq}",
                                                         line)))
    p.vtysh_exec(ctx.handle, router, *(f"clear bgp {family} unicast * soft out"
                                       for family, _ in drained))


# ---------------------------------------------------------------- pods and services

def pod_kill(ctx: FaultContext) -> Details:
    killed = p.signal_processes(
        ctx.handle, ctx.handle.processes(ctx.target, ("server", workloads.KIND)),
        signal.SIGKILL)
    return {"killed_pids": killed}


def _start_pod(ctx: FaultContext, pod: str) -> list[int]:
    """The pod's server, then its own servers (a service's ``workload:``): their PIDs."""
    started = [p.restart_server(ctx.handle, pod, None).pid]
    return started + [r.pid for r in p.restart_workloads(ctx.handle, pod)]


def pod_restore(ctx: FaultContext, _: Details) -> Details:
    started = _start_pod(ctx, ctx.target)
    return {"started_pid": started[0], "started_pids": started}


def pod_unready(ctx: FaultContext) -> Details:
    p.unready_flag(ctx.handle, ctx.target).touch()
    return {"pods": [ctx.target]}


def pod_ready(ctx: FaultContext, _: Details) -> Details:
    p.unready_flag(ctx.handle, ctx.target).unlink(missing_ok=True)
    return {"pods": [ctx.target]}


def _cluster_pods(ctx: FaultContext) -> list[str]:
    cluster = ctx.handle.plan.cluster(ctx.target)
    return [pod.name for node in cluster.nodes for pod in ctx.handle.plan.node(node).pods]


def service_withdraw(ctx: FaultContext) -> Details:
    pods = _cluster_pods(ctx)
    for pod in pods:
        p.unready_flag(ctx.handle, pod).touch()
    return {"pods": pods}


def service_restore(ctx: FaultContext, _: Details) -> Details:
    pods = _cluster_pods(ctx)
    for pod in pods:
        p.unready_flag(ctx.handle, pod).unlink(missing_ok=True)
    return {"pods": pods}


def rolling_update(ctx: FaultContext) -> Details:
    """A Deployment's rolling update of the cluster's pods (lab.faults.rollout): new pods at
    new addresses, ready before old ones go, old ones drained for their grace period. Its
    undo is nothing: the new revision stays."""
    cluster = ctx.handle.plan.cluster(ctx.target)
    return Rollout(ctx.handle, ctx.target, rollout_of(cluster.rollout, ctx.step)).run()


FAULTS: dict[str, tuple[Applier, Undoer]] = {
    "link-down": (link_down, link_up),
    "link-flap": (link_down, link_up),
    "link-blackhole": (link_blackhole, link_unblackhole),
    "transit-partition": (link_blackhole, link_unblackhole),
    "link-impair": (link_impair, link_restore),
    "wan-latency": (link_impair, link_restore),
    "node-crash": (node_crash, node_recover),
    "node-stop": (node_stop, node_start),
    "node-power-off": (node_power_off, node_power_on),
    "daemon-kill": (daemon_kill, daemon_start),
    "daemon-restart": (daemon_restart, lambda _c, _d: {}),
    "bgp-session-shutdown": (session_shutdown, session_enable),
    "pod-kill": (pod_kill, pod_restore),
    "pod-unready": (pod_unready, pod_ready),
    "service-withdraw": (service_withdraw, service_restore),
    "site-isolate": (site_isolate, site_reconnect),
    "site-drain": (site_drain, site_undrain),
    "node-drain": (node_drain, node_undrain),
    "speaker-restart": (speaker_stop, speaker_start),
    "uplink-shutdown": (uplink_shutdown, uplink_enable),
    "rolling-update": (rolling_update, lambda _c, _d: {}),
}


def apply_fault(ctx: FaultContext) -> Details:
    return FAULTS[ctx.fault][0](ctx)


def undo_fault(ctx: FaultContext, applied: Details) -> Details:
    return FAULTS[ctx.fault][1](ctx, applied)
