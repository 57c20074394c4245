"""Bring a planned lab up as containers: write the node files, export the containerlab
topology beside them, ``containerlab deploy`` (containers and their veth links, with the
plan's names and MACs), then the same bring-up as on bare namespaces
(``lab.backend.bringup``) in the containers' namespaces: addresses, routes, neighbours and the
pod bridges by the netlink worker; FRR, GoBGP, the node agents and pod servers started in
each container; the impaired links handed to the link emulator. Any failure, or Ctrl-C,
removes what was built before the error is raised (the evidence kept first)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from lab.atomicfile import write_atomic
from lab.backend import bringup, workloads
from lab.backend.containerlab import images, tools
from lab.backend.containerlab.export import export_topology, render_topology
from lab.backend.containerlab.names import container_name, deploy_netns
from lab.backend.containerlab.split import split_topology
from lab.backend.containerlab.teardown import lab_containers, remove_deploy_namespace
from lab.backend.names import node_dir, pod_dir
from lab.backend.netns.names import EMULATOR_NODE
from lab.backend.state import LabState, save_state
from lab.errors import BackendError, CommandError
from lab.plan.model import LabPlan, Role
from lab.proc import run
from lab.render.configs import RenderedLab

if TYPE_CHECKING:
    from lab.backend.containerlab.backend import ContainerlabBackend

Progress = Callable[[str], None]
DEPLOY_TIMEOUT_S = 900.0


def deploy(backend: ContainerlabBackend, lab: str, plan: LabPlan, rendered: RenderedLab,
           topology_file: Path, progress: Progress, driver_kind: str | None = None) -> LabState:
    if os.geteuid() != 0:
        raise BackendError("the lab needs root (containers, namespaces); run with sudo")
    tools.ensure_tools(progress)
    tags = images.lab_images(workloads.packages(plan), progress)
    check_workload_programs(plan, tags)
    bringup.check_name_free(lab, lab_containers(lab))
    return bringup.guarded_deploy(backend, lab, plan, topology_file, progress, driver_kind,
                                  lambda state: _build(backend, state, plan, rendered,
                                                       tags, progress))


def check_workload_programs(plan: LabPlan, tags: dict[str, str]) -> None:
    """Each workload's program must be in the pods' image, each ``exec`` readiness check's
    in the nodes' (where the agent runs it): said before any container starts."""
    wanted: dict[str, dict[str, str]] = {"pod": {}, "node": {}}  # role: program -> service
    for service in plan.services:
        if service.workload is None:
            continue
        wanted["pod"].setdefault(service.workload.command[0], service.name)
        if service.workload.readiness.kind == "exec":
            wanted["node"].setdefault(service.workload.readiness.command[0], service.name)
    problems = []
    for role, programs in wanted.items():
        concrete = [p for p in programs if "{" not in p]  # placeholders: known only per pod
        for program in images.missing_programs(tags[role], concrete) if concrete else []:
            what = ("runs" if role == "pod" else "checks readiness with")
            problems.append(f"the workload of service {programs[program]} {what} "
                            f"{program!r}, which image {tags[role]} does not have")
    if problems:
        raise BackendError("; ".join(problems) + " (hint: add its Debian package to the "
                           "service's `workload.packages`)")


def write_export(lab: str, plan: LabPlan, folder: Path, image_tags: dict[str, str],
                 lab_root: PurePosixPath, emulated: bool, hosts: list[str] | None = None
                 ) -> Path:
    """The topology file in ``folder`` and every folder it binds (created empty); with
    ``hosts``, one file per host (``LAB-hN.clab.yml``, lab.backend.containerlab.split).
    Returns the (first) file."""
    document = export_topology(lab, plan, image_tags, lab_root, emulated)
    for node in document["topology"]["nodes"].values():
        for bind in node.get("binds", []):
            (folder / bind.split(":")[0]).mkdir(parents=True, exist_ok=True, mode=0o700)
    parts = split_topology(plan, document, hosts) if hosts else [document]
    paths = [folder / f"{part['name']}.clab.yml" for part in parts]
    for path, part in zip(paths, parts, strict=True):
        write_atomic(path, render_topology(lab, plan, part))
    return paths[0]


def _build(backend: ContainerlabBackend, state: LabState, plan: LabPlan,
           rendered: RenderedLab, tags: dict[str, str], progress: Progress) -> None:
    lab = state.lab
    progress("node files and the containerlab topology")
    bringup.write_files(state, plan, rendered)
    emulated = bringup.emulated_links(state.impairment_driver,
                                      f"{container_name(lab, EMULATOR_NODE)}-probe")
    state.impairment_driver = "userspace" if emulated else "netem"  # what the export has
    topology = write_export(lab, plan, state.directory, tags, PurePosixPath(state.directory),
                            emulated)  # topology_path(lab)
    names = [container_name(lab, n.name) for n in plan.nodes]
    names += [container_name(lab, p.name) for p in plan.pods()]
    state.namespaces = names + ([container_name(lab, EMULATOR_NODE)] if emulated else [])
    save_state(state)  # before deploying: an interrupted up still knows what to remove
    progress(f"containers and links (containerlab deploy: {len(state.namespaces)} containers)")
    with _deploy_namespace(lab) as netns:
        tools.containerlab(["deploy", "--topo", str(topology), "--reconfigure"],
                           DEPLOY_TIMEOUT_S, cwd=topology.parent, netns=netns)
    progress("addresses, routes, bridges; FRR daemons")
    bringup.network_and_routers(backend, state, plan, backend.namespace(lab, EMULATOR_NODE),
                                EMULATOR_NODE, links_exist=True)
    progress("FRR configuration, GoBGP, anycast servers and node agents")
    bringup.start_gobgpd(backend, state, plan)
    _start_servers_and_agents(backend, state, plan)
    bringup.configure_frr(state, plan)
    bringup.start_ecmp_groups(backend, state, plan)
    workloads.start_all(backend, state, plan)  # in the pods' containers, from their image
    bringup.restrict_to_root(state.directory)


@contextlib.contextmanager
def _deploy_namespace(lab: str) -> Iterator[str]:
    """A namespace of the lab's own for containerlab to work in, removed afterwards: the
    host's stays untouched even for the moment each veth pair exists before its move."""
    name = deploy_netns(lab)
    try:
        run(["ip", "netns", "add", name], timeout=30)
    except CommandError as exc:
        raise BackendError(f"cannot create namespace {name}: {exc}") from exc
    try:
        yield name
    finally:
        remove_deploy_namespace(lab)


def _start_servers_and_agents(backend: ContainerlabBackend, state: LabState,
                              plan: LabPlan) -> None:
    """Each pod's server and each node's agent, in its container with the image's Python."""
    for node in plan.nodes_with_role(Role.K8S_NODE):
        for pod in node.pods:
            folder = pod_dir(state.directory, pod.name)
            state.processes.append(backend.start_in_node(
                state, pod.name, "server", backend.app_argv("server", folder / "server.json"),
                folder / "server.log"))
    for node in plan.nodes_with_role(Role.K8S_NODE):
        folder = node_dir(state.directory, node.name)
        state.processes.append(backend.start_in_node(
            state, node.name, "agent", backend.app_argv("agent", folder / "agent.json"),
            folder / "agent.log"))
    save_state(state)
