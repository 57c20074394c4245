"""Remove a lab: its processes (by recorded PID, then by tag), namespaces (by the lab's name
prefix) and state directory. Idempotent; ``force`` works without a readable state file."""

from __future__ import annotations

import shutil
import time

from lab.backend.names import lab_dir
from lab.backend.netns.names import lab_namespaces
from lab.backend.processes import stop_lab_processes, tagged_pids
from lab.backend.protocol import TeardownReport
from lab.backend.state import mark_destroying
from lab.errors import BackendError, CommandError
from lab.proc import run

STOP_GRACE_S = 0.3
# passes over what is left, for what an interrupted `up` was still making
PASSES = 3
RETRY_S = 0.2


def destroy(lab: str, force: bool = False) -> TeardownReport:
    directory = lab_dir(lab)
    records = mark_destroying(lab, force)
    namespaces = lab_namespaces(lab)
    pids = tagged_pids(lab)
    report = TeardownReport(lab, existed=bool(directory.exists() or namespaces or pids))
    if not report.existed:
        return report
    removed: set[str] = set()
    for _ in range(PASSES):
        # A short grace: the lab is being destroyed, nothing of it needs a clean shutdown.
        processes, killed = stop_lab_processes(lab, records, STOP_GRACE_S)
        report.processes += processes
        report.killed += killed
        records = []
        _remove_namespaces(namespaces)
        removed |= set(namespaces)
        shutil.rmtree(directory, ignore_errors=True)
        report.leftovers = _leftovers(lab)
        if not report.leftovers:
            break
        # something of an interrupted `up` was still at work (a process between fork and
        # the tag check, a namespace made after the listing, a file written into the folder)
        time.sleep(RETRY_S)
        namespaces = lab_namespaces(lab)
    report.namespaces = len(removed)
    return report


def _remove_namespaces(names: list[str]) -> None:
    if not names:
        return
    batch = "".join(f"netns del {name}\n" for name in names)
    try:
        run(["ip", "-force", "-batch", "-"], input_text=batch, timeout=60, check=False)
    except CommandError as exc:
        raise BackendError(f"cannot remove namespaces: {exc}") from exc


def _leftovers(lab: str) -> list[str]:
    left = [f"namespace {n}" for n in lab_namespaces(lab)]
    left += [f"process {p}" for p in tagged_pids(lab)]
    if lab_dir(lab).exists():
        left.append(f"directory {lab_dir(lab)}")
    return left
