"""Bring a planned lab up on Mininet: the Mininet network (hosts and links with the plan's
names and MACs, held by the keeper process or by the calling process), then the same bring-up
as on bare namespaces (``lab.backend.bringup``) in the hosts' namespaces: addresses, routes,
neighbours and the pod bridges by the netlink worker while the node files are written; FRR,
GoBGP, the node agents and pod servers; the impaired links handed to the impairment driver.

Impaired links: where the kernel has sch_netem they are Mininet ``TCLink`` links with the
plan's delay, jitter, loss and rate (the lab's netem driver takes them over for runtime
changes); where it has none (as here) they go through the link emulator, which runs in a
Mininet host of its own (``_emu``). Any failure, or Ctrl-C, removes what was built before the
error is raised (the evidence kept first)."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

from lab.atomicfile import write_atomic
from lab.backend import bringup
from lab.backend.mininet import tools
from lab.backend.mininet.network import (
    LinkShaping,
    MininetNetwork,
    NetworkSpec,
    write_hosts,
)
from lab.backend.netns.deploy import check_prerequisites, start_programs
from lab.backend.netns.names import EMULATOR_NODE, netns_name
from lab.backend.processes import launch, tagged_pids
from lab.backend.state import LabState, save_state
from lab.backend.wiring import plan_wires
from lab.errors import BackendError
from lab.plan import naming
from lab.plan.model import LabPlan, LinkPlan
from lab.render.configs import RenderedLab

if TYPE_CHECKING:
    from pathlib import Path

    from lab.backend.mininet.backend import MininetBackend
    from lab.backend.protocol import Progress

KEEPER_START_S = 300.0  # a few ms per host and link; generous for a busy machine
KEEPER_LOG = "mininet.log"
KEEPER_NODE = "_mininet"  # how the keeper is recorded ('_' names no node)


def deploy(backend: MininetBackend, lab: str, plan: LabPlan, rendered: RenderedLab,
           topology_file: Path, progress: Progress, driver_kind: str | None = None
           ) -> LabState:
    check_prerequisites(plan)
    tools.ensure_tools(progress)
    bringup.check_name_free(lab, [f"process {p}" for p in tagged_pids(lab)])
    return bringup.guarded_deploy(backend, lab, plan, topology_file, progress, driver_kind,
                                  lambda state: _build(backend, state, plan, rendered,
                                                       progress))


def network_spec(lab: str, plan: LabPlan, emulated: bool) -> NetworkSpec:
    """Hosts (nodes, pods, the emulator when used) and links of the lab's Mininet network."""
    hosts = [n.name for n in plan.nodes] + [p.name for p in plan.pods()]
    wires = plan_wires(lab, plan, EMULATOR_NODE if emulated else None)
    shaping = {}
    if emulated:
        hosts.append(EMULATOR_NODE)
    else:
        impaired = {(link.a.node, link.a.ifname): link for link in bringup.impaired_links(plan)}
        for index, wire in enumerate(wires):
            link = impaired.get((wire.a, wire.a_ifname))
            if link is not None:
                shaping[index] = _shaping(link)
    addresses: dict[str, dict[str, str]] = {}
    for node in plan.nodes:
        addresses[node.name] = {i.name: str(i.address) for i in node.interfaces}
        for pod in node.pods:
            addresses[pod.name] = {naming.POD_IFNAME: str(pod.address)}
    return NetworkSpec(lab, hosts, wires, shaping, addresses)


def _shaping(link: LinkPlan) -> LinkShaping:
    imp = link.impairment
    return LinkShaping(imp.delay_ms, imp.jitter_ms, imp.loss_pct,
                       imp.rate_bps / 1e6 if imp.rate_bps else None)


def _build(backend: MininetBackend, state: LabState, plan: LabPlan, rendered: RenderedLab,
           progress: Progress) -> None:
    lab = state.lab
    impaired = bool(bringup.impaired_links(plan))
    emulated = impaired and bringup.emulated_links(state.impairment_driver,
                                                   netns_name(lab, "_probe"))
    if impaired:
        state.impairment_driver = "userspace" if emulated else "netem"
    spec = network_spec(lab, plan, emulated)
    save_state(state)
    progress(f"Mininet hosts and links ({len(spec.hosts)} hosts, {len(spec.wires)} links)")
    _hold_network(backend, state, spec)
    progress("addresses, routes, bridges; FRR daemons")
    # the netem driver needs no namespace of its own: any name will do
    hidden = backend.namespace(lab, EMULATOR_NODE) if emulated else netns_name(lab, "_tc")
    bringup.network_and_routers(backend, state, plan, hidden, EMULATOR_NODE, links_exist=True,
                                meanwhile=lambda: bringup.write_files(state, plan, rendered))
    start_programs(backend, state, plan, progress)


def _hold_network(backend: MininetBackend, state: LabState, spec: NetworkSpec) -> None:
    """Build the network here (``backend.hold_here``) or in the keeper; either way the hosts'
    shells end up in the lab's hosts file."""
    from lab.backend.mininet.backend import SPEC_FILE, hosts_file

    hosts = hosts_file(state.lab)
    hosts.unlink(missing_ok=True)
    spec_path = state.directory / SPEC_FILE
    write_atomic(spec_path, spec.to_json())
    if backend.hold_here:
        backend.network = MininetNetwork(spec)
        write_hosts(hosts, backend.network.build())
        return
    log = state.directory / KEEPER_LOG
    state.processes.append(launch(state.lab, KEEPER_NODE, "mininet",
                                  [sys.executable, "-m", "lab.backend.mininet.keeper",
                                   str(spec_path), str(hosts)], log))
    save_state(state)
    keeper = state.processes[-1]
    deadline = time.monotonic() + KEEPER_START_S
    while not hosts.exists():
        if not backend.processes(state, KEEPER_NODE):
            raise BackendError(f"the Mininet keeper ended early: "
                               f"{log.read_text(errors='replace')[-1500:]}")
        if time.monotonic() > deadline:
            raise BackendError(f"the Mininet network was not built in {KEEPER_START_S:.0f} s "
                               f"(keeper PID {keeper.pid}, log {log})")
        time.sleep(0.02)
    reply = json.loads(hosts.read_text(encoding="utf-8"))
    if "error" in reply:
        raise BackendError(str(reply["error"]))
