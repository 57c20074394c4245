"""Bring a planned lab up on network namespaces (the embedded default backend).

Steps: namespaces (one `ip -batch`), impaired WAN/uplink/access links (impairment layer),
every other link, address, route and sysctl (one netlink worker), configuration files, FRR and
GoBGP daemons (started in parallel, configured through vtysh), anycast servers in the pods,
node agents. Any failure, or Ctrl-C, removes what was built before the error is raised.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from lab.backend import daemons
from lab.backend.daemons import NodeFiles
from lab.backend.names import (
    NETNS_DIR,
    hidden_netns,
    lab_dir,
    lab_namespaces,
    netns_name,
    tag_environment,
)
from lab.backend.netspec import build_network_spec, node_namespaces
from lab.backend.processes import spawn, start_ticks
from lab.backend.runtime_specs import agent_spec, node_dir, pod_dir, server_spec
from lab.backend.state import LabState, ProcessRecord, save_state, write_private
from lab.errors import BackendError, CommandError
from lab.impair import DriverKind, make_driver
from lab.impair.errors import ImpairmentError
from lab.impair.model import Impairment, LinkEnd
from lab.plan import LabPlan, LinkKind, LinkPlan, NodePlan, Role
from lab.proc import run
from lab.render import RenderedLab, frr_daemons

Progress = Callable[[str], None]
IMPAIRED_KINDS = frozenset({LinkKind.WAN, LinkKind.UPLINK, LinkKind.ACCESS})
SOCKET_TIMEOUT_S = 15.0
TOPOLOGY_COPY = "topology.yaml"  # the file as deployed; status and runs re-plan from it
REQUIRED_PROGRAMS = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd",
                     "/usr/lib/frr/staticd", "/usr/bin/vtysh", "/usr/bin/gobgpd",
                     "/usr/bin/gobgp", "/usr/sbin/nft", "/usr/bin/nsenter", "/usr/sbin/ip",
                     "/usr/sbin/conntrack")


def with_runtime_logging(frr_conf: str, folder: Path) -> str:
    """Add the lab-specific log file: FRR applies `log timestamp precision` only to a log
    target set in the configuration, and bfdd logs state changes only with `debug bfd peer`.
    The recorder reads these microsecond lines (one file for every daemon of the router)."""
    header = f"log file {folder / 'frr.log'} debugging\ndebug bfd peer\n"
    marker = "service integrated-vtysh-config\n"
    return frr_conf.replace(marker, marker + header, 1)


def check_prerequisites() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("the lab needs root (namespaces, FRR); run with sudo")
    missing = [p for p in REQUIRED_PROGRAMS if not Path(p).exists()
               and not Path(p.replace("/usr/sbin/", "/sbin/")).exists()]
    if missing:
        problems.append(f"missing programs: {', '.join(missing)}; run `sudo make setup`")
    if problems:
        raise BackendError("; ".join(problems))


def impaired_links(plan: LabPlan) -> list[LinkPlan]:
    """WAN, uplink and access links go through the impairment layer, so their delay, loss and
    rate can be set from the file and changed at runtime."""
    return [link for link in plan.links if link.kind in IMPAIRED_KINDS]


def to_impairment(link: LinkPlan) -> Impairment:
    imp = link.impairment
    return Impairment(delay_ms=imp.delay_ms, jitter_ms=imp.jitter_ms, loss_pct=imp.loss_pct,
                      rate_bps=imp.rate_bps)


def deploy(lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
           progress: Progress, driver_kind: str | None = None) -> LabState:
    """Build the lab; on any failure remove everything built and re-raise."""
    from lab.backend.teardown import destroy

    check_prerequisites()
    if lab_dir(lab).exists() or lab_namespaces(lab):
        raise BackendError(f"a lab named {lab!r} exists already; `anylab down --name {lab}` "
                           "removes it, or pick another --name")
    state = LabState(lab=lab, topology_file=str(topology_file.resolve()),
                     topology=plan.topology, phase="deploying",
                     created_wall=datetime.now(UTC).isoformat(timespec="seconds"),
                     impairment_driver=driver_kind or plan.impairment_driver)
    save_state(state)
    try:
        write_private(state.directory / TOPOLOGY_COPY, topology_file.read_text(encoding="utf-8"))
        _build(state, plan, rendered, progress)
    except BaseException:
        progress("failed: removing what was built")
        destroy(lab, force=True)
        raise
    state.phase = "deployed"
    save_state(state)
    return state


def _build(state: LabState, plan: LabPlan, rendered: RenderedLab, progress: Progress) -> None:
    lab = state.lab
    progress("namespaces")
    _create_namespaces(state, plan)
    progress("links (impairment layer)")
    _create_impaired_links(state, plan)
    progress("links, addresses, routes, sysctls")
    _apply_network(lab, plan)
    _write_files(state, plan, rendered)
    progress("FRR and GoBGP daemons")
    _start_daemons(state, plan)
    progress("anycast servers and node agents")
    _start_pods_and_agents(state, plan)
    save_state(state)
    restrict_to_root(state.directory)


def restrict_to_root(directory: Path) -> None:
    """Take group and other permissions off everything under ``directory``: what this
    process created with the caller's umask (folders, the emulator's files) and what daemons
    create with a mode of their own whatever the umask (FRR's pid files 0644, bfdd's socket
    0777). The lab's own processes start with a private umask (``spawn``, ``lab.launcher``)."""
    for path in [directory, *directory.rglob("*")]:
        with contextlib.suppress(OSError):  # a file may come and go meanwhile
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                path.chmod(stat.S_IMODE(mode) & ~0o077)


def _create_namespaces(state: LabState, plan: LabPlan) -> None:
    names = [*node_namespaces(state.lab, plan), hidden_netns(state.lab)]
    state.namespaces = names
    save_state(state)  # before creating: an interrupted up still knows what to remove
    batch = "".join(f"netns add {name}\n" for name in names)
    try:
        run(["ip", "-batch", "-"], input_text=batch, timeout=60)
    except CommandError as exc:
        raise BackendError(f"cannot create namespaces: {exc}") from exc


def _create_impaired_links(state: LabState, plan: LabPlan) -> None:
    links = impaired_links(plan)
    if not links:
        return
    try:
        driver = make_driver(_driver_kind(state.impairment_driver), state.lab,
                             state.directory, hidden_netns(state.lab))
        state.impairment_driver = driver.kind
        save_state(state)
        emulator_pid = getattr(driver, "pid", None)
        if isinstance(emulator_pid, int):
            ticks = start_ticks(emulator_pid)
            state.processes.append(ProcessRecord(emulator_pid, "_emu", "emulator",
                                                 ticks if ticks is not None else -1))
            save_state(state)
        try:
            for link in links:
                imp = to_impairment(link)
                driver.add_link(link.id,
                                LinkEnd(netns_name(state.lab, link.a.node), link.a.ifname),
                                LinkEnd(netns_name(state.lab, link.b.node), link.b.ifname),
                                imp, imp)
        finally:
            driver.detach()  # the emulator keeps running; runtime faults attach again
    except ImpairmentError as exc:
        raise BackendError(f"impairment layer: {exc}") from exc


def _driver_kind(kind: str) -> DriverKind:
    if kind not in ("auto", "netem", "userspace"):
        raise BackendError(f"unknown impairment driver {kind!r}: auto, netem or userspace")
    return cast(DriverKind, kind)


def _apply_network(lab: str, plan: LabPlan) -> None:
    spec = build_network_spec(lab, plan, {link.id for link in impaired_links(plan)})
    result = run([sys.executable, "-m", "lab.backend.nsworker"],
                 input_text=json.dumps(spec.to_dict()), timeout=120, check=False)
    try:
        reply = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        reply = {"ok": False, "error": (result.stdout + result.stderr).strip()[-800:]}
    if not reply.get("ok"):
        raise BackendError(f"network set-up failed: {reply.get('error')}")


def _write_files(state: LabState, plan: LabPlan, rendered: RenderedLab) -> None:
    for node_name, files in rendered.files.items():
        folder = node_dir(state.directory, node_name)
        for name, text in files.items():
            if name == "frr.conf":
                text = with_runtime_logging(text, folder)
            write_private(folder / name, text)
    for node in plan.nodes_with_role(Role.K8S_NODE):
        spec = agent_spec(state.lab, state.directory, plan, node)
        write_private(node_dir(state.directory, node.name) / "agent.json", json.dumps(spec))
        for pod in node.pods:
            write_private(pod_dir(state.directory, pod.name) / "server.json",
                          json.dumps(server_spec(state.lab, state.directory, plan, pod)))


def _start_daemons(state: LabState, plan: LabPlan) -> None:
    lab = state.lab
    frr_nodes = [n for n in plan.nodes if frr_daemons(n)]

    def start(daemon: str, node: NodePlan) -> None:
        files = NodeFiles(node_dir(state.directory, node.name))
        state.processes.append(spawn(lab, node.name, daemon,
                                     daemons.frr_daemon_argv(daemon, files),
                                     netns_name(lab, node.name), files.log(f"{daemon}.out")))

    # zebra first: a client daemon that finds no zebra socket retries only seconds later
    for node in frr_nodes:
        start("zebra", node)
    _wait_for([NodeFiles(node_dir(state.directory, n.name)).zserv_socket for n in frr_nodes],
              state)
    for node in frr_nodes:
        for daemon in frr_daemons(node)[1:]:
            start(daemon, node)
    for node in plan.nodes:
        if node.speaker == "gobgp":
            files = NodeFiles(node_dir(state.directory, node.name))
            state.processes.append(spawn(lab, node.name, "gobgpd", daemons.gobgpd_argv(files),
                                         netns_name(lab, node.name), files.log("gobgpd")))
    save_state(state)
    sockets = [NodeFiles(node_dir(state.directory, n.name)).vty_socket(d)
               for n in frr_nodes for d in frr_daemons(n)]
    _wait_for(sockets, state)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: daemons.apply_frr_config(
            NodeFiles(node_dir(state.directory, n.name))), frr_nodes))


def _wait_for(sockets: list[Path], state: LabState) -> None:
    missing = daemons.wait_for_sockets(sockets, SOCKET_TIMEOUT_S)
    if missing:
        raise BackendError("FRR daemons did not start (no socket): "
                           + ", ".join(str(p) for p in missing[:5])
                           + f"; see the logs in {state.directory}/nodes/")


def _start_pods_and_agents(state: LabState, plan: LabPlan) -> None:
    """Pod servers and node agents, forked from one launcher (see lab.launcher)."""
    jobs: list[dict[str, str]] = []
    for node in plan.nodes_with_role(Role.K8S_NODE):
        for pod in node.pods:
            folder = pod_dir(state.directory, pod.name)
            jobs.append({"program": "server", "node": pod.name,
                         "netns": str(NETNS_DIR / netns_name(state.lab, pod.name)),
                         "spec": str(folder / "server.json"), "log": str(folder / "server.log")})
    for node in plan.nodes_with_role(Role.K8S_NODE):
        folder = node_dir(state.directory, node.name)
        jobs.append({"program": "agent", "node": node.name,
                     "netns": str(NETNS_DIR / netns_name(state.lab, node.name)),
                     "spec": str(folder / "agent.json"), "log": str(folder / "agent.log")})
    if not jobs:
        return
    result = run([sys.executable, "-m", "lab.launcher"], input_text=json.dumps(jobs),
                 timeout=60, check=False, env=tag_environment(state.lab))
    try:
        pids = json.loads(result.stdout.strip().splitlines()[-1])["pids"]
    except (IndexError, ValueError, KeyError):
        raise BackendError(f"could not start servers and agents: {result.stderr.strip()[-800:]}"
                           ) from None
    for job, pid in zip(jobs, pids, strict=True):
        ticks = start_ticks(pid)
        state.processes.append(ProcessRecord(pid, job["node"], job["program"],
                                             ticks if ticks is not None else -1))
