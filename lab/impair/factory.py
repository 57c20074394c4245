"""Choosing an impairment driver."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lab.errors import ImpairmentError
from lab.impair.driver import ImpairmentDriver
from lab.impair.netem import NetemDriver, netem_available
from lab.impair.userspace import UserspaceDriver

DriverKind = Literal["auto", "netem", "userspace"]


def make_driver(kind: DriverKind, lab: str, state_dir: Path, hidden_netns: str) -> ImpairmentDriver:
    """The driver for ``kind``; ``auto`` takes netem when a probe shows the kernel has it.

    ``hidden_netns`` hosts the userspace emulator (created if missing, removed
    by ``close()``); the netem probe runs in a scratch namespace derived from it.
    """
    if kind == "auto":
        kind = "netem" if netem_available(f"{hidden_netns}-probe") else "userspace"
    if kind == "netem":
        if not netem_available(f"{hidden_netns}-probe"):
            raise ImpairmentError("driver netem requested, but this kernel has no sch_netem")
        return NetemDriver(lab, state_dir)
    if kind == "userspace":
        return UserspaceDriver(lab, state_dir, hidden_netns)
    raise ImpairmentError(f"unknown impairment driver {kind!r}: auto, netem or userspace")
