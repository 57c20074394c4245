"""Bring a planned lab up on network namespaces (the embedded default backend).

Steps: namespaces (one `ip -batch`); the impairment driver (the link emulator); every link,
address, route and sysctl by one netlink worker (the WAN/uplink/access links as the impairment
driver asks, handed to it afterwards), while the configuration files are written; each
router's zebra as soon as the worker has completed its namespace, the other FRR daemons once
every zebra listens; then GoBGP, and the anycast servers and node agents while each router
loads its boot configuration through vtysh (BFD on BGP sessions follows at readiness, see
lab.backend.bfdstart). Any failure, or Ctrl-C, removes what was built before the error is
raised; a failure keeps the evidence first (lab.backend.evidence)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from lab.apps.server.build import server_binary
from lab.atomicfile import write_atomic
from lab.backend import bringup, memmerge, workloads
from lab.backend.names import node_dir, pod_dir, tag_environment
from lab.backend.netns.names import EMULATOR_NODE, hidden_netns, lab_namespaces
from lab.backend.netns.netspec import node_namespaces
from lab.backend.processes import start_ticks
from lab.backend.state import LabState, ProcessRecord, save_state
from lab.errors import BackendError, CommandError
from lab.plan.model import LabPlan, Role
from lab.proc import Background, run
from lab.render.configs import RenderedLab

if TYPE_CHECKING:
    from lab.backend.netns.backend import NetnsBackend

Progress = Callable[[str], None]
LAUNCH_JOBS = "launch.json"  # the servers and agents the launcher forks
# how long the routers' configuration runs alone before the servers and agents start beside
# it (``start_programs``): the reference lab's takes 0.4 s
ROUTERS_FIRST_S = 0.6
# how long the launcher may take to fork them: at a thousand speakers (1,824 servers and
# agents) it took 80 s on a busy 2-core machine
LAUNCH_TIMEOUT_S = 60.0
LAUNCH_TIMEOUT_PER_JOB_S = 0.1
REQUIRED_PROGRAMS = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd",
                     "/usr/lib/frr/staticd", "/usr/bin/vtysh", "/usr/bin/gobgpd",
                     "/usr/bin/gobgp", "/usr/sbin/nft", "/usr/bin/nsenter", "/usr/sbin/ip",
                     "/usr/sbin/conntrack")


def check_prerequisites(plan: LabPlan) -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("the lab needs root (namespaces, FRR); run with sudo")
    missing = [p for p in REQUIRED_PROGRAMS if not Path(p).exists()
               and not Path(p.replace("/usr/sbin/", "/sbin/")).exists()]
    if missing:
        problems.append(f"missing programs: {', '.join(missing)}; run `sudo make setup`")
    problems += workloads.missing_programs(plan)
    if problems:
        raise BackendError("; ".join(problems))


def deploy(backend: NetnsBackend, lab: str, plan: LabPlan, rendered: RenderedLab,
           topology_file: Path, progress: Progress, driver_kind: str | None = None) -> LabState:
    """Build the lab; on any failure remove everything built and re-raise."""
    check_prerequisites(plan)
    bringup.check_name_free(lab, lab_namespaces(lab))
    return bringup.guarded_deploy(backend, lab, plan, topology_file, progress, driver_kind,
                                  lambda state: _build(backend, state, plan, rendered,
                                                       progress))


def _build(backend: NetnsBackend, state: LabState, plan: LabPlan, rendered: RenderedLab,
           progress: Progress) -> None:
    """What can overlap does: files are written while the netlink worker starts up; each
    router's zebra starts as soon as its namespace is complete, while the worker goes on with
    the others (``start_programs`` says what follows)."""
    lab = state.lab
    progress("namespaces")
    _create_namespaces(state, plan)
    progress("links, addresses, routes, sysctls; FRR daemons")
    bringup.network_and_routers(backend, state, plan, hidden_netns(lab), EMULATOR_NODE,
                                links_exist=False,
                                meanwhile=lambda: bringup.write_files(state, plan, rendered))
    start_programs(backend, state, plan, progress)


def start_programs(backend: NetnsBackend, state: LabState, plan: LabPlan,
                   progress: Progress) -> None:
    """GoBGP, each router's boot configuration, and the pod servers and node agents once
    that is done or has had ``ROUTERS_FIRST_S`` to itself; the lab's folder made root's
    only. The last steps of every backend whose programs run on this machine's own files
    (netns, Mininet).

    Why the routers go first: a session comes up about a second after its router is
    configured, so the last router's configuration sets when BGP is up; the agents' first
    work (an nftables ruleset, ``gobgp`` calls) made the reference lab's 21 loads take 0.9 s
    instead of 0.4 s. Why only for a while: a large lab's configuration takes many seconds,
    and its hundreds of agents starting beside it saved 10 s of 37 at 344 speakers."""
    progress("FRR configuration, GoBGP, anycast servers and node agents")
    bringup.start_gobgpd(backend, state, plan)
    with ThreadPoolExecutor(max_workers=1) as beside:
        configuring = beside.submit(bringup.configure_frr, state, plan)
        wait([configuring], timeout=ROUTERS_FIRST_S)
        with _pods_and_agents(backend, state, plan):
            configuring.result()  # FRR's refusal, as BackendError
    bringup.start_ecmp_groups(backend, state, plan)
    workloads.start_all(backend, state, plan)
    bringup.restrict_to_root(state.directory)


def _create_namespaces(state: LabState, plan: LabPlan) -> None:
    names = [*node_namespaces(state.lab, plan), hidden_netns(state.lab)]
    state.namespaces = names
    save_state(state)  # before creating: an interrupted up still knows what to remove
    batch = "".join(f"netns add {name}\n" for name in names)
    try:
        run(["ip", "-batch", "-"], input_text=batch, timeout=60)
    except CommandError as exc:
        raise BackendError(f"cannot create namespaces: {exc}") from exc


@contextlib.contextmanager
def _pods_and_agents(backend: NetnsBackend, state: LabState, plan: LabPlan
                     ) -> Iterator[None]:
    """Pod servers and node agents, forked from one launcher (see lab.apps.launcher) that runs
    while the body does other work."""
    jobs: list[dict[str, str]] = []
    for node in plan.nodes_with_role(Role.K8S_NODE):
        for pod in node.pods:
            folder = pod_dir(state.directory, pod.name)
            jobs.append({"program": "server", "node": pod.name,
                         "netns": str(backend.netns_path(state, pod.name)),
                         "spec": str(folder / "server.json"), "log": str(folder / "server.log")})
    for node in plan.nodes_with_role(Role.K8S_NODE):
        folder = node_dir(state.directory, node.name)
        jobs.append({"program": "agent", "node": node.name,
                     "netns": str(backend.netns_path(state, node.name)),
                     "spec": str(folder / "agent.json"), "log": str(folder / "agent.log")})
    if not jobs:
        yield
        return
    if any(job["program"] == "server" for job in jobs):
        server_binary()  # built here, where a failed build is the deploy's error
    jobs_path = state.directory / LAUNCH_JOBS
    write_atomic(jobs_path, json.dumps(jobs))
    launcher = Background(memmerge.merged(state, [sys.executable, "-m", "lab.apps.launcher",
                                         str(jobs_path)]), env=tag_environment(state.lab))
    timeout_s = LAUNCH_TIMEOUT_S + LAUNCH_TIMEOUT_PER_JOB_S * len(jobs)
    try:
        yield
    except BaseException:
        # record what was started anyway (clean-up also finds them by the lab's tag)
        with contextlib.suppress(CommandError, BackendError):
            result = launcher.finish(timeout=timeout_s)
            _record_launched(state, jobs, result.stdout, result.stderr)
            save_state(state)  # clean-up stops the recorded PIDs first
        raise
    try:
        result = launcher.finish(timeout=timeout_s)
    except CommandError as exc:
        raise BackendError(f"could not start servers and agents: {exc}") from exc
    _record_launched(state, jobs, result.stdout, result.stderr)


def _record_launched(state: LabState, jobs: list[dict[str, str]], stdout: str,
                     stderr: str) -> None:
    try:
        pids = json.loads(stdout.strip().splitlines()[-1])["pids"]
    except (IndexError, ValueError, KeyError):
        raise BackendError(f"could not start servers and agents: {stderr.strip()[-800:]}"
                           ) from None
    for job, pid in zip(jobs, pids, strict=True):
        ticks = start_ticks(pid)
        state.processes.append(ProcessRecord(pid, job["node"], job["program"],
                                             ticks if ticks is not None else -1))
