"""Lab life cycle for the CLI and the scenario runner: up, down, status, which labs exist.

A lab is acted on through the backend its state names (``LabState.backend``); a new lab
through the one asked for (the default: netns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lab import pipeline
from lab.backend import DEFAULT_BACKEND, backend_named
from lab.backend.evidence import new_evidence_dir
from lab.backend.names import check_lab_name, lab_dir, state_labs
from lab.backend.protocol import Backend, TeardownReport
from lab.backend.ready import ReadyReport
from lab.backend.state import TOPOLOGY_COPY, LabPhase, LabState, load_state, save_state
from lab.errors import BackendError, LabError
from lab.measure.calibrate import Calibration, calibrate_delays
from lab.plan.model import LabPlan

DEFAULT_READY_TIMEOUT_S = 120.0
# whose labs `list` and `down` look for
MACHINE_BACKENDS = (DEFAULT_BACKEND, "containerlab", "mininet")


@dataclass
class UpResult:
    state: LabState
    plan: LabPlan
    report: ReadyReport
    backend: Backend
    kept: bool = True  # False: the lab was not ready and has been removed (evidence kept)
    calibration: Calibration | None = None  # the delays' calibration (lab.measure.calibrate)


def default_backend() -> Backend:
    return backend_named(DEFAULT_BACKEND)


def backend_for(state: LabState) -> Backend:
    """The backend that built this lab."""
    return backend_named(state.backend)


def up(topology_file: Path, name: str | None, progress: Callable[[str], None],
       timeout_s: float = DEFAULT_READY_TIMEOUT_S, driver: str | None = None,
       backend: Backend | None = None, keep_on_failure: bool = False,
       calibrate: bool = True, merge_memory: bool = False) -> UpResult:
    """Build the lab (on ``backend``, else the one the topology's defaults name) and wait
    until it is ready. When the timeout passes first, the report
    says what is not ready in the daemons' words, the lab's files and views are kept in an
    evidence directory (``report.evidence``), and the lab is removed unless
    ``keep_on_failure``. A failed deploy keeps its evidence too (named in the error). A ready
    lab's emulated delays are then calibrated (``calibrate``; lab.measure.calibrate).
    ``merge_memory``: the lab's processes share their like pages (lab.backend.memmerge;
    the netns backend only)."""
    plan, rendered = pipeline.render(topology_file)
    backend = backend or backend_named(plan.backend)
    if merge_memory:
        if backend.name != "netns":
            raise BackendError(f"--merge-memory works with the netns backend only, not "
                               f"{backend.name!r}")
        plan = replace(plan, merge_memory=True)
    lab = check_lab_name(name or plan.topology)
    ours = not lab_dir(lab).exists()  # else the deploy refuses: another lab has the name
    deployed = False
    try:
        state = pipeline.deploy(backend, lab, plan, rendered, topology_file, progress, driver)
        deployed = True
        # the delays are calibrated as soon as every client is answered, while routing
        # finishes settling and BFD comes up
        calibration: list[Calibration | None] = []
        report = pipeline.ready(backend, state, plan, timeout_s, progress, when_answered=(
            (lambda: calibration.append(calibrate_delays_of(backend, state, plan, progress)))
            if calibrate else None))
    except BaseException as exc:
        # Ctrl-C while waiting, as during the build, removes the lab. A failed deploy has
        # removed what it built; an interrupt can also land just after the deploy's own
        # clean-up stopped covering it (the lab is built and not yet handed over).
        interrupted_build = not deployed and not isinstance(exc, LabError)
        if ours and (interrupted_build or (deployed and not keep_on_failure)):
            progress("interrupted: removing the lab")
            backend.destroy(lab, force=True)
        raise
    state.phase = LabPhase.READY if report.ready else LabPhase.NOT_READY
    save_state(state)
    if report.ready:
        return UpResult(state, plan, report, backend,
                        calibration=calibration[0] if calibration else None)
    progress("not ready: keeping the evidence")
    why = f"`up` was not ready after {report.elapsed_s:.1f} s:\n{report.explain()}"
    report.evidence = backend.keep_evidence(state, plan, new_evidence_dir(lab, "not-ready"),
                                            why)
    if not keep_on_failure:
        progress("not ready: removing the lab")
        backend.destroy(lab, force=True)
    return UpResult(state, plan, report, backend, kept=keep_on_failure)


def calibrate_delays_of(backend: Backend, state: LabState, plan: LabPlan,
                        progress: Callable[[str], None]) -> Calibration | None:
    """Take the lab's own forwarding cost off its emulated delays (lab.measure.calibrate);
    None when the lab has no userspace emulator (netem) or nothing to calibrate."""
    from lab.impair.userspace import UserspaceDriver

    if not any(r.kind == "emulator" for r in state.processes):
        return None
    driver = backend.impairment_driver(state)
    try:
        if not isinstance(driver, UserspaceDriver):
            return None
        progress("calibrating the emulated delays")
        return calibrate_delays(
            plan, driver,
            lambda client: lambda argv, log: backend.spawn(state, client, "prober", argv, log),
            state.directory / "calibration")
    finally:
        driver.detach()  # the emulator and its links keep running


def resolve_name(name: str | None) -> str:
    """The lab to act on: the one named, or the only one on this machine."""
    if name is not None:
        return check_lab_name(name)
    labs = all_labs()
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise BackendError("no lab is running on this machine; start one with `anylab up FILE`")
    raise BackendError(f"several labs run here ({', '.join(labs)}); choose one with --name")


def plan_of(state: LabState) -> LabPlan:
    return pipeline.plan(state.directory / TOPOLOGY_COPY)


def all_labs() -> list[str]:
    """Labs on this machine: with a state directory, or found by a backend (namespaces,
    containers) without one."""
    names = set(state_labs())
    for backend in MACHINE_BACKENDS:
        names |= set(backend_named(backend).labs())
    return sorted(names)


def down(name: str | None, force: bool = False,
         backend: Backend | None = None) -> TeardownReport:
    """Remove a lab through the backend its state names; without a readable state (force),
    through every backend of this machine, each finding what is left of it by the lab's
    name, labels and tags."""
    lab = check_lab_name(name) if name else resolve_name(None)
    if backend is not None:
        return backend.destroy(lab, force)
    try:
        return backend_for(load_state(lab)).destroy(lab, force)
    except BackendError:
        if not force:
            return default_backend().destroy(lab, force)
    reports = [backend_named(b).destroy(lab, force=True) for b in MACHINE_BACKENDS]
    merged = TeardownReport(lab, existed=any(r.existed for r in reports))
    for report in reports:
        merged.processes += report.processes
        merged.killed += report.killed
        merged.namespaces += report.namespaces
        if report.namespaces:
            merged.units = report.units
        merged.leftovers += report.leftovers
    return merged


def status(name: str | None, backend: Backend | None = None) -> dict[str, Any]:
    state = load_state(resolve_name(name))
    return (backend or backend_for(state)).status(state, plan_of(state))


def list_labs() -> list[dict[str, Any]]:
    labs = []
    for lab in all_labs():
        try:
            state = load_state(lab)
            labs.append({"lab": lab, "topology": state.topology, "backend": state.backend,
                         "phase": state.phase, "created": state.created_wall,
                         "processes": len(state.processes)})
        except BackendError:
            labs.append({"lab": lab, "topology": None, "backend": None,
                         "phase": "broken (no state)", "created": None, "processes": 0})
    return labs
