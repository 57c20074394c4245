"""Remove a lab: its processes (by recorded PID, then by tag), namespaces (by the lab's name
prefix) and state directory. Idempotent; ``force`` works without a readable state file."""

from __future__ import annotations

import shutil

from lab.backend.names import lab_dir
from lab.backend.netns.names import lab_namespaces
from lab.backend.processes import stop_pids, stop_records, tagged_pids
from lab.backend.protocol import TeardownReport
from lab.backend.state import LabPhase, load_state, save_state
from lab.errors import BackendError, CommandError
from lab.proc import run

STOP_GRACE_S = 0.3
LEFTOVER_PASSES = 3


def destroy(lab: str, force: bool = False) -> TeardownReport:
    directory = lab_dir(lab)
    records = []
    try:
        state = load_state(lab)
        state.phase = LabPhase.DESTROYING
        save_state(state)
        records = state.processes
    except BackendError:
        if directory.exists() and not force:
            raise
    namespaces = lab_namespaces(lab)
    pids = tagged_pids(lab)
    report = TeardownReport(lab, existed=bool(directory.exists() or namespaces or pids))
    if not report.existed:
        return report
    # A short grace: the lab is being destroyed, nothing of it needs a clean shutdown.
    killed = stop_records(records, grace_s=STOP_GRACE_S)
    # Tagged processes outside the records (an interrupted up), and children that a stopping
    # process started during its grace period: a few passes until none is left.
    leftover_pids: set[int] = set()
    for _ in range(LEFTOVER_PASSES):
        found = tagged_pids(lab)
        if not found:
            break
        leftover_pids |= set(found)
        killed += stop_pids(found, grace_s=STOP_GRACE_S)
    report.processes = len({r.pid for r in records} | set(pids) | leftover_pids)
    report.killed = len(killed)
    _remove_namespaces(namespaces)
    report.namespaces = len(namespaces)
    shutil.rmtree(directory, ignore_errors=True)
    report.leftovers = _leftovers(lab)
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
