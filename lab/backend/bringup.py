"""The bring-up steps shared by the backends whose nodes are network namespaces on this
machine (``netns``: named namespaces; ``containerlab``: the namespaces of containers): the
node files, the netlink worker that builds addresses, routes and neighbours, FRR daemons
started in order, GoBGP, each router's boot configuration, and the impaired links handed to
the impairment driver. Each backend's own deploy module says what comes before and after."""

from __future__ import annotations

import contextlib
import json
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from lab.atomicfile import write_atomic
from lab.backend import bfdstart, daemons, memmerge, workloads
from lab.backend.daemons import NodeFiles
from lab.backend.evidence import new_evidence_dir
from lab.backend.names import lab_dir, node_dir, pod_dir, tag_environment
from lab.backend.netns.netspec import NetworkSpec, build_network_spec
from lab.backend.processes import is_alive, start_ticks
from lab.backend.runtime_specs import agent_spec, server_spec
from lab.backend.state import TOPOLOGY_COPY, LabPhase, LabState, ProcessRecord, save_state
from lab.errors import BackendError, CommandError, ImpairmentError, LabError
from lab.impair import DriverKind, ImpairmentDriver, LinkRequest, make_driver
from lab.impair.model import Impairment, LinkEnd
from lab.impair.netem import netem_available
from lab.plan.model import LabPlan, LinkKind, LinkPlan, NodePlan, Role
from lab.proc import Background
from lab.render.configs import RenderedLab, frr_daemons

if TYPE_CHECKING:
    from lab.backend.protocol import TeardownReport

IMPAIRED_KINDS = frozenset({LinkKind.WAN, LinkKind.UPLINK, LinkKind.ACCESS})
SOCKET_TIMEOUT_S = 15.0
NETWORK_SPEC = "network.json"  # what the netlink worker applies
NETWORK_PROGRESS = "network.progress"  # the namespaces it has completed, a line each
WORKER_TIMEOUT_S = 120.0
PROGRESS_POLL_S = 0.005
ECMP_GROUPS_KIND = "ecmpgroups"
ECMP_GROUPS_TIMEOUT_S = 20.0
CONFIG_WORKERS = 4  # vtysh loading routers' configurations at once (the daemons do the work)


class NamespaceBackend(Protocol):
    """What these steps need of a backend: where a node's namespace is called what, how a
    node's own program starts, and how a failed build is cleaned up."""

    name: str

    def namespace(self, lab: str, node: str) -> str: ...

    def start_in_node(self, state: LabState, node: str, kind: str, argv: Sequence[str],
                      log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord: ...

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path: ...

    def netns_path(self, state: LabState, node: str) -> Path: ...

    def spawn(self, state: LabState, node: str | None, kind: str, argv: Sequence[str],
              log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord: ...

    def destroy(self, lab: str, force: bool = False) -> TeardownReport: ...


def check_name_free(lab: str, leftovers: Sequence[str]) -> None:
    """Refuse a name another lab has: its state folder, or what a backend still finds of it
    (``leftovers``: namespaces, containers)."""
    if lab_dir(lab).exists() or leftovers:
        raise BackendError(f"a lab named {lab!r} exists already; `anylab down --name {lab}` "
                           "removes it, or pick another --name")


def guarded_deploy(backend: NamespaceBackend, lab: str, plan: LabPlan, topology_file: Path,
                   progress: Callable[[str], None], driver_kind: str | None,
                   build: Callable[[LabState], None]) -> LabState:
    """A new lab's state, then ``build``; on a failure the evidence is kept and everything
    built is removed before the error is raised (Ctrl-C removes it too)."""
    if plan.merge_memory:
        memmerge.start_ksm()  # before anything is built: a refusal leaves nothing behind
    state = LabState(lab=lab, topology_file=str(topology_file.resolve()),
                     topology=plan.topology, phase=LabPhase.DEPLOYING,
                     created_wall=datetime.now(UTC).isoformat(timespec="seconds"),
                     backend=backend.name,
                     impairment_driver=driver_kind or plan.impairment_driver,
                     merge_memory=plan.merge_memory)
    save_state(state)
    try:
        write_atomic(state.directory / TOPOLOGY_COPY, topology_file.read_text(encoding="utf-8"))
        build(state)
        state.phase = LabPhase.DEPLOYED  # still covered: an interrupt now removes the lab
        save_state(state)
    except LabError as exc:
        progress("failed: keeping the evidence, removing what was built")
        folder = backend.keep_evidence(state, plan, new_evidence_dir(lab, "deploy-failed"),
                                       f"`up` failed while building the lab:\n{exc}")
        backend.destroy(lab, force=True)
        raise BackendError(f"{exc}\nevidence kept in {folder}") from exc
    except BaseException:
        progress("failed: removing what was built")
        backend.destroy(lab, force=True)
        raise
    return state


VTYSH_MODE_LINE = "service integrated-vtysh-config\n"


def with_runtime_logging(frr_conf: str, folder: Path) -> str:
    """Add the lab-specific log file: FRR applies `log timestamp precision` only to a log
    target set in the configuration, and bfdd logs state changes only with `debug bfd peer`.
    The recorder reads these microsecond lines (one file for every daemon of the router)."""
    header = f"log file {folder / 'frr.log'} debugging\ndebug bfd peer\n"
    return frr_conf.replace(VTYSH_MODE_LINE, VTYSH_MODE_LINE + header, 1)


def impaired_links(plan: LabPlan) -> list[LinkPlan]:
    """WAN, uplink and access links go through the impairment layer, so their delay, loss and
    rate can be set from the file and changed at runtime."""
    return [link for link in plan.links if link.kind in IMPAIRED_KINDS]


def emulated_links(driver_kind: str, scratch_netns: str) -> bool:
    """Whether impaired links go through the link emulator: asked for (``userspace``), or
    ``auto`` on a kernel without sch_netem (probed in namespace ``scratch_netns``)."""
    if driver_kind in ("netem", "userspace"):
        return driver_kind == "userspace"
    return not netem_available(scratch_netns)


def to_impairment(link: LinkPlan) -> Impairment:
    imp = link.impairment
    return Impairment(delay_ms=imp.delay_ms, jitter_ms=imp.jitter_ms, loss_pct=imp.loss_pct,
                      rate_bps=imp.rate_bps)


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


def link_ends(backend: NamespaceBackend, lab: str, link: LinkPlan) -> tuple[LinkEnd, LinkEnd]:
    return (LinkEnd(backend.namespace(lab, link.a.node), link.a.ifname),
            LinkEnd(backend.namespace(lab, link.b.node), link.b.ifname))


def adopt_impaired_links(backend: NamespaceBackend, driver: ImpairmentDriver, lab: str,
                         plan: LabPlan) -> None:
    """Hand the impaired links (created with the rest) to the driver, with their settings."""
    requests = [LinkRequest(link.id, *link_ends(backend, lab, link), to_impairment(link),
                            to_impairment(link)) for link in impaired_links(plan)]
    try:
        driver.adopt_links(requests)
    except ImpairmentError as exc:
        raise BackendError(f"impairment layer: {exc}") from exc


class NetworkWorker:
    """The netlink worker (lab.backend.netns.nsworker), running while `up` does other work;
    it names each namespace it has completed in a progress file."""

    def __init__(self, state: LabState, spec: NetworkSpec) -> None:
        spec_path = state.directory / NETWORK_SPEC
        write_atomic(spec_path, json.dumps(spec.to_dict()))
        self.progress = state.directory / NETWORK_PROGRESS
        write_atomic(self.progress, "")
        # tagged like every process of the lab: an `up` killed while it works leaves it
        # running, and `down --force` finds it by the tag
        self.worker = Background([sys.executable, "-m", "lab.backend.netns.nsworker",
                                  str(spec_path), str(self.progress)],
                                 env=tag_environment(state.lab))
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
def network_worker(state: LabState, spec: NetworkSpec) -> Iterator[NetworkWorker]:
    """The worker runs while the body does other work; on leaving, its result is checked
    (or, when the body failed, it is stopped)."""
    network = NetworkWorker(state, spec)
    try:
        yield network
    except BaseException:
        network.worker.kill()
        raise
    network.check_result()


def write_files(state: LabState, plan: LabPlan, rendered: RenderedLab) -> None:
    for node_name, files in rendered.files.items():
        folder = node_dir(state.directory, node_name)
        for name, text in files.items():
            if name == "frr.conf":
                text = with_runtime_logging(text, folder)
                boot = bfdstart.boot_config(plan, node_name, text)
                if reads_own_config(plan.node(node_name)):
                    boot = boot.replace(VTYSH_MODE_LINE, "")  # vtysh's command, no daemon's
                write_atomic(NodeFiles(folder).boot_conf, boot)
            write_atomic(folder / name, text)
    workloads.write_files(state.directory, plan)
    state.bfd_pending = [s.id for s in plan.sessions if bfdstart.attachments(plan, s)]
    state.boot_pending = [n.name for n in plan.nodes if "bgpd" in frr_daemons(n)]
    for node in plan.nodes_with_role(Role.K8S_NODE):
        spec = agent_spec(state.lab, state.directory, plan, node)
        write_atomic(node_dir(state.directory, node.name) / "agent.json", json.dumps(spec))
        for pod in node.pods:
            write_atomic(pod_dir(state.directory, pod.name) / "server.json",
                          json.dumps(server_spec(state.lab, state.directory, plan, pod)))


def frr_nodes(plan: LabPlan) -> list[NodePlan]:
    return [n for n in plan.nodes if frr_daemons(n)]


def zebra_nodes(plan: LabPlan) -> list[NodePlan]:
    """The routers that run zebra (a GoBGP node's BFD companion runs bfdd alone)."""
    return [n for n in plan.nodes if "zebra" in frr_daemons(n)]


def start_zebras(backend: NamespaceBackend, state: LabState, plan: LabPlan,
                  network: NetworkWorker) -> None:
    """Each router's zebra, as soon as the netlink worker has completed its namespace (see
    lab.backend.netns.nsworker: zebra can lose addresses that appear while it runs)."""
    pending = {backend.namespace(state.lab, node.name): node for node in zebra_nodes(plan)}
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while pending:
        completed = network.completed()
        for ns in [ns for ns in pending if completed is None or ns in completed]:
            start_frr_daemon(backend, state, pending.pop(ns), "zebra")
        if pending:
            if time.monotonic() > deadline:
                raise BackendError("network set-up did not finish in time")
            time.sleep(PROGRESS_POLL_S)
    save_state(state)


def reads_own_config(node: NodePlan) -> bool:
    """A node whose one FRR daemon reads its boot configuration itself as it starts (a GoBGP
    node's bfdd: nothing orders its start, and at a thousand nodes one vtysh each was a
    minute of CPU); the routers' daemons start empty and ``configure_frr`` loads theirs. A
    node with the user's raw FRR lines goes through vtysh too: a daemon reading a file only
    logs a line it refuses, vtysh fails ``up`` with it."""
    return frr_daemons(node) == ["bfdd"] and not node.frr_raw


def start_frr_daemons(backend: NamespaceBackend, state: LabState, plan: LabPlan) -> None:
    """Every FRR daemon but zebra, once every zebra listens (a client daemon that finds no
    zebra socket retries only seconds later), empty unless ``reads_own_config``."""
    for node in frr_nodes(plan):
        for daemon in frr_daemons(node):
            if daemon != "zebra":
                start_frr_daemon(backend, state, node, daemon)
    save_state(state)


def start_frr_daemon(backend: NamespaceBackend, state: LabState, node: NodePlan,
                      daemon: str) -> None:
    files = NodeFiles(node_dir(state.directory, node.name))
    config = files.boot_conf if reads_own_config(node) else None
    state.processes.append(backend.start_in_node(state, node.name, daemon,
                                                 daemons.frr_daemon_argv(daemon, files, config),
                                                 files.log(f"{daemon}.out")))


def zserv_socket(state: LabState, node: NodePlan) -> Path:
    """Zebra's API socket: it exists once zebra has started."""
    return NodeFiles(node_dir(state.directory, node.name)).zserv_socket


def start_gobgpd(backend: NamespaceBackend, state: LabState, plan: LabPlan) -> None:
    """After the links (gobgpd binds its sessions' local addresses), before the routers'
    configuration: the leaves open the sessions to the nodes, which listen."""
    for node in plan.nodes:
        if node.speaker == "gobgp":
            files = NodeFiles(node_dir(state.directory, node.name))
            state.processes.append(backend.start_in_node(state, node.name, "gobgpd",
                                                         daemons.gobgpd_argv(files),
                                                         files.log("gobgpd")))
    save_state(state)


def listener_needs(plan: LabPlan, nodes: Sequence[NodePlan]) -> dict[str, set[str]]:
    """Node -> the nodes among ``nodes`` that listen on its sessions (its peers' listening
    ends, ``SessionPlan.listener``)."""
    names = {n.name for n in nodes}
    return {n.name: {s.listener for s in plan.sessions if n.name in (s.a, s.b)
                     and s.listener != n.name and s.listener in names} for n in nodes}


def listener_waves(plan: LabPlan, nodes: Sequence[NodePlan]) -> list[list[NodePlan]]:
    """``nodes`` in waves: each after the peers it opens its sessions to (their listening
    ends, ``SessionPlan.listener``), so that its first connection finds them configured; a
    refused first try would wait a connect-retry interval."""
    needs = listener_needs(plan, nodes)
    waves: list[list[NodePlan]] = []
    done: set[str] = set()
    while len(done) < len(nodes):
        wave = [n for n in nodes if n.name not in done and needs[n.name] <= done]
        if not wave:  # a cycle (none in a planned lab): the rest at once
            wave = [n for n in nodes if n.name not in done]
        waves.append(wave)
        done |= {n.name for n in wave}
    return waves


def configure_frr(state: LabState, plan: LabPlan) -> None:
    """Load each router's boot configuration once all its daemons listen, and once the
    routers listening on its sessions have theirs (``listener_needs``): each as soon as
    those are done, not wave after wave, ``CONFIG_WORKERS`` vtysh at a time."""
    sockets = [NodeFiles(node_dir(state.directory, n.name)).vty_socket(d)
               for n in frr_nodes(plan) for d in frr_daemons(n)]
    wait_for_sockets(sockets, state)
    routers = [n for n in frr_nodes(plan) if not reads_own_config(n)]
    needs = listener_needs(plan, routers)
    done: set[str] = set()
    with ThreadPoolExecutor(max_workers=CONFIG_WORKERS) as pool:
        running: dict[Future[None], str] = {}
        while routers or running:
            ready = [n for n in routers if needs[n.name] <= done] or (
                routers if not running else [])  # a cycle (none in a planned lab): the rest
            for node in ready:
                routers.remove(node)
                files = NodeFiles(node_dir(state.directory, node.name))
                running[pool.submit(daemons.apply_frr_config, files, files.boot_conf)] = (
                    node.name)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # FRR's refusal, as BackendError
                done.add(running.pop(future))


def start_ecmp_groups(backend: NamespaceBackend, state: LabState, plan: LabPlan) -> None:
    """The keeper of the resilient next-hop groups of the routers whose role asks for them
    (lab.apps.ecmpgroups), one process on the machine for all of them, once it holds their
    routes."""
    routers = [(n.name, n.resilient) for n in plan.nodes if n.resilient is not None]
    if not routers:
        return
    folder = state.directory / "ecmpgroups"
    folder.mkdir(mode=0o700, exist_ok=True)
    ready = folder / "ready"
    prefixes = [str(p) for s in plan.services for p in s.prefixes]
    spec = {"lab": state.lab, "ready": str(ready), "routers": [
        {"name": name, "netns": str(backend.netns_path(state, name)), "prefixes": prefixes,
         **asdict(groups)} for name, groups in routers]}
    write_atomic(folder / "spec.json", json.dumps(spec, indent=1) + "\n")
    record = backend.spawn(state, None, ECMP_GROUPS_KIND,
                           [sys.executable, "-m", "lab.apps.ecmpgroups", "--spec",
                            str(folder / "spec.json")], folder / "ecmpgroups.log")
    state.processes.append(record)
    save_state(state)
    deadline = time.monotonic() + ECMP_GROUPS_TIMEOUT_S
    while not ready.exists():
        if not is_alive(record) or time.monotonic() > deadline:
            raise BackendError("the keeper of the resilient ECMP groups did not start; see "
                               f"{folder / 'ecmpgroups.log'}")
        time.sleep(0.02)


def wait_for_sockets(sockets: list[Path], state: LabState) -> None:
    missing = daemons.wait_for_sockets(sockets, SOCKET_TIMEOUT_S)
    if missing:
        raise BackendError("FRR daemons did not start (no socket): "
                           + ", ".join(str(p) for p in missing[:5])
                           + f"; see the logs in {state.directory}/nodes/")




@contextlib.contextmanager
def impairment_driver(state: LabState, plan: LabPlan, hidden_netns: str, record_node: str
                      ) -> Iterator[ImpairmentDriver | None]:
    """The lab's impairment driver (the emulator started in ``hidden_netns`` and recorded
    as a process of ``record_node``), detached at the end: the emulator keeps running and
    runtime faults attach to it again."""
    if not impaired_links(plan):
        yield None
        return
    try:
        driver = make_driver(_driver_kind(state.impairment_driver), state.lab,
                             state.directory, hidden_netns)
    except ImpairmentError as exc:
        raise BackendError(f"impairment layer: {exc}") from exc
    try:
        state.impairment_driver = driver.kind
        emulator_pid = getattr(driver, "pid", None)
        if isinstance(emulator_pid, int):
            ticks = start_ticks(emulator_pid)
            state.processes.append(ProcessRecord(emulator_pid, record_node, "emulator",
                                                 ticks if ticks is not None else -1))
        save_state(state)
        yield driver
    finally:
        driver.detach()


def _driver_kind(kind: str) -> DriverKind:
    if kind not in ("auto", "netem", "userspace"):
        raise BackendError(f"unknown impairment driver {kind!r}: auto, netem or userspace")
    return cast(DriverKind, kind)


def network_and_routers(backend: NamespaceBackend, state: LabState, plan: LabPlan,
                        hidden_netns: str, emulator_node: str, links_exist: bool,
                        meanwhile: Callable[[], None] = lambda: None) -> None:
    """The impairment driver; the netlink worker (``meanwhile`` runs while it works, e.g.
    writing the node files); each router's zebra as soon as its namespace is complete, the
    other FRR daemons once every zebra listens; then the impaired links handed to the driver.
    ``links_exist``: the veth pairs were made by someone else (containerlab)."""
    lab = state.lab
    with impairment_driver(state, plan, hidden_netns, emulator_node) as driver:
        veths = {link.id: driver.link_veths(link.id, *link_ends(backend, lab, link))
                 for link in impaired_links(plan)} if driver is not None else {}
        spec = build_network_spec(lab, plan, veths, namer=backend.namespace,
                                  links_exist=links_exist)
        with network_worker(state, spec) as network:
            meanwhile()
            start_zebras(backend, state, plan, network)
            wait_for_sockets([zserv_socket(state, n) for n in zebra_nodes(plan)], state)
            start_frr_daemons(backend, state, plan)
        if driver is not None:
            adopt_impaired_links(backend, driver, lab, plan)
