"""Waiting until a lab is ready: every BGP session Established, BFD up on the sessions that run
it, every node announcing, BGP routing settled, and then every client answered on every
service VIP (so the answers say where clients land for good). Polls observable state (FRR
logs, the daemons' own answers, real requests), never sleeps blindly. BFD is switched on per
session once it is Established (lab.backend.bfdstart explains why)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.backend import bfdstart, workloads
from lab.backend.daemons import bgp_summaries
from lab.backend.evidence import explain_sessions
from lab.backend.inspect import (
    ClientAnswer,
    SessionState,
    announcements,
    bfd_states,
    client_targets,
    daemons_alive,
    frr_end,
    probe,
    session_states,
    unready_pods,
    zebra_missing_addresses,
)
from lab.backend.state import LabState, save_state
from lab.errors import BackendError
from lab.measure.recorder.frrlog import LogStates
from lab.plan.model import LabPlan, SessionPlan
from lab.render.configs import frr_daemons

if TYPE_CHECKING:
    from lab.backend.protocol import Backend

POLL_INTERVAL_S = 0.1  # a round reads log files and status files: cheap
AUTHORITY_INTERVAL_S = 5.0  # how often the daemons are asked about sessions the logs show down
PROBE_TIMEOUT_S = 0.5  # readiness probes; a round of them lasts at most this long
# FRR's default update-group coalesce time (1 s, plus 50 ms per peer); at start the routers
# run a shorter one (lab.backend.bfdstart)
COALESCE_S = 1.0
# bgpd's BFD registration reaches bfdd (through zebra) within milliseconds; the static peers
# of the boot configuration go only this long after the last one was attached
REGISTERED_S = 0.3
MIN_QUIET_S = 0.5  # routing counts as settled after this long without a table change
# clients are first asked after this long without a table change: an answer taken then
# counts once routing has settled if the tables did not change since, and the delays'
# calibration (which compares each answer with the answering node's own round trip) starts
EARLY_QUIET_S = 0.2


@dataclass
class ReadyReport:
    ready: bool
    elapsed_s: float
    sessions_total: int
    sessions_down: list[SessionState] = field(default_factory=list)
    answers: list[ClientAnswer] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    not_announcing: list[str] = field(default_factory=list)
    bfd_down: list[SessionState] = field(default_factory=list)
    routing_settling: bool = False
    zebra_gaps: dict[str, list[str]] = field(default_factory=dict)
    workloads: list[str] = field(default_factory=list)  # pods' own servers in trouble
    evidence: Path | None = None  # where the failed lab's files and views were kept

    @property
    def clients_failing(self) -> list[ClientAnswer]:
        return [a for a in self.answers if a.site is None]

    def explain(self) -> str:
        lines = []
        others = [d for d in self.dead if not (self.workloads and d.startswith("workload "))]
        if others:
            lines.append("processes that died: " + ", ".join(others))
        lines += self.workloads
        if self.sessions_down:
            lines.append(f"{len(self.sessions_down)} of {self.sessions_total} BGP sessions not "
                         "Established:")
            lines += [f"  {s.a}-{s.b}: {s.why or s.state}" for s in self.sessions_down[:12]]
        for router, gaps in sorted(self.zebra_gaps.items()):
            lines.append(f"zebra on {router} lacks addresses its interfaces have: "
                         + ", ".join(gaps))
        if self.bfd_down:
            lines.append(f"{len(self.bfd_down)} BFD sessions not up: " + ", ".join(
                f"{s.a}-{s.b} ({s.state})" for s in self.bfd_down[:12]))
        if self.routing_settling:
            lines.append("BGP routing has not settled: routers' tables keep changing")
        if self.not_announcing:
            lines.append("nodes not announcing their VIPs yet: "
                         + ", ".join(self.not_announcing[:12]))
        if self.sessions_down == [] and not self.answers:
            lines.append("clients were not checked yet")
        failing = self.clients_failing
        if failing:
            lines.append("clients without an answer: " + ", ".join(
                f"{a.client} -> {a.target} ({a.error})" for a in failing[:12]))
        if self.evidence is not None:
            lines.append(f"evidence kept in {self.evidence}")
        return "\n".join(lines)


def missing_announcements(state: LabState, plan: LabPlan) -> list[str]:
    """'node: service' for every node that should announce a service VIP and does not (at
    start every pod is healthy, so every node of a serving cluster should announce)."""
    announced = announcements(state, plan)
    missing = []
    for service in plan.services:
        for cluster in service.clusters:
            for node in plan.cluster(cluster).nodes:
                if node not in announced[service.name]:
                    missing.append(f"{node}: {service.name}")
    return missing


class _SessionWatch:
    """Which sessions are up, from the FRR logs of their FRR ends (cheap, read every poll),
    with a query to the daemons now and then as the authority for what the logs do not show
    (a configuration without neighbor-change logging, say)."""

    def __init__(self, backend: Backend, state: LabState, plan: LabPlan) -> None:
        self.backend = backend
        self.state = state
        self.plan = plan
        self.ends = {s.id: frr_end(plan, s) for s in plan.sessions}
        self.logs = {router: LogStates(backend.router_files(state, router).log("frr"))
                     for router, _ in self.ends.values()}
        self.confirmed_bgp: set[str] = set()
        self.confirmed_bfd: set[str] = set()
        self.last_query = time.monotonic()

    def update(self) -> None:
        for log in self.logs.values():
            log.update()

    def bgp_up(self, session: SessionPlan) -> bool:
        router, peer = self.ends[session.id]
        return self.logs[router].bgp.get(peer) == "Up" or session.id in self.confirmed_bgp

    def bfd_up(self, session: SessionPlan) -> bool:
        router, peer = self.ends[session.id]
        return self.logs[router].bfd.get(peer) == "up" or session.id in self.confirmed_bfd

    def query_now_and_then(self, bgp_down: list[SessionPlan],
                           bfd_down: list[SessionPlan]) -> None:
        if time.monotonic() - self.last_query < AUTHORITY_INTERVAL_S:
            return
        self.last_query = time.monotonic()
        if bgp_down:
            self.confirmed_bgp |= {st.session for st in session_states(
                self.backend, self.state, self.plan, only=bgp_down) if st.established}
        if bfd_down:
            self.confirmed_bfd |= {st.session for st in bfd_states(
                self.backend, self.state, self.plan, bfd_down) if st.state == "up"}


class _RoutingQuiet:
    """Whether BGP routing has settled, so that clients are asked where they land only once
    the answer is the lasting one: every bgpd's table version unchanged for a while (longer
    than updates take to cross the slowest links), and every session up for longer than
    FRR's update-group coalesce time (a new session's first updates wait that long, so a
    table can look quiet while routes are still on their way)."""

    def __init__(self, backend: Backend, state: LabState, plan: LabPlan) -> None:
        self.files = [backend.router_files(state, n.name) for n in plan.nodes
                      if "bgpd" in frr_daemons(n)]
        self.coalesce_s = (bfdstart.BOOT_COALESCE_MS / 1000 if state.boot_pending
                           else COALESCE_S)
        slowest_ms = max((link.impairment.delay_ms + link.impairment.jitter_ms
                          for link in plan.links), default=0.0)
        self.quiet_s = max(MIN_QUIET_S, 3 * slowest_ms / 1000)
        self.versions: dict[str, Any] = {}
        self.changed_at = time.monotonic()
        self.youngest_s = 0.0

    def quiet_for(self, seconds: float) -> bool:
        """Whether, at the last ``settled()``, every session was older than the coalesce time
        and the tables had not changed for ``seconds``."""
        return (self.youngest_s >= self.coalesce_s
                and time.monotonic() - self.changed_at >= seconds)

    def settled(self) -> bool:
        versions: dict[str, Any] = {}
        youngest_s = float("inf")
        for files in self.files:
            try:
                summaries = bgp_summaries(files)
            except BackendError:
                return False
            versions[files.directory.name] = {family: summary.get("tableVersion")
                                              for family, summary in summaries.items()}
            for summary in summaries.values():
                for peer in summary.get("peers", {}).values():
                    if peer.get("state") == "Established":
                        youngest_s = min(youngest_s, int(peer.get("peerUptimeMsec", 0)) / 1000)
        now = time.monotonic()
        if versions != self.versions:
            self.versions, self.changed_at = versions, now
        self.youngest_s = youngest_s
        return self.quiet_for(self.quiet_s)


def wait_ready(backend: Backend, state: LabState, plan: LabPlan, timeout_s: float,
               progress: Callable[[str], None],
               when_answered: Callable[[], None] | None = None) -> ReadyReport:
    """Poll until ready or ``timeout_s``; ``when_answered`` runs once, in a thread beside the
    polls, when every client is answered after routing has been quiet for
    ``EARLY_QUIET_S`` (the delays' calibration runs there, while routing finishes settling
    and BFD sessions leave their one-second slow start); the lab is ready only once it has
    returned."""
    progress = _changes_only(progress)
    with ThreadPoolExecutor(max_workers=1) as beside:
        return _poll_until_ready(backend, state, plan, timeout_s, progress, when_answered,
                                 beside)


def _poll_until_ready(backend: Backend, state: LabState, plan: LabPlan, timeout_s: float,
                      progress: Callable[[str], None],
                      when_answered: Callable[[], None] | None,
                      beside: ThreadPoolExecutor) -> ReadyReport:
    started = time.monotonic()
    watch = _SessionWatch(backend, state, plan)
    routing = _RoutingQuiet(backend, state, plan)
    report = ReadyReport(False, 0.0, len(plan.sessions))
    good: dict[tuple[str, str, str], ClientAnswer] = {}
    answered_at = attached_at = 0.0
    after_answers: Future[None] | None = None
    while True:
        _, report.dead = daemons_alive(state)
        if report.dead:
            break
        watch.update()
        bgp_down = [s for s in plan.sessions if not watch.bgp_up(s)]
        progress(f"BGP sessions established: {len(plan.sessions) - len(bgp_down)}"
                 f"/{len(plan.sessions)}")
        if _switch_bfd_on(backend, state, plan, {s.id for s in bgp_down}):
            attached_at = time.monotonic()
        bfd_all = [s for s in plan.sessions if s.timers.bfd is not None]
        bfd_down = [s for s in bfd_all if not watch.bfd_up(s)]
        if not bgp_down and bfd_all:
            progress(f"BFD sessions up: {len(bfd_all) - len(bfd_down)}/{len(bfd_all)}")
        report.not_announcing = missing_announcements(state, plan) if not bgp_down else []
        announced = not bgp_down and not report.not_announcing
        report.routing_settling = announced and not routing.settled()
        if report.routing_settling:
            progress("routing: settling")
        if (announced and not report.routing_settling and not state.bfd_pending
                and time.monotonic() - attached_at >= REGISTERED_S):
            _finish_start(backend, state, plan)
        if announced and (not report.routing_settling or routing.quiet_for(EARLY_QUIET_S)):
            if routing.changed_at > answered_at:
                good.clear()  # taken before routing last changed
            answered_at = time.monotonic()
            report.answers = _probe_until_answered(backend, state, plan, good)
            progress(f"clients answered: {len(good)}/{len(report.answers)}")
        else:
            report.answers = []  # answers count only when taken after routing went quiet
        if report.answers and not report.clients_failing and when_answered is not None:
            after_answers = beside.submit(when_answered)
            when_answered = None
        if (not bgp_down and not bfd_down and not state.boot_pending
                and not report.routing_settling and report.answers
                and not report.clients_failing
                and (after_answers is None or after_answers.done())):
            report.ready = True
            break
        if time.monotonic() - started > timeout_s:
            break
        watch.query_now_and_then(bgp_down, bfd_down)
        time.sleep(POLL_INTERVAL_S)
    if after_answers is not None:
        after_answers.result()  # its failure is the caller's
    only_workloads = report.dead and all(d.startswith("workload ") for d in report.dead)
    if not report.ready and not only_workloads:  # what is not ready, in the daemons' words
        report.sessions_down = explain_sessions(backend, state, plan, [
            st for st in session_states(backend, state, plan) if not st.established])
        report.bfd_down = [st for st in bfd_states(backend, state, plan, list(plan.sessions))
                           if st.state != "up"]
        report.zebra_gaps = zebra_missing_addresses(backend, state, plan)
    if not report.ready:
        report.workloads = workloads.problems(state, plan, unready_pods(state, plan))
    report.elapsed_s = time.monotonic() - started
    return report


def _changes_only(progress: Callable[[str], None]) -> Callable[[str], None]:
    """Pass a message on only when it changed since the last one of its kind (the text
    before the colon): the loop polls every 0.1 s."""
    last: dict[str, str] = {}

    def report(message: str) -> None:
        kind = message.split(":", 1)[0]
        if last.get(kind) != message:
            last[kind] = message
            progress(message)

    return report


def _probe_until_answered(backend: Backend, state: LabState, plan: LabPlan,
                          good: dict[tuple[str, str, str], ClientAnswer]) -> list[ClientAnswer]:
    """Probe the clients not answered yet, all at once (a round lasts one probe timeout at
    most, however many clients are still waiting for routes); an answer once received is
    kept."""
    keys = client_targets(plan)
    pods = {pod.name: pod for pod in plan.pods()}
    todo = [(c, s, f) for c, s, f in keys if (c, s.name, f) not in good]
    with ThreadPoolExecutor(max_workers=max(1, min(len(todo), 16))) as pool:
        fresh = list(pool.map(lambda job: probe(backend, state, job[0], job[1],
                                                PROBE_TIMEOUT_S, job[2], pods), todo))
    for answer in fresh:
        if answer.site is not None:
            good[(answer.client, answer.service, answer.family)] = answer
    by_key = {(a.client, a.service, a.family): a for a in fresh}
    return [good.get((c, s.name, f)) or by_key[(c, s.name, f)] for c, s, f in keys]


def _switch_bfd_on(backend: Backend, state: LabState, plan: LabPlan,
                   not_established: set[str]) -> bool:
    """BFD on for the sessions that came up since the last poll (see lab.backend.bfdstart);
    whether there were any."""
    due = [s for s in plan.sessions if s.id in state.bfd_pending and s.id not in not_established]
    if not due:
        return False
    per_router: dict[str, list[bfdstart.BfdAttachment]] = defaultdict(list)
    for session in due:
        for item in bfdstart.attachments(plan, session):
            per_router[item.router].append(item)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda r: bfdstart.attach(backend.router_files(state, r),
                                                 per_router[r]), sorted(per_router)))
    done = {s.id for s in due}
    state.bfd_pending = [s for s in state.bfd_pending if s not in done]
    save_state(state)
    return True


def _finish_start(backend: Backend, state: LabState, plan: LabPlan) -> None:
    """Every router from its boot configuration to its ``frr.conf`` once routing has settled
    and every BFD session is attached (lab.backend.bfdstart)."""
    if not state.boot_pending:
        return
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda r: bfdstart.finish_start(
            backend.router_files(state, r), bfdstart.router_attachments(plan, r)),
            state.boot_pending))
    state.boot_pending = []
    save_state(state)
