"""The containerlab backend's implementation of the backend protocol.

A node is a container whose network namespace containerlab links at
``/run/netns/anylab-LAB-NODE``; every operation on a node's network (links, blackholes,
neighbours, the instrument's probes) is the netns backend's, on that namespace. What differs:

- the node's own programs (FRR, GoBGP, agent, server) start inside the container: its mount,
  UTS, IPC and network namespaces (they see the image's files and the node folder bound into
  it) and its control groups, so ``docker top`` lists them, ``docker stats`` counts them and
  ``docker pause`` freezes them. They are started from this machine (``nsenter``), keep their
  PIDs here and carry the lab's tag, so they are recorded, signalled and found like the
  netns backend's;
- ``exec``/``shell`` enter the container as ``docker exec`` would (its PID namespace too);
- a frozen node's containers are frozen in their control group (what ``docker pause``
  does, without the Docker API's delay);
- the link emulator runs in a container of its own (``_emu``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lab.apps.server.build import BINARY_VARIABLE
from lab.backend.containerlab import images
from lab.backend.containerlab.cgroups import cgroup_dirs, cgroup_procs, set_frozen
from lab.backend.containerlab.names import LAB_LABEL, container_name, link_pid
from lab.backend.containerlab.teardown import lab_containers, lab_namespace_links
from lab.backend.containerlab.tools import docker
from lab.backend.names import state_labs
from lab.backend.netns.backend import NSENTER, NetnsBackend
from lab.backend.processes import launch
from lab.backend.protocol import Progress, TeardownReport
from lab.backend.state import LabState, ProcessRecord
from lab.errors import BackendError
from lab.netns import NETNS_DIR
from lab.plan.model import LabPlan
from lab.render.configs import RenderedLab


class ContainerlabBackend(NetnsBackend):
    """Containers deployed by containerlab on Docker, from images built here."""

    name = "containerlab"

    # ------------------------------------------------------------------ the lab

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState:
        from lab.backend.containerlab.deploy import deploy

        return deploy(self, lab, plan, rendered, topology_file, progress, driver_kind)

    def destroy(self, lab: str, force: bool = False) -> TeardownReport:
        from lab.backend.containerlab.teardown import destroy

        return destroy(lab, force)

    def labs(self) -> list[str]:
        """Labs with containers here (by label) and labs whose state names this backend."""
        try:  # no engine: the command fails and lists nothing
            out = docker(["ps", "--all", "--filter", f"label={LAB_LABEL}", "--format",
                          f'{{{{.Label "{LAB_LABEL}"}}}}'], timeout=30, check=False)
        except BackendError:  # no docker at all
            out = ""
        return sorted({line.strip() for line in out.splitlines() if line.strip()}
                      | set(state_labs()))

    def kernel_views(self, state: LabState) -> dict[str, str]:
        from lab.backend.evidence import within_time

        views = within_time([link.name for link in lab_namespace_links(state.lab)],
                            self._kernel_view)
        try:
            views["containers"] = docker(["ps", "--all", "--filter",
                                          f"label={LAB_LABEL}={state.lab}"], check=False)
        except BackendError as exc:
            views["containers"] = f"(cannot list: {exc})\n"
        return views

    # ------------------------------------------------------------------ one node

    def namespace(self, lab: str, node: str) -> str:
        return container_name(lab, node)

    def exec_argv(self, state: LabState, node: str, argv: Sequence[str]) -> list[str]:
        pid = self._container_pid(state, node)
        return [NSENTER, "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", *argv]

    def start_in_node(self, state: LabState, node: str, kind: str, argv: Sequence[str],
                      log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        pid = self._container_pid(state, node)
        # no PID namespace: nsenter would stay behind as the parent; the program keeps the
        # PID recorded here, and signals reach it
        command = [NSENTER, "-t", str(pid), "-m", "-u", "-i", "-n", "--", *argv]
        return launch(state.lab, node, kind, command, log, extra_env,
                      cgroup_procs=cgroup_procs(pid))

    def app_argv(self, program: str, spec: Path) -> list[str]:
        server = [f"{BINARY_VARIABLE}={images.IN_IMAGE_SERVER}"] if program == "server" else []
        return ["/usr/bin/env", f"PYTHONPATH={images.IN_IMAGE_ROOT}", *server,
                images.IN_IMAGE_PYTHON, "-m", f"lab.apps.{program}", "--spec", str(spec)]

    def freeze(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        """Freeze the containers' control groups, as `docker pause` does, but directly: a
        write per container (about 1 ms) instead of a Docker API call each (about 60 ms),
        so the fault lands at the instant the run records. Docker still lists the
        containers as running (a hung host looks the same); `docker top` shows their
        processes stopped."""
        for node in nodes:
            set_frozen(self._container_pid(state, node), True)
        return [r.pid for r in self._records_of(state, nodes)]

    def thaw(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        for node in nodes:
            set_frozen(self._container_pid(state, node), False)
        return [r.pid for r in self._records_of(state, nodes)]

    def _container_pid(self, state: LabState, node: str) -> int:
        """The container's first process, from the namespace link containerlab made
        (``/run/netns/NAME -> /proc/PID/ns/net``)."""
        link = NETNS_DIR / self.namespace(state.lab, node)
        pid = link_pid(link)
        if pid is None:
            running = ", ".join(lab_containers(state.lab)) or "none"
            raise BackendError(f"node {node} has no running container (no {link}); "
                               f"containers of the lab: {running}")
        return pid


def container_pids(lab: str, node: str) -> set[int]:
    """Every process in the node's container (its control group), seen from this machine."""
    init = link_pid(NETNS_DIR / container_name(lab, node))
    if init is None:
        return set()
    folders = cgroup_dirs(init)
    folder = folders.get("memory", folders.get(""))
    if folder is None:
        return set()
    return {int(p) for p in (folder / "cgroup.procs").read_text().split()}
