"""Kubernetes readiness semantics as a pure state machine.

A pod starts unready. It becomes ready after ``success_threshold`` consecutive successful
probes and unready after ``failure_threshold`` consecutive failures; a result of the other kind
resets the count. Nothing here reads a clock or a socket: the agent feeds probe results in and
acts on the transitions that come out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


@dataclass(frozen=True)
class ProbePolicy:
    """A readinessProbe's timing (Kubernetes field names in milliseconds)."""

    period_ms: int = 1000
    timeout_ms: int = 500
    failure_threshold: int = 3
    success_threshold: int = 1

    def __post_init__(self) -> None:
        for name in ("period_ms", "timeout_ms", "failure_threshold", "success_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class Transition(Enum):
    BECAME_READY = "pod_ready"
    BECAME_UNREADY = "pod_unready"


@dataclass(frozen=True)
class ProbeState:
    """One pod's readiness and its runs of consecutive results."""

    ready: bool = False
    successes: int = 0
    failures: int = 0


def observe(state: ProbeState, ok: bool, policy: ProbePolicy) -> ProbeState:
    """The state after one probe result."""
    if ok:
        successes = state.successes + 1
        ready = state.ready or successes >= policy.success_threshold
        return replace(state, ready=ready, successes=successes, failures=0)
    failures = state.failures + 1
    ready = state.ready and failures < policy.failure_threshold
    return replace(state, ready=ready, successes=0, failures=failures)


def transition(before: ProbeState, after: ProbeState) -> Transition | None:
    if before.ready == after.ready:
        return None
    return Transition.BECAME_READY if after.ready else Transition.BECAME_UNREADY


def run_results(results: list[bool], policy: ProbePolicy,
                start: ProbeState | None = None) -> list[ProbeState]:
    """The states after each of a series of results (for tests and what-if tables)."""
    state = start or ProbeState()
    states = []
    for ok in results:
        state = observe(state, ok, policy)
        states.append(state)
    return states
