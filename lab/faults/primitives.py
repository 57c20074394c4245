"""Small actions on a running lab that faults are made of: interface state, silent drops,
process signals and restarts, FRR configuration changes, pod readiness flags. Every action on
a node goes through the lab's backend (lab.backend.protocol)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.atomicfile import write_atomic
from lab.backend import daemons, workloads
from lab.backend.daemons import NodeFiles
from lab.backend.inspect import agent_status
from lab.backend.names import node_dir, pod_dir
from lab.backend.protocol import Backend
from lab.backend.state import LabState, ProcessRecord, save_state
from lab.errors import BackendError
from lab.faults.revisions import current_pod
from lab.impair import ImpairmentDriver
from lab.plan.model import LabPlan
from lab.proc import run
from lab.render.configs import render_gobgpd_toml

# How long a restarted gobgpd's sessions wait for its agent's announcements at most
ANNOUNCE_WAIT_S = 10.0


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
    """gobgpd started again; ``restarting`` (graceful restart): with its sessions held down
    until ``open_gobgp_sessions``."""
    files = handle.files(node)
    if restarting:
        write_atomic(files.gobgpd_restart_toml,
                     render_gobgpd_toml(handle.plan, handle.plan.node(node), sessions_down=True))
    return _start(handle, node, "gobgpd", daemons.gobgpd_argv(files, restarting),
                  files.log("gobgpd"), old)


def gobgp(handle: LabHandle, node: str, *args: str) -> str:
    """The gobgp CLI against the node's gobgpd."""
    host, port = daemons.GOBGP_API.rsplit(":", 1)
    argv = [daemons.GOBGP, "-u", host, "-p", port, *args]
    return run(handle.backend.exec_argv(handle.state, node, argv), timeout=10).stdout


def announced_vips(handle: LabHandle, node: str) -> list[str]:
    """The VIPs the node's agent announces, as its status file says (no call to the node)."""
    return [str(vip) for vip in agent_status(handle.state, node).get("announced", [])]


def open_gobgp_sessions(handle: LabHandle, node: str, announced: Iterable[str],
                        agent_started_ns: int, wait_s: float = ANNOUNCE_WAIT_S) -> float:
    """Enable the sessions of a gobgpd restarted gracefully once its new agent (started at
    ``agent_started_ns``) has announced ``announced`` again (its status file, written after it
    has handed them to gobgpd), or after ``wait_s``: a gobgpd that sends its End-of-RIB before
    them has the leafs drop the routes they kept as stale. Returns the seconds it waited."""
    wanted, start = set(announced), time.monotonic()
    while time.monotonic() - start < wait_s:
        status = agent_status(handle.state, node)
        if status.get("t_ns", 0) >= agent_started_ns \
                and wanted <= {str(v) for v in status.get("announced", [])}:
            break
        time.sleep(0.02)
    waited = time.monotonic() - start
    for session in handle.plan.sessions_of(node):
        _, _, _, _, peer_address, _ = session.side(node)
        gobgp(handle, node, "neighbor", str(peer_address), "enable")
    return waited


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
