"""Delay calibration: the lab's round trips made to match the configured ones.

Every hop of a path costs a little time besides the delay its link is configured with: the
kernel forwards through several namespaces, the link emulator wakes up to release a frame, the
pod's server answers. On a 2-core machine that adds 1-2 ms to a round trip of 10-35 ms
(docs/benchmarks.md, "fidelity"). Calibration measures it and takes it off: each client's
probers send for a short while, the median RTT of each client is compared with the round trip
its topology configures (lab.plan.paths) and the difference is taken off the client's access
link, half in each direction (the emulator's ``comp``: never more than the link's own delay,
kept when a fault changes the link's settings). A second measurement gives the residual error
that remains. Only the userspace emulator can do this; with netem the error is reported, not
corrected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from lab.backend.processes import Spawn, is_alive, stop_pids
from lab.backend.state import ProcessRecord
from lab.measure.probe.records import read_prober_file
from lab.measure.probe.services import instances, udp_targets
from lab.measure.probe.udp import probes_frame, start_udp_prober
from lab.plan.model import LabPlan, LinkKind, LinkPlan, Role
from lab.plan.paths import expected_rtts

MEASURE_MS = 100  # per round: ~100 probes per client and VIP at 1 ms
# after the last probe, answers are waited for twice the round trip to the client's nearest
# node plus this margin; answers from farther nodes may miss the end (the median is over
# the answered probes)
DRAIN_MARGIN_MS = 20
POLL_S = 0.01
# one flow per VIP, as scenarios probe by default: many flows at 1 ms from every client at
# once are more than a 2-core machine forwards without queueing (the error grows to 25 ms)
FLOWS = 1
EXIT_GRACE_S = 3.0
# The lab's own cost is a few tenths of a millisecond per round trip (docs/benchmarks.md,
# "fidelity"); a larger error is queueing in an overloaded machine, which changes from one
# moment to the next: taking it off would make later round trips too short. Such a client's
# compensation is left as it was.
MAX_ERROR_MS = 2.0


class Compensating(Protocol):
    """What calibration needs of an impairment driver (the userspace emulator's)."""

    def compensation(self, link_id: str) -> float: ...

    def compensate(self, link_id: str, microseconds: float) -> None: ...


@dataclass(frozen=True)
class ClientCalibration:
    client: str
    link: str | None  # the access link the correction is taken off (None: nothing to take)
    error_ms: float  # measured median RTT minus the configured one, before correction
    compensation_us: float  # taken off each direction of the link
    residual_ms: float | None  # the error that remains (None: not measured again)
    probes: int


@dataclass(frozen=True)
class Calibration:
    clients: tuple[ClientCalibration, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"clients": [asdict(c) for c in self.clients], "seconds": round(self.seconds, 3)}


def access_link(plan: LabPlan, client: str) -> LinkPlan | None:
    """The client's own link to its transit (one per client), if it has one."""
    return next((link for link in plan.links if link.kind == LinkKind.ACCESS
                 and client in (link.a.node, link.b.node)), None)


def measure_errors(plan: LabPlan, spawn_in: Callable[[str], Spawn], scratch: Path,
                   clients: Sequence[str], duration_ms: int = MEASURE_MS,
                   interval_ms: float = 1.0) -> dict[str, tuple[float, int]]:
    """Per client: the median over its answered probes of RTT minus the configured round trip
    to the node that answered, and how many probes that is. Every client's prober sends at
    once (every ``interval_ms``, ``FLOWS`` flow, every UDP VIP of its families)."""
    expected = expected_rtts(plan, clients, [n.name for n in plan.nodes_with_role(
        Role.K8S_NODE)])
    started: list[tuple[str, Path, ProcessRecord]] = []
    try:
        for client in clients:
            targets = udp_targets(plan, client, plan.services)
            if not targets or client not in expected:
                continue
            out = scratch / f"calibrate-{client}.txt"
            started.append((client, out, start_udp_prober(
                spawn_in(client), client, targets, interval_ms, FLOWS, out,
                scratch / f"calibrate-{client}.log", duration_ms=duration_ms,
                drain_ms=round(2 * min(expected[client].values(), default=0.0)) + DRAIN_MARGIN_MS)))
        deadline = time.monotonic() + duration_ms / 1000 + EXIT_GRACE_S
        while any(is_alive(p) for _c, _o, p in started) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    finally:
        stop_pids([p.pid for _c, _o, p in started], grace_s=1.0)
    errors: dict[str, tuple[float, int]] = {}
    pods = instances(plan)
    for client, out, _process in started:
        if not out.exists():
            continue
        rows = probes_frame(read_prober_file(out), client, 0, pods)
        rows = rows.loc[rows["rtt_ms"].notna() & rows["node"].notna()]
        configured = rows["node"].map(expected[client])
        error = (rows["rtt_ms"] - configured).dropna()
        if len(error):
            errors[client] = (float(error.median()), len(error))
    return errors


def corrections(plan: LabPlan, errors: dict[str, float],
                current: Callable[[str], float]) -> dict[str, tuple[str | None, float]]:
    """Per client with a measured error (ms): its access link and the compensation to give
    it (µs per direction): ``current(link)`` plus half the round trip's error, within
    [0, the link's delay]; an error beyond ``MAX_ERROR_MS`` leaves ``current(link)``. A
    client without an access link that delays (nothing to take the error off) gets
    (None, 0)."""
    result: dict[str, tuple[str | None, float]] = {}
    for client, error_ms in errors.items():
        link = access_link(plan, client)
        if link is None or link.impairment.delay_ms <= 0:
            result[client] = (None, 0.0)
            continue
        if abs(error_ms) > MAX_ERROR_MS:
            result[client] = (link.id, current(link.id))
            continue
        wanted = current(link.id) + error_ms * 1000 / 2
        result[client] = (link.id, round(min(max(wanted, 0.0),
                                             link.impairment.delay_ms * 1000), 1))
    return result


def calibrate_delays(plan: LabPlan, driver: Compensating, spawn_in: Callable[[str], Spawn],
                     scratch: Path, clients: Sequence[str] | None = None) -> Calibration:
    """Measure each client's RTT error, take it off its access link (adding to what an
    earlier calibration took off), measure what remains."""
    began = time.monotonic()
    chosen = list(clients) if clients is not None else [
        n.name for n in plan.nodes_with_role(Role.CLIENT)]
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)  # the lab state is root-only
    first = measure_errors(plan, spawn_in, scratch, chosen)
    corrected = corrections(plan, {c: e for c, (e, _n) in first.items()},
                            driver.compensation)
    for link, compensation in corrected.values():
        if link is not None:
            driver.compensate(link, compensation)
    residual = measure_errors(plan, spawn_in, scratch, list(first))  # what remains
    return Calibration(tuple(
        ClientCalibration(client, corrected[client][0], round(error_ms, 3),
                          corrected[client][1],
                          round(residual[client][0], 3) if client in residual else None, n)
        for client, (error_ms, n) in sorted(first.items())), time.monotonic() - began)


__all__ = ["Calibration", "ClientCalibration", "Compensating", "access_link",
           "calibrate_delays", "corrections", "measure_errors"]
