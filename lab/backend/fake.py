"""A fake backend for unit tests: a lab that exists only as its state directory and a journal
of what was asked of it. Nothing runs, nothing changes on the machine; it needs no root.

Every node operation appends one entry to ``journal`` (a tuple: the operation and its
arguments), so a test can check what the runner, the faults or the CLI did, in order.
``ready`` chooses what ``wait_ready`` answers; ``driver`` is the impairment driver it hands
out (``FakeDriver`` by default; a test may give one that fails).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.atomicfile import write_atomic
from lab.backend.daemons import NodeFiles
from lab.backend.names import lab_dir, node_dir, state_labs
from lab.backend.processes import start_ticks
from lab.backend.protocol import Progress, TeardownReport
from lab.backend.ready import ReadyReport
from lab.backend.state import (
    TOPOLOGY_COPY,
    LabPhase,
    LabState,
    ProcessRecord,
    load_state,
    save_state,
)
from lab.errors import BackendError, ImpairmentError
from lab.impair import (
    CLEAN,
    Counters,
    Direction,
    DirectionStatus,
    Impairment,
    ImpairmentDriver,
    LinkEnd,
    LinkRequest,
    LinkStatus,
    VethPair,
)
from lab.plan.model import LabPlan
from lab.render.configs import RenderedLab

Entry = tuple[Any, ...]


@dataclass
class FakeDriver:
    """An impairment driver that keeps settings in memory (``fail``: every change raises)."""

    journal: list[Entry] = field(default_factory=list)
    links: dict[str, tuple[Impairment, Impairment]] = field(default_factory=dict)
    fail: bool = False

    @property
    def kind(self) -> str:
        return "fake"

    def add_link(self, link_id: str, a: LinkEnd, b: LinkEnd, a_to_b: Impairment,
                 b_to_a: Impairment, mtu: int = 1500) -> None:
        self.links[link_id] = (a_to_b, b_to_a)

    def link_veths(self, link_id: str, a: LinkEnd, b: LinkEnd,
                   mtu: int = 1500) -> list[VethPair]:
        return []

    def adopt_links(self, links: Sequence[LinkRequest]) -> None:
        for link in links:
            self.links[link.link_id] = (link.a_to_b, link.b_to_a)

    def set(self, link_id: str, direction: Direction, imp: Impairment) -> None:
        self.journal.append(("impair", link_id, direction, imp.to_dict()))
        if self.fail:
            raise ImpairmentError(f"{link_id}: the emulator does not answer (fake)")
        a_to_b, b_to_a = self.links.get(link_id, (CLEAN, CLEAN))
        self.links[link_id] = (imp if direction in ("a_to_b", "both") else a_to_b,
                               imp if direction in ("b_to_a", "both") else b_to_a)

    def get(self, link_id: str) -> LinkStatus:
        a_to_b, b_to_a = self.links.get(link_id, (CLEAN, CLEAN))
        end = LinkEnd("fake", "e0")
        return LinkStatus(link_id, end, end, 1500, self.kind,
                          DirectionStatus(a_to_b, Counters()), DirectionStatus(b_to_a, Counters()))

    def link_ids(self) -> list[str]:
        return sorted(self.links)

    def remove_link(self, link_id: str) -> None:
        self.links.pop(link_id, None)

    def close(self) -> None:
        self.links.clear()

    def detach(self) -> None:
        self.journal.append(("detach",))


class FakeBackend:
    """The backend protocol over a journal (see the module's docstring)."""

    name = "fake"

    def __init__(self, ready: bool = True, driver: ImpairmentDriver | None = None) -> None:
        self.ready = ready
        self.journal: list[Entry] = []
        self.driver = driver if driver is not None else FakeDriver(self.journal)

    # ------------------------------------------------------------------ the lab

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState:
        if lab_dir(lab).exists():
            raise BackendError(f"a lab named {lab!r} exists already")
        state = LabState(lab=lab, topology_file=str(topology_file), topology=plan.topology,
                         phase=LabPhase.DEPLOYED, backend=self.name,
                         created_wall=datetime.now(UTC).isoformat(timespec="seconds"),
                         impairment_driver="fake")
        save_state(state)
        write_atomic(state.directory / TOPOLOGY_COPY, topology_file.read_text(encoding="utf-8"))
        self.journal.append(("deploy", lab))
        return state

    def wait_ready(self, state: LabState, plan: LabPlan, timeout_s: float,
                   progress: Progress, when_answered: Callable[[], None] | None = None
                   ) -> ReadyReport:
        self.journal.append(("wait_ready", state.lab))
        if self.ready and when_answered is not None:
            when_answered()
        return ReadyReport(self.ready, 0.0, len(plan.sessions))

    def destroy(self, lab: str, force: bool = False) -> TeardownReport:
        self.journal.append(("destroy", lab))
        existed = lab_dir(lab).exists()
        shutil.rmtree(lab_dir(lab), ignore_errors=True)
        return TeardownReport(lab, existed=existed)

    def status(self, state: LabState, plan: LabPlan) -> dict[str, Any]:
        return {"lab": state.lab, "topology": state.topology, "phase": state.phase,
                "ready": self.ready}

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path:
        from lab.backend.evidence import README

        folder.mkdir(parents=True, exist_ok=True)
        (folder / README).write_text(why + "\n", encoding="utf-8")
        self.journal.append(("keep_evidence", state.lab, str(folder)))
        return folder

    def labs(self) -> list[str]:
        found = []
        for lab in state_labs():
            try:
                if load_state(lab).backend == self.name:
                    found.append(lab)
            except BackendError:
                continue
        return found

    def impairment_driver(self, state: LabState) -> ImpairmentDriver:
        return self.driver

    # ------------------------------------------------------------------ one node

    def netns_path(self, state: LabState, node: str) -> Path:
        return Path("/nonexistent/fake-netns") / state.lab / node

    def exec_argv(self, state: LabState, node: str, argv: Sequence[str]) -> list[str]:
        return ["fake-exec", node, *argv]

    def spawn(self, state: LabState, node: str | None, kind: str, argv: Sequence[str],
              log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        """Starts nothing: the record stands for this test process (alive, never signalled:
        ``signal`` only writes down what it would have sent)."""
        self.journal.append(("spawn", node, kind, list(argv)))
        pid = os.getpid()
        return ProcessRecord(pid, node or f"_{kind}", kind, start_ticks(pid) or -1)

    def start_in_node(self, state: LabState, node: str, kind: str, argv: Sequence[str],
                      log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        return self.spawn(state, node, kind, argv, log, extra_env)

    def app_argv(self, program: str, spec: Path) -> list[str]:
        return ["fake-app", program, str(spec)]

    def processes(self, state: LabState, node: str,
                  kinds: Iterable[str] | None = None) -> list[ProcessRecord]:
        wanted = set(kinds) if kinds is not None else None
        return [r for r in state.processes
                if r.node == node and (wanted is None or r.kind in wanted)]

    def signal(self, records: Iterable[ProcessRecord], sig: signal.Signals) -> list[int]:
        pids = [r.pid for r in records]
        self.journal.append(("signal", sig.name, pids))
        return pids

    def freeze(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        self.journal.append(("freeze", list(nodes)))
        return [r.pid for node in nodes for r in self.processes(state, node)]

    def thaw(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        self.journal.append(("thaw", list(nodes)))
        return [r.pid for node in nodes for r in self.processes(state, node)]

    def set_links(self, state: LabState, plan: LabPlan, node: str, ifnames: Sequence[str],
                  up: bool) -> None:
        self.journal += [("link", node, ifname, "up" if up else "down") for ifname in ifnames]

    def set_blackhole(self, state: LabState, node: str, ifname: str, on: bool) -> None:
        self.journal.append(("blackhole", node, ifname, "on" if on else "off"))

    def router_files(self, state: LabState, router: str) -> NodeFiles:
        return NodeFiles(node_dir(state.directory, router))

    def vtysh(self, state: LabState, router: str, commands: Sequence[str]) -> str:
        self.journal.append(("vtysh", router, list(commands)))
        return ""

    def start_frr_daemon(self, state: LabState, router: str, daemon: str) -> ProcessRecord:
        self.journal.append(("start_frr_daemon", router, daemon))
        return self.spawn(state, router, daemon, [daemon], Path(os.devnull))
