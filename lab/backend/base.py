"""The backend interface: what the CLI and the scenario runner need from a lab builder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lab.backend.ready import ReadyReport
from lab.backend.state import LabState
from lab.backend.teardown import TeardownReport
from lab.plan import LabPlan
from lab.render import RenderedLab

Progress = Callable[[str], None]


class Backend(Protocol):
    name: str

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState: ...

    def wait_ready(self, state: LabState, plan: LabPlan, timeout_s: float,
                   progress: Progress) -> ReadyReport: ...

    def destroy(self, lab: str, force: bool = False) -> TeardownReport: ...

    def status(self, state: LabState, plan: LabPlan) -> dict[str, Any]: ...

    def exec_argv(self, lab: str, node: str, argv: list[str]) -> list[str]: ...

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path: ...


class NetnsBackend:
    """Network namespaces, FRR, GoBGP and nftables on this machine (the default)."""

    name = "netns"

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState:
        from lab.backend.deploy import deploy

        return deploy(lab, plan, rendered, topology_file, progress, driver_kind)

    def wait_ready(self, state: LabState, plan: LabPlan, timeout_s: float,
                   progress: Progress) -> ReadyReport:
        from lab.backend.ready import wait_ready

        return wait_ready(state, plan, timeout_s, progress)

    def destroy(self, lab: str, force: bool = False) -> TeardownReport:
        from lab.backend.teardown import destroy

        return destroy(lab, force)

    def status(self, state: LabState, plan: LabPlan) -> dict[str, Any]:
        from lab.backend.inspect import status_document

        return status_document(state, plan)

    def exec_argv(self, lab: str, node: str, argv: list[str]) -> list[str]:
        from lab.backend.names import NETNS_DIR, netns_name
        from lab.backend.processes import NSENTER

        return [NSENTER, f"--net={NETNS_DIR / netns_name(lab, node)}", "--", *argv]

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path:
        from lab.backend.evidence import keep_evidence

        status = (lambda: self.status(state, plan)) if plan is not None else None
        return keep_evidence(state, plan, folder, why, status)
