"""The backend protocol: every operation on a lab or one of its nodes.

Faults, probes, the recorder, the runner and the CLI act on a lab only through this protocol,
so a backend is a folder of its own (``lab.backend.netns`` is the default; ``lab.backend.fake``
serves unit tests). What a backend must give:

- the lab as a whole: build it (``deploy``), wait until it is ready, remove it (``destroy``,
  also from its tags alone with ``force``), describe it (``status``), keep its evidence when
  it fails, and list the labs it has on this machine;
- one node: the network namespace to enter (``netns_path``: a path that ``lab.netns`` can
  open, whether a named namespace or ``/proc/PID/ns/net``), a command line that runs inside it
  (``exec_argv``), starting one of the node's own programs in it as the node runs them
  (``start_in_node``: FRR, GoBGP, the node agent, the pod server; ``app_argv`` gives the
  command line of the project's programs there), starting a program of this machine in the
  node's network (``spawn``: the instrument, e.g. a prober) or on the machine outside every
  node (``node=None``: programs such as the recorder that enter nodes themselves), its live
  processes, sending them a signal, freezing and thawing it, setting one of its interfaces
  down/up or silently dropping everything on it (blackhole); for a router: where its daemons
  keep their vty sockets and logs (``router_files``), vtysh commands, and (re)starting one of
  its FRR daemons with its configuration;
- the lab's impairment driver (delay, jitter, loss and rate of links, at runtime).

Errors: a backend raises ``BackendError`` (or another ``LabError``) with a message that says
what failed and why; it never lets a lower-level exception through.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lab.backend.daemons import NodeFiles
from lab.backend.ready import ReadyReport
from lab.backend.state import LabState, ProcessRecord
from lab.impair import ImpairmentDriver
from lab.plan.model import LabPlan
from lab.render.configs import RenderedLab

Progress = Callable[[str], None]


@dataclass
class TeardownReport:
    """What removing a lab found and did; ``leftovers`` names what is still there."""

    lab: str
    existed: bool
    processes: int = 0
    killed: int = 0
    namespaces: int = 0  # the backend's own units: namespaces, containers, hosts
    units: str = "namespaces"  # what ``namespaces`` counts, in words
    leftovers: list[str] = field(default_factory=list)


class Backend(Protocol):
    name: str

    # ------------------------------------------------------------------ the lab

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState:
        """Build the lab; on failure remove what was built (evidence kept) and raise."""
        ...

    def wait_ready(self, state: LabState, plan: LabPlan, timeout_s: float,
                   progress: Progress, when_answered: Callable[[], None] | None = None
                   ) -> ReadyReport:
        """Wait until the lab is ready (lab.backend.ready); ``when_answered`` runs once,
        beside the waiting, as soon as every client is answered after routing went quiet
        (routing may still be settling and BFD coming up); ready includes its return."""
        ...

    def destroy(self, lab: str, force: bool = False) -> TeardownReport: ...

    def status(self, state: LabState, plan: LabPlan) -> dict[str, Any]: ...

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path: ...

    def labs(self) -> list[str]:
        """Labs of this backend on this machine (also those without a readable state)."""
        ...

    def impairment_driver(self, state: LabState) -> ImpairmentDriver: ...

    # ------------------------------------------------------------------ one node

    def netns_path(self, state: LabState, node: str) -> Path: ...

    def exec_argv(self, state: LabState, node: str, argv: Sequence[str]) -> list[str]: ...

    def spawn(self, state: LabState, node: str | None, kind: str, argv: Sequence[str],
              log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        """Start ``argv`` inside ``node`` (None: on the machine), tagged with the lab. The
        caller records the process in the state when it belongs to the lab's life."""
        ...

    def start_in_node(self, state: LabState, node: str, kind: str, argv: Sequence[str],
                      log: Path, extra_env: dict[str, str] | None = None) -> ProcessRecord:
        """Start one of the node's own programs (``argv`` as the node sees its files) where
        the node runs its software, tagged with the lab (``extra_env`` added to its
        environment); the caller records it."""
        ...

    def app_argv(self, program: str, spec: Path) -> list[str]:
        """The command line of the project's program ``program`` (``agent``, ``server``)
        with its spec file, as ``start_in_node`` runs it."""
        ...

    def processes(self, state: LabState, node: str,
                  kinds: Iterable[str] | None = None) -> list[ProcessRecord]:
        """The node's recorded processes that are alive (of these kinds)."""
        ...

    def signal(self, records: Iterable[ProcessRecord], sig: signal.Signals) -> list[int]:
        """Send ``sig`` to these processes; the PIDs that got it."""
        ...

    def freeze(self, state: LabState, nodes: Sequence[str]) -> list[int]:
        """Stop every process of these nodes where it stands (a silent crash)."""
        ...

    def thaw(self, state: LabState, nodes: Sequence[str]) -> list[int]: ...

    def set_links(self, state: LabState, plan: LabPlan, node: str, ifnames: Sequence[str],
                  up: bool) -> None:
        """Administratively down (carrier loss at the peers) or up again, as configured; the
        interfaces together, in one command (a box that loses power loses them at once)."""
        ...

    def set_blackhole(self, state: LabState, node: str, ifname: str, on: bool) -> None:
        """Drop every frame in and out of the interface, silently (carrier stays up)."""
        ...

    def router_files(self, state: LabState, router: str) -> NodeFiles:
        """Where the router's daemons keep configuration, logs and vty sockets, as seen from
        this machine (direct vty queries use it)."""
        ...

    def vtysh(self, state: LabState, router: str, commands: Sequence[str]) -> str:
        """Run vtysh commands (each as ``-c``) on a router; their output. BackendError when
        vtysh fails."""
        ...

    def start_frr_daemon(self, state: LabState, router: str, daemon: str) -> ProcessRecord:
        """Start one FRR daemon of a router (again) and load the router's configuration."""
        ...
