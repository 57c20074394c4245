"""The netns backend's implementation of the backend protocol (lab.backend.protocol)."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lab.backend import daemons, memmerge, workloads
from lab.backend.daemons import NodeFiles
from lab.backend.names import node_dir, state_labs
from lab.backend.netns.names import EMULATOR_NODE, namespace_labs, netns_name
from lab.backend.netns.netspec import peer_neighbours
from lab.backend.processes import is_alive, launch
from lab.backend.protocol import Progress, TeardownReport
from lab.backend.ready import ReadyReport
from lab.backend.state import LabState, ProcessRecord, load_state
from lab.errors import BackendError, CommandError, ImpairmentError
from lab.impair import DriverKind, ImpairmentDriver, make_driver
from lab.netns import netns_path
from lab.plan.model import LabPlan
from lab.proc import run
from lab.render.configs import RenderedLab

NSENTER = "/usr/bin/nsenter"
NFT = "/usr/sbin/nft"
IP = "ip"
COMMAND_TIMEOUT_S = 15.0
DAEMON_START_S = 10.0


class NetnsBackend:
    """Network namespaces, FRR, GoBGP and nftables on this machine (the default)."""

    name = "netns"

    # ------------------------------------------------------------------ the lab

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState:
        from lab.backend.netns.deploy import deploy

        return deploy(self, lab, plan, rendered, topology_file, progress, driver_kind)

    def wait_ready(self, state: LabState, plan: LabPlan, timeout_s: float,
                   progress: Progress, when_answered: Callable[[], None] | None = None
                   ) -> ReadyReport:
        from lab.backend.ready import wait_ready

        return wait_ready(self, state, plan, timeout_s, progress, when_answered)

    def destroy(self, lab: str, force: bool = False) -> TeardownReport:
        from lab.backend.netns.teardown import destroy

        report = destroy(lab, force)
        memmerge.release_ksm(other for other in state_labs()
                             if other != lab and _merges_memory(other))
        return report

    def status(self, state: LabState, plan: LabPlan) -> dict[str, Any]:
        from lab.backend.inspect import status_document

        return status_document(self, state, plan)

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path:
        from lab.backend.evidence import keep_evidence

        status = (lambda: self.status(state, plan)) if plan is not None else None
        return keep_evidence(self, state, plan, folder, why, status, self.kernel_views(state))

    def kernel_views(self, state: LabState) -> dict[str, str]:
        """Links, addresses, routes and neighbours of every namespace of the lab that exists."""
        from lab.backend.evidence import within_time
        from lab.backend.netns.names import lab_namespaces

        return within_time(lab_namespaces(state.lab), self._kernel_view)

    def labs(self) -> list[str]:
        return sorted(set(state_labs()) | set(namespace_labs()))

    def impairment_driver(self, state: LabState) -> ImpairmentDriver:
        kind: DriverKind = "netem" if state.impairment_driver == "netem" else "userspace"
        try:
            return make_driver(kind, state.lab, state.directory,
                               self.namespace(state.lab, EMULATOR_NODE))
        except ImpairmentError as exc:
            raise BackendError(f"impairment layer: {exc}") from exc

    # ------------------------------------------------------------------ one node

    def namespace(self, lab: str, node: str) -> str:
        """The name of the node's network namespace (under /run/netns)."""
        return netns_name(lab, node)

    def netns_path(self, state: LabState, node: str) -> Path:
        return netns_path(self.namespace(state.lab, node))

    def exec_argv(self, state: LabState, node: str, argv: Sequence[str]) -> list[str]:
        return self.net_argv(state, node, argv)

    def net_argv(self, state: LabState, node: str, argv: Sequence[str]) -> list[str]:
        """``argv``, a program of this machine, run in the node's network namespace."""
        return [NSENTER, f"--net={self.netns_path(state, node)}", "--", *argv]

    def spawn(self, state: LabState, node: str | None, kind: str, argv: Sequence[str],
              log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        if node is None:  # on the machine: it enters the nodes it needs itself
            return launch(state.lab, f"_{kind}", kind, memmerge.merged(state, argv), log,
                          extra_env)
        return launch(state.lab, node, kind,
                      memmerge.merged(state, self.net_argv(state, node, argv)), log, extra_env)

    def start_in_node(self, state: LabState, node: str, kind: str, argv: Sequence[str],
                      log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        return self.spawn(state, node, kind, argv, log, extra_env)

    def app_argv(self, program: str, spec: Path) -> list[str]:
        return [sys.executable, "-m", f"lab.apps.{program}", "--spec", str(spec)]

    def processes(self, state: LabState, node: str,
                  kinds: Iterable[str] | None = None) -> list[ProcessRecord]:
        wanted = set(kinds) if kinds is not None else None
        return [r for r in state.processes
                if r.node == node and (wanted is None or r.kind in wanted) and is_alive(r)]

    def signal(self, records: Iterable[ProcessRecord], sig: signal.Signals) -> list[int]:
        done = []
        for record in records:
            try:
                if record.kind == workloads.KIND:
                    # a user's server may fork its workers (NSD does): the signal goes to its
                    # whole process group (it leads one: lab.backend.processes.launch)
                    os.killpg(record.pid, sig)
                else:
                    os.kill(record.pid, sig)
                done.append(record.pid)
            except ProcessLookupError:
                continue
        return done

    def freeze(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        return self.signal(self._records_of(state, nodes), signal.SIGSTOP)

    def thaw(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        return self.signal(self._records_of(state, nodes), signal.SIGCONT)

    def set_links(self, state: LabState, plan: LabPlan, node: str, ifnames: Sequence[str],
                  up: bool) -> None:
        self._run(self.net_argv(state, node, [IP, "-batch", "-"]),
                  "".join(f"link set dev {ifname} {'up' if up else 'down'}\n"
                          for ifname in ifnames))
        if up:  # the kernel forgot what it had on the interfaces: put it back as configured
            for ifname in ifnames:
                self._restore_static_routes(state, plan, node, ifname)
                self._restore_neighbours(state, plan, node, ifname)

    def set_blackhole(self, state: LabState, node: str, ifname: str, on: bool) -> None:
        table = "anylab_bh_" + re.sub(r"[^A-Za-z0-9_]", "_", ifname)
        if on:
            rules = (f"table netdev {table} {{\n"
                     f"  chain ingress {{ type filter hook ingress device \"{ifname}\" "
                     "priority -500; policy drop; }\n"
                     f"  chain egress {{ type filter hook egress device \"{ifname}\" "
                     "priority -500; policy drop; }\n}\n")
        else:
            rules = f"delete table netdev {table}\n"
        self._run(self.exec_argv(state, node, [NFT, "-f", "-"]), rules)

    def router_files(self, state: LabState, router: str) -> NodeFiles:
        return NodeFiles(node_dir(state.directory, router))

    def vtysh(self, state: LabState, router: str, commands: Sequence[str]) -> str:
        result = run(daemons.vtysh_argv(self.router_files(state, router), *commands),
                     timeout=COMMAND_TIMEOUT_S, check=False)
        if result.returncode != 0:
            raise BackendError(f"vtysh on {router} failed ({result.returncode}): "
                               f"{(result.stdout + result.stderr).strip()}")
        return result.stdout

    def start_frr_daemon(self, state: LabState, router: str, daemon: str) -> ProcessRecord:
        files = self.router_files(state, router)
        socket = files.vty_socket(daemon)
        socket.unlink(missing_ok=True)
        record = self.start_in_node(state, router, daemon,
                                    daemons.frr_daemon_argv(daemon, files),
                                    files.log(f"{daemon}.out"))
        if daemons.wait_for_sockets([socket], DAEMON_START_S):
            raise BackendError(f"{daemon} on {router} did not come back")
        daemons.apply_frr_config(files)
        return record

    # ------------------------------------------------------------------ helpers

    def _records_of(self, state: LabState, nodes: Sequence[str]) -> list[ProcessRecord]:
        return [r for node in nodes for r in self.processes(state, node)]

    def _ip(self, state: LabState, node: str, *args: str) -> None:
        self._run(self.net_argv(state, node, [IP, *args]))

    @staticmethod
    def _run(argv: list[str], input_text: str | None = None) -> None:
        try:
            run(argv, input_text=input_text, timeout=COMMAND_TIMEOUT_S)
        except CommandError as exc:
            raise BackendError(str(exc)) from exc

    def _restore_neighbours(self, state: LabState, plan: LabPlan, node: str,
                            ifname: str) -> None:
        """An interface set down loses its permanent neighbour entries (netspec explains why
        the lab has them)."""
        for interface in plan.node(node).interfaces:
            if interface.name == ifname:
                for address, mac in peer_neighbours(state.lab, interface):
                    self._ip(state, node, "neigh", "replace", address, "lladdr", mac, "dev",
                             ifname, "nud", "permanent")

    def _restore_static_routes(self, state: LabState, plan: LabPlan, node: str,
                               ifname: str) -> None:
        """The kernel deletes static routes through an interface that goes down; a host's
        network configuration would put them back when it comes up."""
        routes = plan.node(node).routes
        for route in routes:
            if route.dev != ifname:
                continue
            # as the bring-up installed it (pyroute2 marks its routes static)
            source = ("proto", "static",
                      *(("src", str(route.src)) if route.src is not None else ()))
            siblings = [r for r in routes if r.prefix == route.prefix]
            if len(siblings) == 1:
                self._ip(state, node, "route", "replace", str(route.prefix), "via",
                         str(route.via), "dev", route.dev, *source)
                continue
            # a multipath route (dual-homed node): every next hop again; if another one's
            # interface is down too, the kernel refuses the set, and this one alone goes in
            hops = [part for r in siblings
                    for part in ("nexthop", "via", str(r.via), "dev", r.dev)]
            try:
                self._ip(state, node, "route", "replace", str(route.prefix), *source, *hops)
            except BackendError:
                self._ip(state, node, "route", "replace", str(route.prefix), "via",
                         str(route.via), "dev", route.dev, *source)

    @staticmethod
    def _kernel_view(namespace: str) -> str:
        """Links, addresses, routes and neighbours of a namespace (a name or a path)."""
        try:
            result = run([NSENTER, f"--net={netns_path(namespace)}", IP, "-batch", "-"],
                         input_text="link show\naddress show\nroute show\n"
                         "route show root ::/0\nneigh show\n",  # IPv4 and IPv6 routes
                         timeout=20, check=False)
        except CommandError as exc:
            return f"(cannot read: {exc})\n"
        return result.stdout + result.stderr


def _merges_memory(lab: str) -> bool:
    try:
        return load_state(lab).merge_memory
    except (BackendError, OSError, ValueError):
        return False
