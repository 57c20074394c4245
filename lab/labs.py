"""Lab life cycle for the CLI and the scenario runner: up, down, status, which labs exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import pipeline
from lab.backend import Backend, NetnsBackend
from lab.backend.deploy import TOPOLOGY_COPY
from lab.backend.evidence import new_evidence_dir
from lab.backend.names import all_lab_names, check_lab_name
from lab.backend.ready import ReadyReport
from lab.backend.state import LabState, load_state, save_state
from lab.backend.teardown import TeardownReport
from lab.errors import BackendError
from lab.plan import LabPlan

DEFAULT_READY_TIMEOUT_S = 120.0


@dataclass
class UpResult:
    state: LabState
    plan: LabPlan
    report: ReadyReport
    kept: bool = True  # False: the lab was not ready and has been removed (evidence kept)


def default_backend() -> Backend:
    return NetnsBackend()


def up(topology_file: Path, name: str | None, progress: Callable[[str], None],
       timeout_s: float = DEFAULT_READY_TIMEOUT_S, driver: str | None = None,
       backend: Backend | None = None, keep_on_failure: bool = False) -> UpResult:
    """Build the lab and wait until it is ready. When the timeout passes first, the report
    says what is not ready in the daemons' words, the lab's files and views are kept in an
    evidence directory (``report.evidence``), and the lab is removed unless
    ``keep_on_failure``. A failed deploy keeps its evidence too (named in the error)."""
    backend = backend or default_backend()
    plan, rendered = pipeline.render(topology_file)
    lab = check_lab_name(name or plan.topology)
    state = backend.deploy(lab, plan, rendered, topology_file, progress, driver)
    report = backend.wait_ready(state, plan, timeout_s, progress)
    state.phase = "ready" if report.ready else "not-ready"
    save_state(state)
    if report.ready:
        return UpResult(state, plan, report)
    progress("not ready: keeping the evidence")
    why = f"`up` was not ready after {report.elapsed_s:.1f} s:\n{report.explain()}"
    report.evidence = backend.keep_evidence(state, plan, new_evidence_dir(lab, "not-ready"),
                                            why)
    if not keep_on_failure:
        progress("not ready: removing the lab")
        backend.destroy(lab, force=True)
    return UpResult(state, plan, report, kept=keep_on_failure)


def resolve_name(name: str | None) -> str:
    """The lab to act on: the one named, or the only one on this machine."""
    if name is not None:
        return check_lab_name(name)
    labs = all_lab_names()
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise BackendError("no lab is running on this machine; start one with `anylab up FILE`")
    raise BackendError(f"several labs run here ({', '.join(labs)}); choose one with --name")


def plan_of(state: LabState) -> LabPlan:
    return pipeline.plan(state.directory / TOPOLOGY_COPY)


def down(name: str | None, force: bool = False,
         backend: Backend | None = None) -> TeardownReport:
    backend = backend or default_backend()
    lab = check_lab_name(name) if name else resolve_name(None)
    return backend.destroy(lab, force)


def status(name: str | None, backend: Backend | None = None) -> dict[str, Any]:
    backend = backend or default_backend()
    state = load_state(resolve_name(name))
    return backend.status(state, plan_of(state))


def list_labs() -> list[dict[str, Any]]:
    labs = []
    for lab in all_lab_names():
        try:
            state = load_state(lab)
            labs.append({"lab": lab, "topology": state.topology, "phase": state.phase,
                         "created": state.created_wall, "processes": len(state.processes)})
        except BackendError:
            labs.append({"lab": lab, "topology": None, "phase": "broken (no state)",
                         "created": None, "processes": 0})
    return labs
