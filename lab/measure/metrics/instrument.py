"""summary.json's ``instrument``: how well the lab's own parts kept time in a trial, and
whether the trial's figures can be trusted.

The runner records one ``runner``/``instrument`` event per trial (host CPU, the link
emulator's late and overrun frames, UDP socket-buffer drops per namespace:
``lab.run.instrument``) and one ``prober``/``timing`` event per prober (late ticks, skipped
slots). A trial in which the instrument itself lagged beyond ``LIMITS`` has loss and delay
that no router caused: it is marked invalid with the reason, as a trial in which a daemon died
(docs/run-format.md, "instrument").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lab.measure.metrics.windows import Event, event_int, is_event

# Beyond these, the trial's probes measure the machine, not the network. A probe is lost only
# after a 2 s reply timeout, so lateness alone distorts delays, not outages: the limits aim at
# what makes loss (frames or replies dropped) or holes in the timeline (stalls), and at delays
# late beyond any path's tolerance. A quiet 2-core machine stays far inside them (measured:
# docs/run-format.md, "instrument").
LIMITS = {
    # frames the link emulator sent more than 10 ms later than due, per frame forwarded
    "emulator_late_10ms": 0.001,
    # frames the emulator lost because it fell behind (kernel socket overruns) or could not
    # send, in the trial
    "emulator_dropped": 0,
    # probe slots the probers skipped (they stalled for more than an interval), per slot: short
    # stalls cost resolution, not loss; a quiet machine with 10 % steal skipped 1.9 %
    "prober_skipped": 0.1,
    # the longest prober stall, ms: a hole in the timeline that long could hide a whole
    # carrier-loss outage (the hypervisor of a quiet 2-core machine paused it 51 ms)
    "prober_stall_ms": 250.0,
    # UDP datagrams dropped for lack of socket buffer in a client (its prober), in the trial
    "client_rcvbuf_errors": 0,
    # packets the kernel dropped from a full receive backlog (any namespace), in the trial
    "backlog_drops": 0,
    # requests dropped for lack of socket buffer in a pod whose node no fault of the trial
    # targeted (a frozen node's pods fill their buffers on purpose)
    "pod_rcvbuf_errors": 0,
    # BGP or BFD sessions that went down before the trial's first fault (no fault explains
    # them: the routers' daemons did not get to run)
    "sessions_down_before_fault": 0,
    # the largest |median RTT - configured RTT| of a path before the first fault, ms: a
    # quiet or moderately loaded machine stays within 1 ms; an overloaded one queued
    # packets for 10-150 ms (docs/benchmarks.md, "fidelity")
    "delay_error_ms": 5.0,
}


def instrument_section(events: Sequence[Event], trial: int,
                       probes: pd.DataFrame | None = None) -> dict[str, Any] | None:
    """The trial's ``instrument``: ``host`` (CPU busy, steal and pressure shares, receive
    backlog drops and softirq squeezes), ``emulator`` (frames forwarded, late by > 0.5/2/10
    ms, overruns), ``client_rcvbuf_errors`` and ``pod_rcvbuf_errors`` (UDP socket-buffer
    drops per client or pod that had any; a pod's may be the fault's own doing, e.g. a frozen
    node), ``sessions_down_before_fault`` (router-peer of each BGP or BFD session that went
    down before the trial's first fault), ``fault_targets`` (what the trial's faults
    targeted), ``probers`` (ticks, late ticks (UDP probers: > 0.5 ms; HTTP probers, whose
    selector wakes with millisecond resolution: > 2 ms), skipped slots, longest stall, over
    every client's UDP prober and every service's HTTP prober),
    ``delay`` (``delay_fidelity``) and ``problems`` (what exceeded ``LIMITS``); None when the
    run recorded none of it."""
    runner = next((e for e in events if is_event(e, trial, "runner", ("instrument",))), None)
    timing = [e for e in events if is_event(e, trial, "prober", ("timing",))]
    if runner is None and not timing:
        return None
    probers = None
    if timing:
        probers = {"clients": sum(1 for e in timing if e.get("prober") != "http"),
                   "http_probers": sum(1 for e in timing if e.get("prober") == "http"),
                   **{key: sum(int(_number(e, key)) for e in timing)
                      for key in ("ticks", "late_500us", "late_2ms", "skipped_slots")},
                   "longest_stall_ms": max(_number(e, "longest_stall_ms") for e in timing)}
    recorded: Mapping[str, Any] = runner or {}
    faults = [event_int(e, "t_ns") for e in events if is_event(e, trial, "injector", ("fault",))]
    first_fault = min(faults, default=None)
    flaps = sorted({f"{e.get('router')}-{e.get('peer')}" for e in events
                    if is_event(e, trial, "bgp", ("session_down",))
                    or is_event(e, trial, "bfd", ("bfd_down",))
                    if first_fault is None or event_int(e, "t_ns") < first_fault})
    section: dict[str, Any] = {
        "host": recorded.get("host"),
        "emulator": recorded.get("emulator"),
        "client_rcvbuf_errors": dict(recorded.get("client_rcvbuf_errors") or {}),
        "pod_rcvbuf_errors": dict(recorded.get("pod_rcvbuf_errors") or {}),
        "sessions_down_before_fault": flaps,
        "fault_targets": sorted({str(e.get("target")) for e in events
                           if is_event(e, trial, "injector", ("fault",)) and e.get("target")}),
        "probers": probers,
        "delay": delay_fidelity(events, trial, probes) if probes is not None else None,
    }
    section["problems"] = instrument_problems(section)
    return section


def delay_fidelity(events: Sequence[Event], trial: int,
                   probes: pd.DataFrame) -> dict[str, Any] | None:
    """How far the trial's round-trip times were from the configured ones, before its first
    fault: per client, service, family and answering node, the median RTT of the answered
    probes, the RTT the topology configures (the runner's ``runner``/``paths`` event: twice
    the one-way link delays along the path, lab.plan.paths) and the error; ``median_error_ms``
    and ``max_abs_error_ms`` over the paths. None without the paths event."""
    paths = next((e for e in events if is_event(e, trial, "runner", ("paths",))), None)
    if paths is None:
        return None
    expected = paths.get("expected_rtt_ms")
    assert isinstance(expected, Mapping)
    faults = [event_int(e, "t_ns") for e in events if is_event(e, trial, "injector", ("fault",))]
    rows = probes.loc[(probes["trial"] == trial) & probes["rtt_ms"].notna()
                      & probes["node"].notna()]
    if faults:
        rows = rows.loc[rows["send_ns"] < min(faults)]
    entries = []
    keys = ["client", "service", "family", "node"]
    for (client, service, family, node), group in rows.groupby(keys, sort=True, observed=True):
        configured = (expected.get(client) or {}).get(node)
        if configured is None:
            continue
        rtt = float(group["rtt_ms"].median())
        entries.append({"client": str(client), "service": str(service),
                        "family": str(family), "node": str(node),
                        "probes": len(group), "rtt_ms": round(rtt, 3),
                        "expected_rtt_ms": configured,
                        "error_ms": round(rtt - float(configured), 3)})
    errors = [entry["error_ms"] for entry in entries]
    return {"paths": entries,
            "median_error_ms": round(float(pd.Series(errors).median()), 3) if errors else None,
            "max_abs_error_ms": max((abs(e) for e in errors), default=None)}


def _number(event: Event, key: str) -> float:
    value = event.get(key, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def instrument_problems(section: Mapping[str, Any]) -> list[str]:
    """Why the trial's figures cannot be trusted, one sentence per limit exceeded."""
    problems = []
    emulator = section.get("emulator") or {}
    frames = float(emulator.get("forwarded", 0))
    late = float(emulator.get("late_10ms", 0))
    if _share(late, frames) > LIMITS["emulator_late_10ms"]:
        problems.append(f"the link emulator sent {late:.0f} of {frames:.0f} frames more than "
                        f"10 ms late ({_share(late, frames):.2%}; limit "
                        f"{LIMITS['emulator_late_10ms']:.2%}): delays include its lag")
    dropped = float(emulator.get("dropped_overrun", 0)) + float(emulator.get("dropped_error", 0))
    if dropped > LIMITS["emulator_dropped"]:
        problems.append(f"the link emulator fell behind and lost {dropped:.0f} frames")
    probers = section.get("probers") or {}
    ticks = float(probers.get("ticks", 0))
    skipped = float(probers.get("skipped_slots", 0))
    stall = float(probers.get("longest_stall_ms", 0))
    if _share(skipped, ticks + skipped) > LIMITS["prober_skipped"]:
        problems.append(f"the probers skipped {skipped:.0f} of {ticks + skipped:.0f} probe "
                        f"slots ({_share(skipped, ticks + skipped):.2%}; limit "
                        f"{LIMITS['prober_skipped']:.0%})")
    if stall > LIMITS["prober_stall_ms"]:
        problems.append(f"a prober stalled for {stall:.0f} ms (limit "
                        f"{LIMITS['prober_stall_ms']:.0f} ms): the timeline has a hole that "
                        "long")
    backlog = int((section.get("host") or {}).get("backlog_drops") or 0)
    if backlog > LIMITS["backlog_drops"]:
        problems.append(f"the kernel dropped {backlog} packets from its full receive backlog "
                        "(softirq processing fell behind)")
    targets = section.get("fault_targets") or []
    pods = {pod: count for pod, count in (section.get("pod_rcvbuf_errors") or {}).items()
            if not any(pod == t or pod.startswith(f"{t}-") for t in targets)}
    if sum(pods.values()) > LIMITS["pod_rcvbuf_errors"]:
        where = ", ".join(f"{pod} {count}" for pod, count in sorted(pods.items()))
        problems.append(f"requests dropped for lack of socket buffer in pods no fault "
                        f"touched ({where}): their servers could not keep up")
    flaps = section.get("sessions_down_before_fault") or []
    if len(flaps) > LIMITS["sessions_down_before_fault"]:
        shown = ", ".join(flaps[:6]) + (f" and {len(flaps) - 6} more" if len(flaps) > 6 else "")
        problems.append(f"{len(flaps)} BGP/BFD sessions went down before any fault ({shown}): "
                        "the routers' daemons did not keep their timers")
    delay = section.get("delay") or {}
    worst = delay.get("max_abs_error_ms")
    if worst is not None and worst > LIMITS["delay_error_ms"]:
        path = max(delay.get("paths") or [{}], key=lambda p: abs(p.get("error_ms", 0.0)))
        where = f" ({path['client']} -> {path['node']})" if "node" in path else ""
        problems.append(f"round trips before the fault were up to {worst:.1f} ms off the "
                        f"configured ones{where} (limit {LIMITS['delay_error_ms']:.0f} ms): "
                        "the machine queued the lab's packets")
    drops = section.get("client_rcvbuf_errors") or {}
    if sum(drops.values()) > LIMITS["client_rcvbuf_errors"]:
        where = ", ".join(f"{node} {count}" for node, count in sorted(drops.items()))
        problems.append(f"replies dropped for lack of socket buffer in the clients ({where}): "
                        "the probers could not keep up")
    return problems


__all__ = ["LIMITS", "delay_fidelity", "instrument_problems", "instrument_section"]
