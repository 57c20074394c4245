"""The persisted state of a lab: what exists, which processes run, where files are.

Written atomically (lab.atomicfile) and readable by root only. ``down`` works from
this file; ``down --force`` works without it, from namespace names and process tags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lab.atomicfile import write_atomic
from lab.backend.names import lab_dir
from lab.errors import BackendError

STATE_FILE = "state.json"
TOPOLOGY_COPY = "topology.yaml"  # the file as deployed; status and runs re-plan from it
PRIVATE_UMASK = 0o077  # the lab's files, and those of every process it starts: root only


class LabPhase(StrEnum):
    """Where a lab is in its life (state.json keeps the value)."""

    DEPLOYING = "deploying"  # being built (an interrupted `up` leaves this)
    DEPLOYED = "deployed"  # built; readiness not known yet
    READY = "ready"  # every session up, every client answered
    NOT_READY = "not-ready"  # built, but not ready in time (kept with --keep-on-failure)
    DESTROYING = "destroying"  # being removed


@dataclass
class ProcessRecord:
    pid: int
    node: str
    kind: str  # zebra, bgpd, gobgpd, agent, server, emulator, ...
    start_ticks: int  # /proc/PID/stat field 22: tells a reused PID from ours


@dataclass
class LabState:
    lab: str
    topology_file: str
    topology: str
    phase: LabPhase
    created_wall: str
    backend: str = "netns"
    impairment_driver: str = ""
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    # sessions whose BFD readiness still has to switch on (lab.backend.bfdstart)
    bfd_pending: list[str] = field(default_factory=list)
    # routers still running their boot configuration (lab.backend.bfdstart)
    boot_pending: list[str] = field(default_factory=list)
    # its processes start through mergeexec (lab.backend.memmerge)
    merge_memory: bool = False

    @property
    def directory(self) -> Path:
        return lab_dir(self.lab)

    def to_json(self) -> str:
        # vars() instead of dataclasses.asdict: this is written a dozen times per `up`
        data = {**vars(self), "processes": [vars(p) for p in self.processes]}
        return json.dumps(data, sort_keys=True)  # no indent: the C encoder (written often)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        processes = [ProcessRecord(**p) for p in data.pop("processes", [])]
        phase = LabPhase(data.pop("phase"))
        return cls(**data, phase=phase, processes=processes)


def save_state(state: LabState) -> None:
    write_atomic(state.directory / STATE_FILE, state.to_json())


def load_state(lab: str) -> LabState:
    path = lab_dir(lab) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LabState.from_dict(data)
    except FileNotFoundError:
        raise BackendError(f"no lab named {lab!r} (no {path})") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BackendError(f"the state of lab {lab!r} is unreadable ({exc}); "
                           f"`anylab down --name {lab} --force` removes it") from exc


def mark_destroying(lab: str, force: bool) -> list[ProcessRecord]:
    """Mark the lab as being removed; its recorded processes. Without a readable state that
    is an error, unless ``force`` (then the lab is found by its names and tags alone)."""
    try:
        state = load_state(lab)
    except BackendError:
        if lab_dir(lab).exists() and not force:
            raise
        return []
    state.phase = LabPhase.DESTROYING
    save_state(state)
    return state.processes
