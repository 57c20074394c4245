"""The user's own servers in the pods (a service's ``workload:``, lab.topology.workload).

Every pod of such a service gets a folder of its own (``pods/POD/workload/SERVICE``) with the
service's files, placeholders replaced for that pod, and runs the command there, in the pod,
tagged with the lab like every process of it (kind ``workload``). The built-in server keeps
answering the pod's health port and the services without a workload; the node's agent decides
readiness with the workload's own check (lab.apps.agent.checks).

A rolling update (lab.faults.rollout) replaces a pod by a new one in the same slot: it gets a
folder of its own per service (``SERVICE.rN``, N its revision: a dot no name may hold), its
own name and address in the placeholders, and runs beside the old pod until that one goes.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lab.atomicfile import write_atomic
from lab.backend.names import pod_dir
from lab.backend.processes import is_alive
from lab.backend.state import LabState, ProcessRecord, save_state
from lab.errors import BackendError
from lab.plan.model import LabPlan, PodPlan, ServicePlan, WorkloadPlan
from lab.plan.naming import pod_instance_name
from lab.topology.workload import substitute

KIND = "workload"
LOG_TAIL_LINES = 15
PROBLEMS_SHOWN = 3  # workloads shown with their output; the others by name


class Spawning(Protocol):
    def start_in_node(self, state: LabState, node: str, kind: str, argv: Sequence[str],
                      log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord: ...


def pod_folder(lab_directory: Path, pod: str) -> Path:
    """The folder of the pod's workloads (one folder per service below it)."""
    return pod_dir(lab_directory, pod) / "workload"


def folder(lab_directory: Path, pod: str, service: str, revision: int = 1) -> Path:
    """The service's folder in the pod (``pod``: its slot) at ``revision``."""
    name = service if revision == 1 else f"{service}.r{revision}"
    return pod_folder(lab_directory, pod) / name


def log_path(lab_directory: Path, pod: str, service: str, revision: int = 1) -> Path:
    return folder(lab_directory, pod, service, revision) / "output.log"


def placeholders(lab_directory: Path, pod: PodPlan, service: ServicePlan,
                 revision: int = 1) -> dict[str, str]:
    """What ``{site}`` ... ``{dir}`` stand for in this pod; after a rolling update ``pod`` is
    its slot with the new pod's addresses, at the new ``revision``."""
    return {"site": pod.site, "cluster": pod.cluster, "node": pod.node,
            "pod": pod_instance_name(pod.name, revision),
            "address": str(pod.address.ip),
            "address6": str(pod.address6.ip) if pod.address6 is not None else "",
            "port": str(service.port), "service": service.name,
            "dir": str(folder(lab_directory, pod.name, service.name, revision))}


def pod_workloads(plan: LabPlan, pod: PodPlan) -> list[tuple[ServicePlan, WorkloadPlan]]:
    """The services with a workload that this pod serves."""
    return [(s, s.workload) for s in plan.services_of_cluster(pod.cluster)
            if s.workload is not None]


def write_files(lab_directory: Path, plan: LabPlan) -> None:
    """Every pod's workload files, placeholders replaced."""
    for pod in plan.pods():
        write_pod_files(lab_directory, plan, pod)


def write_pod_files(lab_directory: Path, plan: LabPlan, pod: PodPlan, revision: int = 1) -> None:
    """One pod's workload files, placeholders replaced."""
    for service, workload in pod_workloads(plan, pod):
        values = placeholders(lab_directory, pod, service, revision)
        here = folder(lab_directory, pod.name, service.name, revision)
        here.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, text in workload.files:
            write_atomic(here / name, substitute(text, values))


def command_line(lab_directory: Path, pod: PodPlan, service: ServicePlan,
                 workload: WorkloadPlan, revision: int = 1) -> tuple[list[str], dict[str, str]]:
    values = placeholders(lab_directory, pod, service, revision)
    return ([substitute(arg, values) for arg in workload.command],
            {key: substitute(value, values) for key, value in workload.env})


def packages(plan: LabPlan) -> tuple[str, ...]:
    """The Debian packages the services' workloads need (``workload.packages``)."""
    return tuple(sorted({p for s in plan.services if s.workload is not None
                         for p in s.workload.packages}))


def missing_programs(plan: LabPlan) -> list[str]:
    """What keeps the services' workloads from starting on this machine (their pods share
    its files): each command whose program is not installed, with a hint."""
    problems = []
    for service in plan.services:
        if service.workload is None:
            continue
        program = service.workload.command[0]
        if "{" not in program and shutil.which(program) is None:
            install = (f"`apt-get install {' '.join(service.workload.packages)}`"
                       if service.workload.packages else "install it")
            problems.append(f"the workload of service {service.name} runs {program!r}, which "
                            f"is not installed on this machine (give its full path, or "
                            f"{install}; the shipped examples' programs: `sudo make "
                            "examples-setup`)")
    return problems


def start_pod(backend: Spawning, state: LabState, plan: LabPlan, pod: PodPlan,
              revision: int = 1) -> list[ProcessRecord]:
    """Start the pod's workloads (not recorded: the caller does); ``pod`` and ``revision`` as
    for ``placeholders``."""
    started = []
    for service, workload in pod_workloads(plan, pod):
        argv, env = command_line(state.directory, pod, service, workload, revision)
        try:
            started.append(backend.start_in_node(
                state, pod.name, KIND, argv,
                log_path(state.directory, pod.name, service.name, revision), env))
        except BackendError as exc:
            raise BackendError(
                f"the workload of service {service.name} did not start in pod {pod.name}: "
                f"{exc}; command: {' '.join(argv)} (hint: check the service's "
                "`workload.command`: the program must be installed on this machine)") from exc
    return started


def start_all(backend: Spawning, state: LabState, plan: LabPlan) -> None:
    """Every pod's workloads, recorded in the lab's state."""
    for pod in plan.pods():
        state.processes.extend(start_pod(backend, state, plan, pod))
    save_state(state)


def agent_checks(lab_directory: Path, plan: LabPlan, pod: PodPlan,
                 revision: int = 1) -> list[dict[str, Any]]:
    """The readiness checks of the pod's workloads, as the agent's spec lists them (an exec
    check's command with the pod's placeholders replaced); ``pod`` and ``revision`` as for
    ``placeholders``."""
    checks = []
    for service, workload in pod_workloads(plan, pod):
        check = workload.readiness
        values = placeholders(lab_directory, pod, service, revision)
        checks.append({"service": service.name, "kind": check.kind, "port": check.port}
                      | ({"path": check.path} if check.kind == "http" else {})
                      | ({"name": check.name, "rr_type": check.rr_type}
                         if check.kind == "dns" else {})
                      | ({"send": check.send} if check.kind == "udp" else {})
                      | ({"command": [substitute(a, values) for a in check.command]}
                         if check.kind == "exec" else {}))
    return checks


def problems(state: LabState, plan: LabPlan, unready: Mapping[str, str],
             shown: int = PROBLEMS_SHOWN) -> list[str]:
    """Why pods' own servers keep the lab from being ready: each workload that exited or
    whose pod is unready (``unready``: pod -> its last probe's result), with its command and
    the last lines of its output (for the first ``shown``), and a hint."""
    dead = {r.node for r in state.processes if r.kind == KIND and not is_alive(r)}
    found: list[str] = []
    for pod in plan.pods():
        for service, workload in pod_workloads(plan, pod):
            if pod.name in dead:
                what = "exited"
            elif pod.name in unready:
                what = f"is not ready (its check: {unready[pod.name]})"
            else:
                continue
            argv, _env = command_line(state.directory, pod, service, workload)
            text = f"pod {pod.name}: the workload of service {service.name} {what}"
            if len(found) < shown:
                tail = log_tail(state.directory, pod.name, service.name)
                text += (f"\n    command: {' '.join(argv)}\n    last output "
                         f"({log_path(state.directory, pod.name, service.name)}):\n"
                         + ("\n".join(f"      {line}" for line in tail) or "      (none)"))
            found.append(text)
    if found:
        found.append("hint: run the command by hand in a pod (`anylab exec POD -- COMMAND`) "
                     "and check the service's `workload:` files and readiness check")
    return found


def log_tail(lab_directory: Path, pod: str, service: str,
             lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines a pod's workload wrote (empty when it wrote nothing)."""
    try:
        text = log_path(lab_directory, pod, service).read_text(encoding="utf-8",
                                                               errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


__all__ = ["KIND", "agent_checks", "command_line", "folder", "log_path", "log_tail",
           "missing_programs", "packages", "placeholders", "pod_folder", "pod_workloads",
           "problems", "start_all", "start_pod", "write_files", "write_pod_files"]
