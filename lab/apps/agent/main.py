"""The node agent: readiness probes, the service proxy and VIP announcements for one node.

``python -m lab.apps.agent --spec FILE [--withdraw-on-exit]`` runs inside a Kubernetes node's
namespace and does, every readiness period, what kubelet, kube-proxy and kube-router (or MetalLB)
do together:
1. probe every pod's ``GET /ready`` concurrently (Kubernetes thresholds, see
   ``lab.apps.agent.readiness``);
2. keep the nftables service proxy equal to the ready endpoints (``nft -f -``, atomic);
3. announce each service VIP /32 while the node should attract its traffic and withdraw it
   otherwise (``lab.apps.agent.state``), through gobgpd or FRR (``lab.apps.agent.speaker``).
Every transition and command is an event on the lab's one clock (``lab.apps.agent.events``), and
``status.json`` beside the event log always shows the current state.

On start the agent reads what the speaker already announces and converges from there, so it
can be restarted at any time. On SIGTERM/SIGINT it exits *without* withdrawing (as a crashed
agent would: the BGP session stays up) unless ``--withdraw-on-exit`` asks for a graceful stop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from lab.apps.agent.drain import DRAIN_FILE, Drain, read_drain
from lab.apps.agent.events import EventLog, write_json_atomic
from lab.apps.agent.podlist import PODS_FILE, PodList, read_pod_list
from lab.apps.agent.probe import ProbeOutcome, ProbeTarget, probe_all
from lab.apps.agent.readiness import ProbeState, observe, transition
from lab.apps.agent.speaker import FrrSpeaker, GobgpSpeaker, Speaker
from lab.apps.agent.spec import AgentPod, AgentSpec, address_order, load_agent_spec
from lab.apps.agent.state import (
    DesiredState,
    desired_state,
    endpoint_addresses,
    service_rules,
    status_document,
)
from lab.apps.mainloop import MainLoop
from lab.apps.server.spec import SpecError
from lab.errors import CommandError
from lab.plan.model import IPAddress, IPNetwork, host_prefix
from lab.proc import run
from lab.render.serviceproxy import render_service_rules

RESYNC_S = 30.0  # re-read the speaker's state this often (it may have been restarted)
NFT_TIMEOUT_S = 10.0
DROP_HINT = ("gobgpd applies its global import policy to paths added with `gobgp global rib "
             "add`: default-import-policy must accept them")

Prober = Callable[[Sequence[ProbeTarget], float], dict[str, ProbeOutcome]]
NftApply = Callable[[str], None]
CONNTRACK = "/usr/sbin/conntrack"


def nft_applier(nft: str) -> NftApply:
    def apply(ruleset: str) -> None:
        run([nft, "-f", "-"], input_text=ruleset, timeout=NFT_TIMEOUT_S)

    return apply


def conntrack_flusher() -> Callable[[str], None]:
    def flush(address: str) -> None:
        # exit status 1 only means there was nothing to delete; conntrack's table is IPv4's
        # unless told otherwise
        family = ["-f", "ipv6"] if ":" in address else []
        run([CONNTRACK, "-D", *family, "-p", "udp", "--dst-nat", address],
            timeout=NFT_TIMEOUT_S, check=False)

    return flush


def make_speaker(spec: AgentSpec) -> Speaker:
    if spec.speaker == "frr":
        assert spec.vty_socket_dir is not None  # the spec loader requires it
        return FrrSpeaker(spec.vty_socket_dir, spec.asn)
    host, port = spec.gobgp_api
    return GobgpSpeaker(host, port, families=spec.families, asn=spec.asn)


def check_name(pod: str, service: str) -> str:
    return f"{pod}/{service}"


def pod_targets(pods: Iterable[AgentPod]) -> list[ProbeTarget]:
    """Per pod: its health port's GET /ready, and the check of each of its own servers."""
    targets = []
    for pod in pods:
        targets.append(ProbeTarget(pod.name, pod.address, pod.health_port))
        targets += [ProbeTarget(check_name(pod.name, c.service), pod.address, c.check.port,
                                c.check.path, c.check.kind, c.check.send.encode(),
                                c.check.name, c.check.rr_type, c.check.command)
                    for c in pod.checks]
    return targets


def pod_outcome(pod: AgentPod, outcomes: Mapping[str, ProbeOutcome]) -> ProbeOutcome:
    """The pod's readiness result: its health probe's, unless a check of its own servers
    failed (that one's, named by service)."""
    missing = ProbeOutcome(False, time.monotonic_ns(), "no result")
    health = outcomes.get(pod.name) or missing
    if not health.ok:
        return health
    for check in pod.checks:
        outcome = outcomes.get(check_name(pod.name, check.service)) or missing
        if not outcome.ok:
            return ProbeOutcome(False, outcome.done_ns, f"{check.service}: {outcome.detail}")
    return ProbeOutcome(True, max([health.done_ns] + [
        outcomes[check_name(pod.name, c.service)].done_ns for c in pod.checks]), health.detail)


class Agent:
    """The agent's state and one period's work (``step``); the loop lives in ``run_agent``."""

    def __init__(self, spec: AgentSpec, speaker: Speaker, log: EventLog, *,
                 prober: Prober = probe_all, apply_nft: NftApply | None = None,
                 flush_conntrack: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.speaker = speaker
        self.log = log
        self.prober = prober
        self.apply_nft = apply_nft or nft_applier(spec.nft)
        self.flush_conntrack = flush_conntrack or conntrack_flusher()
        self.pods = PodList(spec.pods)  # the spec's, or the pod list's after a rollout
        self.pods_file = spec.events.parent / PODS_FILE
        self.probes = {p.name: ProbeState() for p in spec.pods}
        self.last_probe: dict[str, str] = {}  # pod -> what its last probe said
        self.targets = pod_targets(spec.pods)
        self.announced: set[IPAddress] | None = None  # None: speaker state not known yet
        self.drain_file = spec.events.parent / DRAIN_FILE
        self.drain: Drain | None = None  # asked for by the drain file
        self.drain_applied: Drain | None = None  # on the announced VIPs (gshut, prepend)
        self.desired = desired_state(spec.services, spec.pods, self.ready,
                                     spec.announce_with)
        # with a control-plane delay: what the API server knows (published), and the changes
        # on their way to the proxy and the speaker (due instant, state), oldest first
        self.published = self.desired
        self.pending: list[tuple[int, DesiredState]] = []
        self.applied_ruleset: str | None = None
        self.proxied: set[str] = set()  # endpoint addresses in the applied ruleset
        self.synced_ns = 0
        self.held: set[IPAddress] = set()  # dropped by the speaker: retried at the next sync
        self._last_error: tuple[str, str] | None = None
        self._last_status: object = None

    @property
    def ready(self) -> dict[str, bool]:
        return {name: state.ready for name, state in self.probes.items()}

    def start(self) -> None:
        """Record the start with what the speaker already originates, then adopt that."""
        spec = self.spec
        t_ns = time.monotonic_ns()
        try:
            found: frozenset[IPNetwork] | None = self.speaker.announced()
        except CommandError as exc:
            found, failure = None, exc
        self.log.write("agent_start", t_ns=t_ns, pid=os.getpid(), speaker=self.speaker.name,
                       cluster=spec.cluster, pods=[p.name for p in spec.pods],
                       services=[s.name for s in spec.services],
                       period_ms=spec.readiness.period_ms,
                       found=None if found is None else sorted(str(p) for p in found))
        if found is None:
            self.error("sync", str(failure))
        else:
            self.adopt(found)
        # a drain that was on before a restart: its attributes are sent again at once
        self.read_drain()

    def step(self) -> None:
        """One readiness period: probe, update readiness, converge proxy and announcements."""
        self.read_pods()
        self.probe_round()
        self.read_drain()
        self.publish(desired_state(self.spec.services, self.pods.serving, self.ready,
                                   self.spec.announce_with))
        self.deliver_due()
        self.converge()

    def publish(self, wanted: DesiredState) -> None:
        """Readiness decided ``wanted`` (kubelet); the proxy and the speaker act on it now, or
        after the control-plane delay (EndpointSlice, watch), recorded when it starts."""
        delay_ns = self.spec.control_plane_delay_ms * 1_000_000
        if delay_ns == 0:
            self.desired = self.published = wanted
            return
        if wanted == self.published:
            return
        self.published = wanted
        t_ns = time.monotonic_ns()
        self.pending.append((t_ns + delay_ns, wanted))
        self.log.write("endpoints_changed", t_ns=t_ns, due_ns=t_ns + delay_ns,
                       delay_ms=self.spec.control_plane_delay_ms,
                       endpoints=endpoint_addresses(wanted.endpoints), vips=_texts(wanted.vips))

    def deliver_due(self) -> bool:
        """Take the changes whose delay has passed (the newest of them wins)."""
        now = time.monotonic_ns()
        delivered = False
        while self.pending and self.pending[0][0] <= now:
            self.desired = self.pending.pop(0)[1]
            delivered = True
        return delivered

    def next_due_s(self) -> float | None:
        """When the next pending change is due (time.monotonic seconds), or None."""
        return self.pending[0][0] / 1e9 if self.pending else None

    def deliver(self) -> None:
        """Between readiness periods: a change that became due reaches proxy and speaker."""
        if self.deliver_due():
            self.converge()

    def announced_vips(self) -> frozenset[IPAddress]:
        """The VIPs to announce: the desired ones, none while a drain withdraws them."""
        if self.drain is not None and not self.drain.keeps_announcing:
            return frozenset()
        return self.desired.vips

    def read_pods(self) -> None:
        """Take the pod list of a rollout: new pods start unready (probed from now on),
        terminating ones are probed no more and leave the endpoints."""
        try:
            listed = read_pod_list(self.pods_file)
        except SpecError as exc:
            self.error("pods", str(exc))
            return
        if listed is None or listed == self.pods:
            return
        before = {p.name for p in self.pods.serving}
        self.pods = listed
        serving = listed.serving
        self.probes = {p.name: self.probes.get(p.name, ProbeState()) for p in serving}
        self.last_probe = {n: why for n, why in self.last_probe.items() if n in self.probes}
        self.targets = pod_targets(serving)
        self.log.write("pod_list", t_ns=time.monotonic_ns(),
                       added=sorted({p.name for p in serving} - before),
                       terminating=sorted(listed.terminating),
                       pods={p.name: str(p.address) for p in listed.pods})

    def read_drain(self) -> None:
        drain = read_drain(self.drain_file)
        if drain == self.drain:
            return
        self.drain = drain
        self.log.write("drain" if drain is not None else "undrain", t_ns=time.monotonic_ns(),
                       drain=None if drain is None else drain.describe(),
                       announced=_texts(self.announced or ()))

    def probe_round(self) -> None:
        started = time.monotonic_ns()
        outcomes = self.prober(self.targets, self.spec.readiness.timeout_ms / 1000)
        for pod in self.pods.serving:
            outcome = pod_outcome(pod, outcomes)
            self.last_probe[pod.name] = outcome.detail
            before = self.probes[pod.name]
            after = observe(before, outcome.ok, self.spec.readiness)
            self.probes[pod.name] = after
            change = transition(before, after)
            if change is not None:
                self.log.write(change.value, t_ns=outcome.done_ns, pod=pod.name,
                               address=pod.address, local=pod.local, probe=outcome.detail,
                               probe_start_ns=started, successes=after.successes,
                               failures=after.failures)

    def converge(self) -> None:
        self.converge_proxy()
        if self.announced is None or time.monotonic_ns() - self.synced_ns > RESYNC_S * 1e9:
            self.sync()
        if self.announced is not None:
            self.converge_announcements()
        self.write_status()

    def converge_proxy(self) -> None:
        rules = service_rules(self.spec.services, self.desired.endpoints)
        ruleset = render_service_rules(self.spec.node, rules, self.spec.source,
                                       self.spec.source6)
        if ruleset == self.applied_ruleset:
            return
        t_ns = time.monotonic_ns()
        try:
            self.apply_nft(ruleset)
        except CommandError as exc:
            self.error("nft_apply", str(exc), t_ns)
            return
        self.applied_ruleset = ruleset
        endpoints = endpoint_addresses(self.desired.endpoints)
        self.log.write("nft_apply", t_ns=t_ns, done_ns=time.monotonic_ns(), endpoints=endpoints)
        current = {a for addresses in endpoints.values() for a in addresses}
        self.forget_connections(self.proxied - current)
        self.proxied = current

    def forget_connections(self, addresses: set[str]) -> None:
        """Drop the UDP conntrack entries NATed to endpoints that left, as kube-proxy does:
        otherwise a UDP flow keeps going to a dead pod until its entry times out. TCP
        connections stay with their pod, which serves them while it lives (a terminating
        pod drains them)."""
        for address in sorted(addresses):
            t_ns = time.monotonic_ns()
            try:
                self.flush_conntrack(address)
            except CommandError as exc:
                self.error("conntrack_flush", str(exc), t_ns)
                continue
            self.log.write("conntrack_flush", t_ns=t_ns, done_ns=time.monotonic_ns(),
                           address=address)

    def sync(self) -> None:
        """Learn what the speaker originates and take it as the agent's announced state."""
        found = self.read_speaker()
        if found is not None:
            self.adopt(found)

    def read_speaker(self) -> frozenset[IPNetwork] | None:
        try:
            return self.speaker.announced()
        except CommandError as exc:
            self.error("sync", str(exc))
            self.announced = None
            return None

    def adopt(self, found: frozenset[IPNetwork]) -> None:
        """Only the spec's VIPs are the agent's to manage; originate the pod CIDRs if needed."""
        self.synced_ns = time.monotonic_ns()
        self._last_error = None
        self.held.clear()
        self.announced = {v for v in self.spec.vips if host_prefix(v) in found}
        if self.speaker.originates_pod_cidr:
            missing = [cidr for cidr in self.spec.pod_cidrs if cidr not in found]
            if missing:
                self.originate_pod_cidrs(missing)

    def originate_pod_cidrs(self, cidrs: Sequence[IPNetwork]) -> None:
        if not all(self.originate(cidr, "pod_cidr") for cidr in cidrs):
            self.synced_ns = 0  # try again next period
            return
        try:
            found = self.speaker.announced()
        except CommandError:
            return  # checked again at the next sync
        dropped = [str(cidr) for cidr in cidrs if cidr not in found]
        if dropped:
            self.error("verify", "the speaker dropped the pod CIDR", missing=dropped,
                       unexpected=[], hint=DROP_HINT)

    def converge_announcements(self) -> None:
        assert self.announced is not None
        self.converge_drain_attributes()
        wanted = self.announced_vips()
        changes = [(v, True) for v in sorted(wanted - self.announced - self.held,
                                             key=address_order)]
        changes += [(v, False) for v in sorted(self.announced - wanted, key=address_order)]
        for vip, add in changes:
            if add and self.originate(host_prefix(vip), "vip"):
                self.announced.add(vip)
            elif not add and self.stop_originating(vip):
                self.announced.discard(vip)
        if changes:
            self.verify()

    def converge_drain_attributes(self) -> None:
        """Send the announced VIPs again when the drain's attributes change (GSHUT or
        prepend on, or off again): a replacement, never a withdrawal."""
        assert self.announced is not None
        wanted = self.drain if self.drain is not None and self.drain.keeps_announcing else None
        if wanted == self.drain_applied:
            return
        self.drain_applied = wanted
        for vip in sorted(self.announced, key=address_order):
            self.originate(host_prefix(vip), "vip")

    def originate(self, prefix: IPNetwork, kind: str) -> bool:
        services = self._services_of(prefix)
        drain = self.drain_applied if kind == "vip" else None
        t_ns = time.monotonic_ns()
        try:
            self.speaker.announce(prefix, drain)
        except CommandError as exc:
            self.error("announce", str(exc), t_ns, prefix=prefix)
            return False
        done_ns = time.monotonic_ns()
        if kind == "vip":
            self.log.write("announce", t_ns=t_ns, done_ns=done_ns, prefix=prefix,
                           vip=prefix.network_address, kind=kind, services=services,
                           **({"drain": drain.describe()} if drain is not None else {}))
        else:
            self.log.write("announce", t_ns=t_ns, done_ns=done_ns, prefix=prefix, kind=kind)
        return True

    def stop_originating(self, vip: IPAddress) -> bool:
        prefix = host_prefix(vip)
        t_ns = time.monotonic_ns()
        try:
            self.speaker.withdraw(prefix)
        except CommandError as exc:
            self.error("withdraw", str(exc), t_ns, prefix=prefix)
            return False
        self.log.write("withdraw", t_ns=t_ns, done_ns=time.monotonic_ns(), prefix=prefix,
                       vip=vip, kind="vip", services=self._services_of(prefix))
        return True

    def verify(self) -> None:
        """Re-read the speaker after changes: an accepted command is not always a route
        (gobgpd silently drops local paths when its global import policy rejects them)."""
        expected = set(self.announced or ())
        found = self.read_speaker()
        if found is None:
            return
        self.announced = {v for v in self.spec.vips if host_prefix(v) in found}
        if self.announced != expected:
            self.held = expected - self.announced
            self.error("verify", "the speaker's routes differ from what the agent asked for",
                       missing=_texts(expected - self.announced),
                       unexpected=_texts(self.announced - expected),
                       hint=DROP_HINT)

    def _services_of(self, prefix: IPNetwork) -> list[str]:
        return [s.name for s in self.spec.services
                if any(host_prefix(vip) == prefix for vip in s.vips)]

    def error(self, action: str, message: str, t_ns: int | None = None,
              **details: object) -> None:
        """Record a failure; repeats of the same failure are recorded once."""
        key = (action, message)
        if key == self._last_error:
            return
        self._last_error = key
        self.log.write("error", t_ns=t_ns, action=action, message=message, **details)
        print(f"lab.apps.agent.main {self.spec.node}: {action} failed: {message}", file=sys.stderr,
              flush=True)

    def write_status(self) -> None:
        unready_why = {pod: why for pod, why in self.last_probe.items()
                       if not self.probes[pod].ready}
        drain = None if self.drain is None else self.drain.method
        key = (self.ready, _texts(self.announced or ()),
               endpoint_addresses(self.desired.endpoints), unready_why, drain)
        if key == self._last_status:
            return
        self._last_status = key
        document = status_document(self.spec.node, time.monotonic_ns(), self.ready,
                                   self.announced or (), self.desired.endpoints, unready_why,
                                   drain)
        write_json_atomic(self.spec.status_file, document)

    def stop(self, signame: str, withdraw: bool) -> None:
        withdrawn: list[IPAddress] = []
        if withdraw and self.announced:
            for vip in sorted(self.announced, key=address_order):
                if self.stop_originating(vip):
                    withdrawn.append(vip)
            self.announced -= set(withdrawn)
            self.write_status()
        self.log.write("agent_stop", signal=signame, withdrawn=withdrawn,
                       announced=sorted(self.announced or (), key=address_order))


def _texts(addresses: Iterable[IPAddress]) -> list[str]:
    return [str(a) for a in sorted(addresses, key=address_order)]


def run_agent(agent: Agent, loop: MainLoop, withdraw_on_exit: bool) -> None:
    """Probe at once, then every period (on a fixed grid; missed periods are skipped), and in
    between whenever a delayed endpoint change falls due, until the loop is stopped."""
    period_s = agent.spec.readiness.period_ms / 1000
    agent.start()
    next_s = time.monotonic()
    while not loop.stopping:
        if time.monotonic() >= next_s:
            agent.step()
            next_s += period_s
            now = time.monotonic()
            if next_s < now:
                next_s = now
        else:  # woken for a change whose control-plane delay has passed
            agent.deliver()
        due = agent.next_due_s()
        wake = next_s if due is None else min(next_s, due)
        loop.wait(max(0.0, wake - time.monotonic()))
    agent.stop(loop.stop_reason or "", withdraw_on_exit)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.apps.agent",
                                     description="readiness, service proxy and VIP "
                                                 "announcements for one Kubernetes node")
    parser.add_argument("--spec", required=True, type=Path, help="the node's agent spec (JSON)")
    parser.add_argument("--withdraw-on-exit", action="store_true",
                        help="withdraw announced VIPs on SIGTERM/SIGINT (graceful stop); by "
                             "default they stay announced, as after a crash")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        spec = load_agent_spec(args.spec)
        log = EventLog(spec.events, spec.node)
    except SpecError as exc:
        print(f"lab.apps.agent.main: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lab.apps.agent.main: cannot open the event log: {exc}", file=sys.stderr)
        return 1
    loop = MainLoop()
    agent = Agent(spec, make_speaker(spec), log)
    print(f"lab.apps.agent.main {spec.node}: {spec.speaker} speaker, {len(spec.pods)} pods, "
          f"{len(spec.services)} services, period {spec.readiness.period_ms} ms",
          file=sys.stderr, flush=True)
    try:
        with loop.stopped_by_signals():
            run_agent(agent, loop, args.withdraw_on_exit)
    finally:
        log.close()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
