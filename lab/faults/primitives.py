"""Small actions on a running lab that faults are made of: interface state, silent drops,
process signals and restarts, FRR configuration changes, pod readiness flags. Every action on
a node goes through the lab's backend (lab.backend.protocol)."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.backend import daemons, workloads
from lab.backend.daemons import NodeFiles
from lab.backend.names import node_dir, pod_dir
from lab.backend.protocol import Backend
from lab.backend.state import LabState, ProcessRecord, save_state
from lab.errors import BackendError
from lab.faults.revisions import current_pod
from lab.impair import ImpairmentDriver
from lab.plan.model import LabPlan


@dataclass
class LabHandle:
    """A running lab as the fault catalogue and the runner see it: its state, plan and the
    backend that owns its nodes."""

    state: LabState
    plan: LabPlan
    backend: Backend
    _driver: ImpairmentDriver | None = field(default=None, repr=False)

    @property
    def lab(self) -> str:
        return self.state.lab

    def netns_path(self, node: str) -> Path:
        return self.backend.netns_path(self.state, node)

    def files(self, node: str) -> NodeFiles:
        return self.backend.router_files(self.state, node)

    def driver(self) -> ImpairmentDriver:
        if self._driver is None:
            self._driver = self.backend.impairment_driver(self.state)
        return self._driver

    def release(self) -> None:
        if self._driver is not None:
            self._driver.detach()
            self._driver = None

    def processes(self, node: str, kinds: Iterable[str] | None = None) -> list[ProcessRecord]:
        return self.backend.processes(self.state, node, kinds)

    def replace_process(self, old: ProcessRecord | None, new: ProcessRecord) -> None:
        if old is not None and old in self.state.processes:
            self.state.processes.remove(old)
        self.state.processes.append(new)
        save_state(self.state)


def set_link_state(handle: LabHandle, node: str, ifname: str, up: bool) -> None:
    set_links_state(handle, node, [ifname], up)


def set_links_state(handle: LabHandle, node: str, ifnames: Sequence[str], up: bool) -> None:
    handle.backend.set_links(handle.state, handle.plan, node, ifnames, up)


def set_blackhole(handle: LabHandle, node: str, ifname: str, on: bool) -> None:
    """Drop every frame in and out of an interface, silently (carrier stays up)."""
    handle.backend.set_blackhole(handle.state, node, ifname, on)


def signal_processes(handle: LabHandle, records: Iterable[ProcessRecord],
                     sig: signal.Signals) -> list[int]:
    return handle.backend.signal(records, sig)


def freeze(handle: LabHandle, nodes: Sequence[str]) -> list[int]:
    return handle.backend.freeze(handle.state, nodes)


def thaw(handle: LabHandle, nodes: Sequence[str]) -> list[int]:
    return handle.backend.thaw(handle.state, nodes)


def _start(handle: LabHandle, node: str, kind: str, argv: list[str], log: Path,
           old: ProcessRecord | None) -> ProcessRecord:
    record = handle.backend.start_in_node(handle.state, node, kind, argv, log)
    handle.replace_process(old, record)
    return record


def restart_frr_daemon(handle: LabHandle, node: str, daemon: str,
                       old: ProcessRecord | None) -> ProcessRecord:
    record = handle.backend.start_frr_daemon(handle.state, node, daemon)
    handle.replace_process(old, record)
    return record


def restart_gobgpd(handle: LabHandle, node: str, old: ProcessRecord | None,
                   restarting: bool = False) -> ProcessRecord:
    files = handle.files(node)
    return _start(handle, node, "gobgpd", daemons.gobgpd_argv(files, restarting),
                  files.log("gobgpd"), old)


def restart_agent(handle: LabHandle, node: str, old: ProcessRecord | None) -> ProcessRecord:
    folder = node_dir(handle.state.directory, node)
    return _start(handle, node, "agent",
                  handle.backend.app_argv("agent", folder / "agent.json"),
                  folder / "agent.log", old)


def restart_server(handle: LabHandle, pod: str, old: ProcessRecord | None) -> ProcessRecord:
    folder = pod_dir(handle.state.directory, pod)
    return _start(handle, pod, "server",
                  handle.backend.app_argv("server", folder / "server.json"),
                  folder / "server.log", old)


def restart_workloads(handle: LabHandle, pod: str) -> list[ProcessRecord]:
    """The pod's own servers (a service's ``workload:``), started again and recorded: those of
    the pod the slot holds now (after rolling updates, lab.faults.revisions)."""
    now, revision = current_pod(handle.plan, handle.state.directory, pod)
    started = workloads.start_pod(handle.backend, handle.state, handle.plan, now, revision)
    for record in started:
        handle.replace_process(None, record)
    return started


def vtysh_configure(handle: LabHandle, node: str, *lines: str) -> None:
    output = handle.backend.vtysh(handle.state, node, ["configure terminal", *lines])
    if "% " in output:
        raise BackendError(f"FRR on {node} refused {list(lines)}: {output.strip()}")


def vtysh_exec(handle: LabHandle, node: str, *commands: str) -> None:
    handle.backend.vtysh(handle.state, node, list(commands))


def unready_flag(handle: LabHandle, pod: str) -> Path:
    return pod_dir(handle.state.directory, pod) / "unready"
