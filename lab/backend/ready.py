"""Waiting until a lab is ready: every BGP session Established and every client answered on
every service VIP. Polls observable state (vtysh JSON, real requests), never sleeps blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.backend.inspect import (
    ClientAnswer,
    SessionState,
    announcements,
    daemons_alive,
    probe_all,
    session_states,
)
from lab.backend.state import LabState
from lab.plan import LabPlan

POLL_INTERVAL_S = 0.25


@dataclass
class ReadyReport:
    ready: bool
    elapsed_s: float
    sessions_total: int
    sessions_down: list[SessionState] = field(default_factory=list)
    answers: list[ClientAnswer] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    not_announcing: list[str] = field(default_factory=list)

    @property
    def clients_failing(self) -> list[ClientAnswer]:
        return [a for a in self.answers if a.site is None]

    def explain(self) -> str:
        lines = []
        if self.dead:
            lines.append("processes that died: " + ", ".join(self.dead))
        if self.sessions_down:
            lines.append(f"{len(self.sessions_down)} of {self.sessions_total} BGP sessions not "
                         "Established: " + ", ".join(f"{s.a}-{s.b} ({s.state})"
                                                      for s in self.sessions_down[:12]))
        if self.not_announcing:
            lines.append("nodes not announcing their VIPs yet: "
                         + ", ".join(self.not_announcing[:12]))
        if self.sessions_down == [] and not self.answers:
            lines.append("clients were not checked yet")
        failing = self.clients_failing
        if failing:
            lines.append("clients without an answer: " + ", ".join(
                f"{a.client} -> {a.service} ({a.error})" for a in failing[:12]))
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


def wait_ready(state: LabState, plan: LabPlan, timeout_s: float,
               progress: Callable[[str], None]) -> ReadyReport:
    started = time.monotonic()
    pending = list(plan.sessions)
    total = len(pending)
    report = ReadyReport(False, 0.0, total)
    while True:
        _, dead = daemons_alive(state)
        report.dead = dead
        if dead:
            break
        if pending:
            states = session_states(state, plan, only=pending)
            pending = [s for s, st in zip(pending, states, strict=True) if not st.established]
            report.sessions_down = [st for st in states if not st.established]
            progress(f"BGP sessions established: {total - len(pending)}/{total}")
        if not pending:
            report.not_announcing = missing_announcements(state, plan)
        if not pending and not report.not_announcing:
            report.answers = probe_all(state.lab, plan)
            ok = len(report.answers) - len(report.clients_failing)
            progress(f"clients answered: {ok}/{len(report.answers)}")
            if not report.clients_failing:
                report.ready = True
                break
        if time.monotonic() - started > timeout_s:
            break
        time.sleep(POLL_INTERVAL_S)
    report.elapsed_s = time.monotonic() - started
    return report
