"""Play a scenario against a lab and measure it: the injector, probers and recorder on one
clock, then the run directory (see docs/run-format.md).

One thread drives the timeline; probers, the FIB recorder and TCP flows are separate
processes that write their own files, so the timeline never waits for measurement.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab import __version__, pipeline
from lab.backend import labs
from lab.backend.processes import is_alive
from lab.backend.protocol import Backend
from lab.backend.state import LabState, load_state, save_state
from lab.errors import BackendError, LabError
from lab.faults import FaultContext, apply_fault, undo_fault
from lab.faults.primitives import LabHandle
from lab.plan.model import LinkKind, Role
from lab.proc import run
from lab.run.measurement import Measurement
from lab.run.rundir import RunDirectory
from lab.scenario.load import SERVING_LINK_FAULTS, Action, LoadedScenario, load_scenario
from lab.scenario.model import TargetSelector

Progress = Callable[[str], None]
EVIDENCE_FOLDER = "evidence"


@dataclass
class RunOptions:
    scenario_file: Path
    topology: Path | None = None
    repeat: int | None = None
    keep_lab: bool = False
    name: str | None = None
    runs_root: Path = Path("runs")
    ready_timeout_s: float = 150.0


@dataclass(frozen=True)
class TrialTiming:
    """A trial as it starts: its place in the run and how long its timeline lasts (settle,
    steps, tail; not the recovery wait after it), for progress displays."""

    trial: int
    trials: int
    start_monotonic: float
    planned_s: float


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    complete: bool
    lab: str


@dataclass
class ActiveFault:
    action: Action
    ctx: FaultContext
    details: dict[str, Any]


@dataclass
class Recording:
    """Everything one run accumulates before it is written out."""

    run_dir: RunDirectory
    clock: dict[str, int]
    events: list[dict[str, Any]] = field(default_factory=list)
    prober_files: list[tuple[int, str, Path]] = field(default_factory=list)  # trial, client
    tcp_files: list[Path] = field(default_factory=list)
    http_files: list[tuple[int, str, Path]] = field(default_factory=list)  # trial, service
    routes_file: Path | None = None
    trial_bounds: list[tuple[int, int, int]] = field(default_factory=list)  # trial, start, end
    evidence: str | None = None  # folder of the run directory with the lab's evidence
    calibration: dict[str, Any] | None = None  # lab.measure.calibrate, before the trials

    def event(self, trial: int, source: str, kind: str, **fields: Any) -> dict[str, Any]:
        row = {"t_ns": fields.pop("t_ns", time.monotonic_ns()), "trial": trial,
               "source": source, "kind": kind, **fields}
        self.events.append(row)
        return row


def run_scenario(options: RunOptions, progress: Progress, *, backend: Backend | None = None,
                 measurement: type[Measurement] = Measurement,
                 on_trial: Callable[[TrialTiming], None] | None = None) -> RunResult:
    """Play the scenario against its lab (brought up first when it does not run) and write
    the run directory. ``backend``: the lab's (default: the one its state names, or the
    default backend for a new lab); ``measurement``: what measures (NoMeasurement in unit
    tests)."""
    loaded = load_scenario(options.scenario_file, options.topology)
    lab_name = options.name or loaded.lab_name
    state, started_lab = _ensure_lab(loaded, lab_name, options, progress, backend)
    handle = LabHandle(state, loaded.plan, backend or labs.backend_for(state))
    clock = {"monotonic_ns": time.monotonic_ns(), "realtime_ns": time.time_ns()}
    recording = Recording(RunDirectory(options.runs_root, loaded.scenario.name), clock)
    repeat = options.repeat or loaded.scenario.repeat
    recording.run_dir.write_json("run.json", _run_meta(loaded, state, repeat, clock,
                                                       complete=False, interrupted=False))
    complete, interrupted = False, False
    failure: str | None = None
    measure = measurement(handle, loaded, recording, progress)
    try:
        measure.start()
        for trial in range(repeat):
            measure.settle()
            progress(f"trial {trial + 1}/{repeat}")
            if on_trial is not None:
                scenario = loaded.scenario
                on_trial(TrialTiming(trial, repeat, time.monotonic(), (
                    scenario.settle + loaded.timeline_ms + scenario.tail) / 1000))
            _run_trial(handle, loaded, recording, trial, progress, measure)
            if trial < repeat - 1:
                _wait_recovered(handle, loaded, progress)
        complete = True
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, LabError) else str(exc)
        raise
    finally:
        measure.stop()
        handle.release()
        _keep_evidence_if_invalid(handle, loaded, recording, failure, progress)
        summary = _finish(loaded, state, recording, repeat, complete, interrupted, progress)
        if started_lab and not options.keep_lab and not interrupted:
            progress("removing the lab")
            labs.down(lab_name, backend=handle.backend)
    if interrupted:
        raise KeyboardInterrupt
    return RunResult(recording.run_dir.path, summary, complete, lab_name)


def _keep_evidence_if_invalid(handle: LabHandle, loaded: LoadedScenario,
                              recording: Recording, failure: str | None,
                              progress: Progress) -> None:
    """A run that failed, or has a trial made invalid by a lab process that died, keeps the
    lab's evidence in ``evidence/`` of its run directory (while the lab still runs)."""
    died = [e for e in recording.events if e["kind"] == "daemon_died"]
    if failure is None and not died:
        return
    progress("keeping the lab's evidence in the run directory")
    lines = [f"run of {loaded.scenario.name!r} on lab {handle.lab!r}:"]
    if failure is not None:
        lines.append(f"it failed: {failure}")
    lines += [f"trial {e['trial'] + 1}: {e['daemon']} on {e['node']} (pid {e['pid']}) died "
              "outside the scenario" for e in died]
    folder = recording.run_dir.path / EVIDENCE_FOLDER
    with contextlib.suppress(OSError):
        handle.backend.keep_evidence(handle.state, loaded.plan, folder, "\n".join(lines))
        recording.evidence = EVIDENCE_FOLDER


def _ensure_lab(loaded: LoadedScenario, lab: str, options: RunOptions, progress: Progress,
                backend: Backend | None) -> tuple[LabState, bool]:
    if lab in labs.all_labs():
        state = load_state(lab)
        if labs.plan_of(state).to_dict() != loaded.plan.to_dict():
            raise BackendError(f"lab {lab!r} runs a different topology than this scenario "
                               f"needs; `anylab down --name {lab}` or pick another --name")
        if backend is not None and backend.name != state.backend:
            raise BackendError(f"lab {lab!r} runs on backend {state.backend}, not "
                               f"{backend.name}; leave out the backend or pick another --name")
        progress(f"using the running lab {lab!r}")
        return state, False
    progress(f"bringing up lab {lab!r}")
    with tempfile.TemporaryDirectory(prefix="anylab-topo-") as folder:
        topology = Path(folder) / f"{loaded.plan.topology}.yaml"
        topology.write_text(loaded.topology_yaml, encoding="utf-8")
        result = labs.up(topology, lab, progress, timeout_s=options.ready_timeout_s,
                         backend=backend, calibrate=False)  # the run calibrates, under load
    if not result.report.ready:
        raise BackendError(f"lab {lab!r} did not become ready (it was removed):\n"
                           f"{result.report.explain()}")
    return result.state, True


def _prepare_target_resolution(loaded: LoadedScenario) -> None:
    """Import what resolving a `serving:` target reads probes with (pandas among it: 1.3 s
    measured on a busy machine) now, not when the fault is due."""
    if any(isinstance(action.spec.target, TargetSelector) for action in loaded.actions):
        import lab.measure.probe.httprecords
        import lab.measure.probe.udp  # noqa: F401


def _resolve_target(handle: LabHandle, recording: Recording, trial: int,
                    action: Action) -> str:
    """A target name, or the node/pod serving a client now (from the prober's own replies,
    so the same ECMP hash as the measured flow)."""
    target = action.spec.target
    if not isinstance(target, TargetSelector):
        assert isinstance(target, str)
        return target
    from lab.measure.probe.httprecords import load_http_probes
    from lab.measure.probe.services import instances
    from lab.measure.probe.udp import load_udp_probes  # imported during the settle time

    serving = target.serving
    pods = instances(handle.plan)
    path = next((p for t, c, p in recording.prober_files
                 if t == trial and c == serving.client), None)
    http = next((p for t, s, p in recording.http_files
                 if t == trial and s == serving.service), None)
    if http is not None:
        probes = load_http_probes(http, trial, pods)
    elif path is not None:
        probes = load_udp_probes(path, serving.client, trial, pods)
    else:
        raise BackendError(f"no probes from {serving.client} to resolve `serving:`")
    probes = probes[probes["client"] == serving.client]
    answered = probes[(probes["service"] == serving.service) & (probes["flow"] == serving.flow)
                      & (probes["family"] == "ipv4") & probes["recv_ns"].notna()]
    if answered.empty:
        raise BackendError(f"{serving.client} has no answer from {serving.service} yet")
    last = answered.sort_values("recv_ns").iloc[-1]
    if action.spec.fault in {"pod-kill", "pod-unready"}:
        return str(last["pod"])
    node = handle.plan.node(str(last["node"]))
    if action.spec.fault in SERVING_LINK_FAULTS:
        leaf = next(i for i in node.interfaces if i.kind == LinkKind.NODE)
        return leaf.link_id
    return node.name


def _sleep_until(deadline_ns: int) -> None:
    while (remaining := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(min(remaining / 1e9, 0.5))


def _run_trial(handle: LabHandle, loaded: LoadedScenario, recording: Recording, trial: int,
               progress: Progress, measure: Measurement) -> None:
    """One trial: measurement on, the settle time, the timeline's actions at their instants,
    the tail; every fault still active is undone on the way out, whatever happened."""
    scenario = loaded.scenario
    start_ns = recording.event(trial, "runner", "trial_start")["t_ns"]
    active: dict[int, ActiveFault] = {}
    try:
        measure.start_trial(trial)
        _prepare_target_resolution(loaded)
        _sleep_until(start_ns + int(scenario.settle * 1e6))
        timeline_ns = recording.event(trial, "runner", "settled")["t_ns"]
        for action in loaded.actions:
            planned_ns = timeline_ns + int(action.t_ms * 1e6)
            _sleep_until(planned_ns)
            started_ns = _perform(handle, recording, trial, action, active, progress)
            if started_ns is not None:
                # resolving a `serving:` target reads the probes so far, which can take
                # seconds on a busy machine: the rest of the timeline (this fault's undo
                # first) keeps its spacing from when the fault really began
                timeline_ns += max(0, started_ns - planned_ns)
        _sleep_until(timeline_ns + int((loaded.timeline_ms + scenario.tail) * 1e6))
        _check_processes(handle, recording, trial, progress)
    finally:
        for fault in reversed(list(active.values())):
            _undo(handle, recording, trial, fault, at_ms=None)
        # the measured trial ends here: what the probers record while they are being stopped
        # (seconds on a busy machine) belongs to no window
        end_ns = time.monotonic_ns()
        measure.stop_trial()
        recording.event(trial, "runner", "trial_end", t_ns=end_ns)
        recording.trial_bounds.append((trial, start_ns, end_ns))


def _perform(handle: LabHandle, recording: Recording, trial: int, action: Action,
             active: dict[int, ActiveFault], progress: Progress) -> int | None:
    """Carry out one action; for a fault, the instant it began (after resolving its target)."""
    if action.kind == "undo":
        fault = active.pop(action.step, None)
        if fault is not None:
            progress(f"undo {action.fault} on {fault.ctx.target}")
            _undo(handle, recording, trial, fault, at_ms=action.t_ms)
        return None
    target = _resolve_target(handle, recording, trial, action)
    ctx = FaultContext(handle, action.fault, target, action.spec)
    progress(f"{action.fault} on {target}")
    t_ns = time.monotonic_ns()
    details = apply_fault(ctx)
    recording.event(trial, "injector", "fault", t_ns=t_ns, done_ns=time.monotonic_ns(),
                    at_ms=action.t_ms, step=action.step, fault=action.fault, target=target,
                    cycle=action.cycle, details=details)
    active[action.step] = ActiveFault(action, ctx, details)
    return t_ns


def _undo(handle: LabHandle, recording: Recording, trial: int, fault: ActiveFault,
          at_ms: float | None) -> None:
    """Revert ``fault``: at its instant of the timeline (``at_ms``), or at the trial end
    (None)."""
    t_ns = time.monotonic_ns()
    try:
        details = undo_fault(fault.ctx, fault.details)
    except LabError as exc:
        details = {"error": str(exc)}
    recording.event(trial, "injector", "undo", t_ns=t_ns, done_ns=time.monotonic_ns(),
                    at_ms=at_ms, step=fault.action.step, fault=fault.action.fault,
                    target=fault.ctx.target, cycle=fault.action.cycle,
                    details={**details, "at_trial_end": at_ms is None})


def _check_processes(handle: LabHandle, recording: Recording, trial: int,
                     progress: Progress) -> None:
    """A lab process that died without the scenario killing it makes the trial's figures
    suspect: record it (the summary marks the trial) instead of measuring it as convergence."""
    expected: set[int] = set()
    for row in recording.events:
        if row["trial"] == trial and row["source"] == "injector":
            details = row.get("details", {})
            expected.update(details.get("killed_pids", []), details.get("stopped_pids", []))
    dead = [r for r in handle.state.processes if not is_alive(r)]
    for record in dead:
        if record.pid not in expected:
            progress(f"warning: {record.kind} on {record.node} (pid {record.pid}) died")
            recording.event(trial, "runner", "daemon_died", node=record.node,
                            daemon=record.kind, pid=record.pid)
    for record in dead:
        if record.pid in expected:
            handle.state.processes.remove(record)  # replaced by the fault's undo, or gone
    save_state(handle.state)


def _wait_recovered(handle: LabHandle, loaded: LoadedScenario, progress: Progress) -> None:
    report = handle.backend.wait_ready(handle.state, handle.plan,
                                       loaded.scenario.recover_timeout / 1000,
                                       lambda m: progress(f"recovering: {m}"))
    if not report.ready:
        raise BackendError("the lab did not recover between trials:\n" + report.explain())


def _versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            result = run(argv, timeout=10, check=False)
            return (result.stdout or result.stderr).strip().splitlines()[0]
        except (LabError, IndexError):
            return "unknown"

    return {"anycast_lab": __version__,
            "frr": first_line(["/usr/lib/frr/bgpd", "--version"]).split()[-1],
            "gobgp": first_line(["gobgpd", "--version"]).split()[-1],
            "kernel": platform.release(), "python": platform.python_version()}


def _run_meta(loaded: LoadedScenario, state: LabState, repeat: int, clock: dict[str, int],
              complete: bool, interrupted: bool) -> dict[str, Any]:
    plan, probe = loaded.plan, loaded.scenario.probe
    timers: dict[str, Any] = {}
    for node in plan.nodes:
        if node.timers is not None:
            timers.setdefault(node.site or "wan", json.loads(json.dumps(
                node.timers, default=lambda o: o.__dict__)))
    clients = [n.name for n in plan.nodes_with_role(Role.CLIENT)
               if probe.clients == "all" or n.name in probe.clients]
    return {
        "format": 1, "run_id": "", "lab": state.lab, "complete": complete,
        "interrupted": interrupted,
        "started_wall": datetime.fromtimestamp(clock["realtime_ns"] / 1e9, UTC).isoformat(),
        "clock": clock,
        "scenario": {"name": loaded.scenario.name, "description": loaded.scenario.description,
                     "file": str(loaded.file), "document": loaded.document},
        "topology": {"name": plan.topology, "file": str(loaded.topology_file),
                     "document": loaded.topology_document},
        "timers": timers,
        "probe": {"interval_ms": probe.interval, "flows": probe.flows, "rotate": probe.rotate,
                  "tcp_flows": probe.tcp_flows, "clients": clients,
                  "services": [s.name for s in plan.services
                               if probe.services == "all" or s.name in probe.services]},
        "trials": repeat, "versions": _versions(),
        "host": {"cores": os.cpu_count(), "impairment_driver": state.impairment_driver,
                 "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                    / 2**30, 1)},
    }


def _finish(loaded: LoadedScenario, state: LabState, recording: Recording, repeat: int,
            complete: bool, interrupted: bool, progress: Progress) -> dict[str, Any]:
    """Write every result file (even after an interruption) and rename the directory."""
    progress("writing the run directory")
    with _ignore_sigint():
        summary = pipeline.collect(loaded, state, recording, complete)
        meta = _run_meta(loaded, state, repeat, recording.clock, complete, interrupted)
        meta["run_id"] = recording.run_dir.name
        meta["evidence"] = recording.evidence
        meta["delay_calibration"] = recording.calibration
        recording.run_dir.write_json("run.json", meta)
        recording.run_dir.finalize()
    return summary


@contextlib.contextmanager
def _ignore_sigint() -> Any:
    """A second Ctrl-C must not leave a half-written run directory."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["RunOptions", "RunResult", "run_scenario"]
