"""Small actions on a running lab that faults are made of: interface state, silent drops,
process signals and restarts, FRR configuration changes, pod readiness flags."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lab.backend import daemons
from lab.backend.daemons import NodeFiles
from lab.backend.names import NETNS_DIR, mac_address, netns_name
from lab.backend.processes import NSENTER, is_alive, spawn
from lab.backend.runtime_specs import node_dir, pod_dir
from lab.backend.state import LabState, ProcessRecord, save_state
from lab.errors import BackendError
from lab.impair import ImpairmentDriver, make_driver
from lab.impair.errors import ImpairmentError
from lab.plan import LabPlan
from lab.proc import run

NFT = "/usr/sbin/nft"
FAULT_CMD_TIMEOUT_S = 15.0


@dataclass
class LabHandle:
    """A running lab as the fault catalogue sees it."""

    state: LabState
    plan: LabPlan
    _driver: ImpairmentDriver | None = field(default=None, repr=False)

    @property
    def lab(self) -> str:
        return self.state.lab

    def netns(self, node: str) -> str:
        return netns_name(self.lab, node)

    def files(self, node: str) -> NodeFiles:
        return NodeFiles(node_dir(self.state.directory, node))

    def driver(self) -> ImpairmentDriver:
        if self._driver is None:
            try:
                kind = self.state.impairment_driver
                self._driver = make_driver("netem" if kind == "netem" else "userspace",
                                           self.lab, self.state.directory,
                                           netns_name(self.lab, "_emu"))
            except ImpairmentError as exc:
                raise BackendError(f"impairment layer: {exc}") from exc
        return self._driver

    def release(self) -> None:
        if self._driver is not None:
            self._driver.detach()
            self._driver = None

    def processes(self, node: str, kinds: Iterable[str] | None = None) -> list[ProcessRecord]:
        wanted = set(kinds) if kinds is not None else None
        return [r for r in self.state.processes
                if r.node == node and (wanted is None or r.kind in wanted) and is_alive(r)]

    def replace_process(self, old: ProcessRecord | None, new: ProcessRecord) -> None:
        if old is not None and old in self.state.processes:
            self.state.processes.remove(old)
        self.state.processes.append(new)
        save_state(self.state)


def set_link_state(handle: LabHandle, node: str, ifname: str, up: bool) -> None:
    run(["ip", "-n", handle.netns(node), "link", "set", "dev", ifname, "up" if up else "down"],
        timeout=FAULT_CMD_TIMEOUT_S)
    if up:
        restore_static_routes(handle, node, ifname)
        restore_neighbours(handle, node, ifname)


def restore_neighbours(handle: LabHandle, node: str, ifname: str) -> None:
    """An interface set down loses its permanent neighbour entries (lab.backend.netspec
    explains why the lab has them); put them back when it comes up."""
    for interface in handle.plan.node(node).interfaces:
        if interface.name == ifname:
            mac = mac_address(handle.lab, interface.peer, interface.peer_ifname)
            run(["ip", "-n", handle.netns(node), "neigh", "replace",
                 str(interface.peer_address), "lladdr", mac, "dev", ifname, "nud", "permanent"],
                timeout=FAULT_CMD_TIMEOUT_S)


def restore_static_routes(handle: LabHandle, node: str, ifname: str) -> None:
    """The kernel deletes static routes through an interface that goes down; put the plan's
    back when it comes up, as a host's network configuration would."""
    for route in handle.plan.node(node).routes:
        if route.dev == ifname:
            run(["ip", "-n", handle.netns(node), "route", "replace", str(route.prefix), "via",
                 str(route.via), "dev", route.dev], timeout=FAULT_CMD_TIMEOUT_S)


def _blackhole_table(ifname: str) -> str:
    return "anylab_bh_" + re.sub(r"[^A-Za-z0-9_]", "_", ifname)


def set_blackhole(handle: LabHandle, node: str, ifname: str, on: bool) -> None:
    """Drop every frame in and out of an interface, silently (carrier stays up)."""
    table = _blackhole_table(ifname)
    if on:
        rules = (f"table netdev {table} {{\n"
                 f"  chain ingress {{ type filter hook ingress device \"{ifname}\" priority -500;"
                 " policy drop; }\n"
                 f"  chain egress {{ type filter hook egress device \"{ifname}\" priority -500;"
                 " policy drop; }\n}\n")
    else:
        rules = f"delete table netdev {table}\n"
    run([NSENTER, f"--net={NETNS_DIR / handle.netns(node)}", "--", NFT, "-f", "-"],
        input_text=rules, timeout=FAULT_CMD_TIMEOUT_S)


def signal_processes(records: Iterable[ProcessRecord], sig: signal.Signals) -> list[int]:
    done = []
    for record in records:
        try:
            os.kill(record.pid, sig)
            done.append(record.pid)
        except ProcessLookupError:
            continue
    return done


def restart_frr_daemon(handle: LabHandle, node: str, daemon: str,
                       old: ProcessRecord | None) -> ProcessRecord:
    files = handle.files(node)
    socket = files.vty_socket(daemon)
    socket.unlink(missing_ok=True)
    record = spawn(handle.lab, node, daemon, daemons.frr_daemon_argv(daemon, files),
                   handle.netns(node), files.log(f"{daemon}.out"))
    handle.replace_process(old, record)
    if daemons.wait_for_sockets([socket], 10.0):
        raise BackendError(f"{daemon} on {node} did not come back")
    daemons.apply_frr_config(files)
    return record


def restart_gobgpd(handle: LabHandle, node: str, old: ProcessRecord | None) -> ProcessRecord:
    files = handle.files(node)
    record = spawn(handle.lab, node, "gobgpd", daemons.gobgpd_argv(files), handle.netns(node),
                   files.log("gobgpd"))
    handle.replace_process(old, record)
    return record


def restart_agent(handle: LabHandle, node: str, old: ProcessRecord | None) -> ProcessRecord:
    folder = node_dir(handle.state.directory, node)
    record = spawn(handle.lab, node, "agent",
                   [sys.executable, "-m", "lab.agent", "--spec", str(folder / "agent.json")],
                   handle.netns(node), folder / "agent.log")
    handle.replace_process(old, record)
    return record


def restart_server(handle: LabHandle, pod: str, old: ProcessRecord | None) -> ProcessRecord:
    folder = pod_dir(handle.state.directory, pod)
    record = spawn(handle.lab, pod, "server",
                   [sys.executable, "-m", "lab.server", "--spec", str(folder / "server.json")],
                   handle.netns(pod), folder / "server.log")
    handle.replace_process(old, record)
    return record


def vtysh_configure(handle: LabHandle, node: str, *lines: str) -> None:
    argv = daemons.vtysh_argv(handle.files(node), "configure terminal", *lines)
    result = run(argv, timeout=FAULT_CMD_TIMEOUT_S, check=False)
    if result.returncode != 0 or "% " in result.stdout:
        raise BackendError(f"FRR on {node} refused {list(lines)}: "
                           f"{(result.stdout + result.stderr).strip()}")


def vtysh_exec(handle: LabHandle, node: str, command: str) -> None:
    run(daemons.vtysh_argv(handle.files(node), command), timeout=FAULT_CMD_TIMEOUT_S)


def unready_flag(handle: LabHandle, pod: str) -> Path:
    return pod_dir(handle.state.directory, pod) / "unready"
