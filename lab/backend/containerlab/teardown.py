"""Remove a containerlab lab: its processes (by recorded PID, then by tag), then
``containerlab destroy --cleanup`` on its topology file, then a sweep of whatever still
carries the lab's label (containers of an interrupted deploy, or of a lab whose state is
gone), the namespace links and containerlab's SSH configuration file, and the state folder.
Idempotent; ``force`` works without a readable state."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from lab.backend.containerlab.cgroups import set_frozen
from lab.backend.containerlab.names import (
    CLAB_PREFIX,
    LAB_LABEL,
    deploy_netns,
    link_pid,
    topology_path,
)
from lab.backend.containerlab.tools import containerlab, containerlab_binary, docker
from lab.backend.names import lab_dir
from lab.backend.processes import stop_lab_processes, tagged_pids
from lab.backend.protocol import TeardownReport
from lab.backend.state import mark_destroying
from lab.errors import BackendError
from lab.netns import NETNS_DIR
from lab.proc import run

STOP_GRACE_S = 0.3
DESTROY_TIMEOUT_S = 300.0
SSH_CONFIG_DIR = Path("/etc/ssh/ssh_config.d")


def lab_containers(lab: str) -> list[str]:
    """Names of the lab's containers (running or not), found by its label."""
    try:
        out = docker(["ps", "--all", "--filter", f"label={LAB_LABEL}={lab}",
                      "--format", "{{.Names}}"], timeout=30)
    except BackendError:
        return []
    return sorted(out.split())


def lab_namespace_links(lab: str) -> list[Path]:
    prefix = f"{CLAB_PREFIX}-{lab}-"
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p for p in NETNS_DIR.iterdir() if p.name.startswith(prefix) and p.is_symlink())


def destroy(lab: str, force: bool = False) -> TeardownReport:
    directory = lab_dir(lab)
    records = mark_destroying(lab, force)
    containers = lab_containers(lab)
    report = TeardownReport(lab, existed=bool(directory.exists() or containers
                                              or tagged_pids(lab)))
    if not report.existed:
        return report
    _thaw_all(lab)  # a frozen process does not die until thawed
    report.processes, report.killed = stop_lab_processes(lab, records, STOP_GRACE_S)
    topology = topology_path(lab)
    remove_deploy_namespace(lab)  # an interrupted deploy leaves it
    if topology.exists() and containerlab_binary().exists():
        with contextlib.suppress(BackendError):  # the sweep below removes what is left
            containerlab(["destroy", "--topo", str(topology), "--cleanup"], DESTROY_TIMEOUT_S,
                         cwd=topology.parent)
    left = lab_containers(lab)
    if left:
        docker(["rm", "--force", "--volumes", *left], timeout=DESTROY_TIMEOUT_S)
    report.namespaces, report.units = len(containers), "containers"
    for link in lab_namespace_links(lab):  # containerlab's, when its destroy did not run
        link.unlink(missing_ok=True)
    (SSH_CONFIG_DIR / f"clab-{lab}.conf").unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    report.leftovers = _leftovers(lab)
    return report


def remove_deploy_namespace(lab: str) -> None:
    """The namespace containerlab deployed in (lab.backend.containerlab.names.deploy_netns)."""
    if (NETNS_DIR / deploy_netns(lab)).exists():
        run(["ip", "netns", "delete", deploy_netns(lab)], timeout=30, check=False)


def _thaw_all(lab: str) -> None:
    """Thaw the lab's containers (a run killed during a silent crash leaves them frozen)."""
    for link in lab_namespace_links(lab):
        pid = link_pid(link)
        if pid is not None:
            with contextlib.suppress(OSError, BackendError):
                set_frozen(pid, False)


def _leftovers(lab: str) -> list[str]:
    left = [f"container {c}" for c in lab_containers(lab)]
    left += [f"namespace {p.name}" for p in lab_namespace_links(lab)]
    if (NETNS_DIR / deploy_netns(lab)).exists():
        left.append(f"namespace {deploy_netns(lab)}")
    left += [f"process {p}" for p in tagged_pids(lab)]
    if lab_dir(lab).exists():
        left.append(f"directory {lab_dir(lab)}")
    return left
