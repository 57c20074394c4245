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
import stat
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from lab.atomicfile import write_atomic
from lab.backend import bfdstart, daemons
from lab.backend.daemons import NodeFiles
from lab.backend.evidence import new_evidence_dir
from lab.backend.names import lab_dir, tag_environment
from lab.backend.netns.names import hidden_netns, lab_namespaces, netns_name
from lab.backend.netns.netspec import build_network_spec, node_namespaces
from lab.backend.processes import start_ticks
from lab.backend.runtime_specs import agent_spec, node_dir, pod_dir, server_spec
from lab.backend.state import (
    TOPOLOGY_COPY,
    LabPhase,
    LabState,
    ProcessRecord,
    save_state,
)
from lab.errors import BackendError, CommandError, ImpairmentError, LabError
from lab.impair import DriverKind, ImpairmentDriver, LinkRequest, VethPair, make_driver
from lab.impair.model import Impairment, LinkEnd
from lab.plan.model import LabPlan, LinkKind, LinkPlan, NodePlan, Role
from lab.proc import Background, run
from lab.render.configs import RenderedLab, frr_daemons

if TYPE_CHECKING:
    from lab.backend.netns.backend import NetnsBackend

Progress = Callable[[str], None]
IMPAIRED_KINDS = frozenset({LinkKind.WAN, LinkKind.UPLINK, LinkKind.ACCESS})
SOCKET_TIMEOUT_S = 15.0
NETWORK_SPEC = "network.json"  # what the netlink worker applies
NETWORK_PROGRESS = "network.progress"  # the namespaces it has completed, a line each
WORKER_TIMEOUT_S = 120.0
PROGRESS_POLL_S = 0.005
LAUNCH_JOBS = "launch.json"  # the servers and agents the launcher forks
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


def deploy(backend: NetnsBackend, lab: str, plan: LabPlan, rendered: RenderedLab,
           topology_file: Path, progress: Progress, driver_kind: str | None = None) -> LabState:
    """Build the lab; on any failure remove everything built and re-raise."""
    from lab.backend.netns.teardown import destroy

    check_prerequisites()
    if lab_dir(lab).exists() or lab_namespaces(lab):
        raise BackendError(f"a lab named {lab!r} exists already; `anylab down --name {lab}` "
                           "removes it, or pick another --name")
    state = LabState(lab=lab, topology_file=str(topology_file.resolve()),
                     topology=plan.topology, phase=LabPhase.DEPLOYING,
                     created_wall=datetime.now(UTC).isoformat(timespec="seconds"),
                     impairment_driver=driver_kind or plan.impairment_driver)
    save_state(state)
    try:
        write_atomic(state.directory / TOPOLOGY_COPY, topology_file.read_text(encoding="utf-8"))
        _build(backend, state, plan, rendered, progress)
    except LabError as exc:
        progress("failed: keeping the evidence, removing what was built")
        folder = backend.keep_evidence(state, plan, new_evidence_dir(lab, "deploy-failed"),
                                       f"`up` failed while building the lab:\n{exc}")
        destroy(lab, force=True)
        raise BackendError(f"{exc}\nevidence kept in {folder}") from exc
    except BaseException:
        progress("failed: removing what was built")
        destroy(lab, force=True)
        raise
    state.phase = LabPhase.DEPLOYED
    save_state(state)
    return state


def _build(backend: NetnsBackend, state: LabState, plan: LabPlan, rendered: RenderedLab,
           progress: Progress) -> None:
    """What can overlap does: files are written while the netlink worker starts up; each
    router's zebra starts as soon as its namespace is complete, while the worker goes on with
    the others; the servers and agents start while the routers load their configuration."""
    lab = state.lab
    progress("namespaces")
    _create_namespaces(state, plan)
    progress("links, addresses, routes, sysctls; FRR daemons")
    with _impairment_driver(state, plan) as driver:
        veths = {link.id: driver.link_veths(link.id, *_ends(lab, link)) for link in
                 impaired_links(plan)} if driver is not None else {}
        with _network_worker(state, plan, veths) as network:
            _write_files(state, plan, rendered)
            _start_zebras(backend, state, plan, network)
            _wait_for([_zserv(state, n) for n in _frr_nodes(plan)], state)
            _start_frr_daemons(backend, state, plan)
        if driver is not None:
            _adopt_impaired_links(driver, lab, plan)
    progress("FRR configuration, GoBGP, anycast servers and node agents")
    _start_gobgpd(backend, state, plan)
    with _pods_and_agents(backend, state, plan):
        _configure_frr(state, plan)
    save_state(state)
    restrict_to_root(state.directory)


def restrict_to_root(directory: Path) -> None:
    """Take group and other permissions off everything under ``directory``: what this
    process created with the caller's umask (folders, the emulator's files) and what daemons
    create with a mode of their own whatever the umask (FRR's pid files 0644, bfdd's socket
    0777). The lab's own processes start with a private umask (``lab.backend.processes.launch``,
    ``lab.apps.launcher``)."""
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


@contextlib.contextmanager
def _impairment_driver(state: LabState, plan: LabPlan) -> Iterator[ImpairmentDriver | None]:
    """The lab's impairment driver (the emulator started and recorded), detached at the end:
    the emulator keeps running and runtime faults attach to it again."""
    if not impaired_links(plan):
        yield None
        return
    try:
        driver = make_driver(_driver_kind(state.impairment_driver), state.lab,
                             state.directory, hidden_netns(state.lab))
    except ImpairmentError as exc:
        raise BackendError(f"impairment layer: {exc}") from exc
    try:
        state.impairment_driver = driver.kind
        emulator_pid = getattr(driver, "pid", None)
        if isinstance(emulator_pid, int):
            ticks = start_ticks(emulator_pid)
            state.processes.append(ProcessRecord(emulator_pid, "_emu", "emulator",
                                                 ticks if ticks is not None else -1))
        save_state(state)
        yield driver
    finally:
        driver.detach()


def _ends(lab: str, link: LinkPlan) -> tuple[LinkEnd, LinkEnd]:
    return (LinkEnd(netns_name(lab, link.a.node), link.a.ifname),
            LinkEnd(netns_name(lab, link.b.node), link.b.ifname))


def _adopt_impaired_links(driver: ImpairmentDriver, lab: str, plan: LabPlan) -> None:
    """Hand the impaired links (created with the rest) to the driver, with their settings."""
    requests = [LinkRequest(link.id, *_ends(lab, link), to_impairment(link), to_impairment(link))
                for link in impaired_links(plan)]
    try:
        driver.adopt_links(requests)
    except ImpairmentError as exc:
        raise BackendError(f"impairment layer: {exc}") from exc


def _driver_kind(kind: str) -> DriverKind:
    if kind not in ("auto", "netem", "userspace"):
        raise BackendError(f"unknown impairment driver {kind!r}: auto, netem or userspace")
    return cast(DriverKind, kind)


class _NetworkWorker:
    """The netlink worker (lab.backend.netns.nsworker), running while `up` does other work;
    it names each namespace it has completed in a progress file."""

    def __init__(self, state: LabState, plan: LabPlan,
                 impaired: dict[str, list[VethPair]]) -> None:
        spec_path = state.directory / NETWORK_SPEC
        write_atomic(spec_path, json.dumps(build_network_spec(state.lab, plan,
                                                               impaired).to_dict()))
        self.progress = state.directory / NETWORK_PROGRESS
        write_atomic(self.progress, "")
        self.worker = Background([sys.executable, "-m", "lab.backend.netns.nsworker",
                                  str(spec_path), str(self.progress)])
        self.result_checked = False

    def completed(self) -> set[str] | None:
        """The namespaces complete so far; None once the worker has ended well (every
        namespace complete). Raises BackendError when it has failed."""
        if not self.worker.running:
            self.check_result()
            return None
        return set(self.progress.read_text(encoding="utf-8").split())

    def check_result(self) -> None:
        if self.result_checked:
            return
        self.result_checked = True
        try:
            result = self.worker.finish(timeout=WORKER_TIMEOUT_S)
        except CommandError as exc:
            raise BackendError(f"network set-up failed: {exc}") from exc
        try:
            reply = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            reply = {"ok": False, "error": (result.stdout + result.stderr).strip()[-800:]}
        if not reply.get("ok"):
            raise BackendError(f"network set-up failed: {reply.get('error')}")


@contextlib.contextmanager
def _network_worker(state: LabState, plan: LabPlan,
                    impaired: dict[str, list[VethPair]]) -> Iterator[_NetworkWorker]:
    """The worker runs while the body does other work; on leaving, its result is checked
    (or, when the body failed, it is stopped)."""
    network = _NetworkWorker(state, plan, impaired)
    try:
        yield network
    except BaseException:
        network.worker.kill()
        raise
    network.check_result()


def _write_files(state: LabState, plan: LabPlan, rendered: RenderedLab) -> None:
    for node_name, files in rendered.files.items():
        folder = node_dir(state.directory, node_name)
        for name, text in files.items():
            if name == "frr.conf":
                text = with_runtime_logging(text, folder)
                write_atomic(NodeFiles(folder).boot_conf,
                              bfdstart.boot_config(plan, node_name, text))
            write_atomic(folder / name, text)
    state.bfd_pending = [s.id for s in plan.sessions if bfdstart.attachments(plan, s)]
    for node in plan.nodes_with_role(Role.K8S_NODE):
        spec = agent_spec(state.lab, state.directory, plan, node)
        write_atomic(node_dir(state.directory, node.name) / "agent.json", json.dumps(spec))
        for pod in node.pods:
            write_atomic(pod_dir(state.directory, pod.name) / "server.json",
                          json.dumps(server_spec(state.lab, state.directory, plan, pod)))


def _frr_nodes(plan: LabPlan) -> list[NodePlan]:
    return [n for n in plan.nodes if frr_daemons(n)]


def _start_zebras(backend: NetnsBackend, state: LabState, plan: LabPlan,
                  network: _NetworkWorker) -> None:
    """Each router's zebra, as soon as the netlink worker has completed its namespace (see
    lab.backend.netns.nsworker: zebra can lose addresses that appear while it runs)."""
    pending = {netns_name(state.lab, node.name): node for node in _frr_nodes(plan)}
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while pending:
        completed = network.completed()
        for ns in [ns for ns in pending if completed is None or ns in completed]:
            _spawn_frr_daemon(backend, state, pending.pop(ns), "zebra")
        if pending:
            if time.monotonic() > deadline:
                raise BackendError("network set-up did not finish in time")
            time.sleep(PROGRESS_POLL_S)
    save_state(state)


def _start_frr_daemons(backend: NetnsBackend, state: LabState, plan: LabPlan) -> None:
    """Every FRR daemon but zebra, with an empty configuration (``_configure_frr`` loads
    it), once every zebra listens: a client daemon that finds no zebra socket retries only
    seconds later."""
    for node in _frr_nodes(plan):
        for daemon in frr_daemons(node)[1:]:
            _spawn_frr_daemon(backend, state, node, daemon)
    save_state(state)


def _spawn_frr_daemon(backend: NetnsBackend, state: LabState, node: NodePlan,
                      daemon: str) -> None:
    files = NodeFiles(node_dir(state.directory, node.name))
    state.processes.append(backend.spawn(state, node.name, daemon,
                                         daemons.frr_daemon_argv(daemon, files),
                                         files.log(f"{daemon}.out")))


def _zserv(state: LabState, node: NodePlan) -> Path:
    """Zebra's API socket: it exists once zebra has started."""
    return NodeFiles(node_dir(state.directory, node.name)).zserv_socket


def _start_gobgpd(backend: NetnsBackend, state: LabState, plan: LabPlan) -> None:
    """After the links: gobgpd binds its sessions' local addresses."""
    for node in plan.nodes:
        if node.speaker == "gobgp":
            files = NodeFiles(node_dir(state.directory, node.name))
            state.processes.append(backend.spawn(state, node.name, "gobgpd",
                                                 daemons.gobgpd_argv(files),
                                                 files.log("gobgpd")))
    save_state(state)


def _configure_frr(state: LabState, plan: LabPlan) -> None:
    """Load each router's boot configuration once all its daemons listen."""
    sockets = [NodeFiles(node_dir(state.directory, n.name)).vty_socket(d)
               for n in _frr_nodes(plan) for d in frr_daemons(n)]
    _wait_for(sockets, state)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda files: daemons.apply_frr_config(files, files.boot_conf),
                      [NodeFiles(node_dir(state.directory, n.name)) for n in _frr_nodes(plan)]))


def _wait_for(sockets: list[Path], state: LabState) -> None:
    missing = daemons.wait_for_sockets(sockets, SOCKET_TIMEOUT_S)
    if missing:
        raise BackendError("FRR daemons did not start (no socket): "
                           + ", ".join(str(p) for p in missing[:5])
                           + f"; see the logs in {state.directory}/nodes/")


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
    jobs_path = state.directory / LAUNCH_JOBS
    write_atomic(jobs_path, json.dumps(jobs))
    launcher = Background([sys.executable, "-m", "lab.apps.launcher", str(jobs_path)],
                          env=tag_environment(state.lab))
    try:
        yield
    except BaseException:
        # record what was started anyway (clean-up also finds them by the lab's tag)
        with contextlib.suppress(CommandError, BackendError):
            result = launcher.finish(timeout=60)
            _record_launched(state, jobs, result.stdout, result.stderr)
            save_state(state)  # clean-up stops the recorded PIDs first
        raise
    try:
        result = launcher.finish(timeout=60)
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
