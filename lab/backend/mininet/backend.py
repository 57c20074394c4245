"""The Mininet backend's implementation of the backend protocol.

Every node is a Mininet host: a shell in a network namespace of its own that has no name
under /run/netns. The backend reaches a host through ``/proc/PID/ns/net`` of its shell (PID
and start time as the network's holder wrote them, so a reused PID is never entered);
everything else is the netns backend's, on that path: the lab's programs start in the host's
namespace with ``nsenter``, faults act on its interfaces and processes, the link emulator runs
in a host of its own. The network is held by the keeper process (``lab.backend.mininet.keeper``)
or, for ``anylab mininet`` and ``lab.mininet.AnycastNet``, by the calling process itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lab.backend.mininet.network import HostShell, read_hosts
from lab.backend.names import lab_dir, state_labs
from lab.backend.netns.backend import NetnsBackend
from lab.backend.protocol import Progress, TeardownReport
from lab.backend.state import LabState
from lab.errors import BackendError
from lab.plan.model import LabPlan
from lab.render.configs import RenderedLab

if TYPE_CHECKING:
    from lab.backend.mininet.network import MininetNetwork

HOSTS_FILE = "mininet-hosts.json"  # host -> [shell PID, start time], by the network's holder
SPEC_FILE = "mininet.json"  # what the network is made of (lab.backend.mininet.network)


def hosts_file(lab: str) -> Path:
    return lab_dir(lab) / HOSTS_FILE


class MininetBackend(NetnsBackend):
    """Mininet hosts and links; FRR, GoBGP and the lab's programs in the hosts' namespaces.
    ``hold_here``: hold the Mininet network in this process (``network``), not in a keeper."""

    name = "mininet"

    def __init__(self, hold_here: bool = False) -> None:
        self.hold_here = hold_here
        self.network: MininetNetwork | None = None
        self._shells: dict[str, tuple[int, dict[str, HostShell]]] = {}

    # ------------------------------------------------------------------ the lab

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Progress, driver_kind: str | None = None) -> LabState:
        from lab.backend.mininet.deploy import deploy

        return deploy(self, lab, plan, rendered, topology_file, progress, driver_kind)

    def destroy(self, lab: str, force: bool = False) -> TeardownReport:
        from lab.backend.mininet.teardown import destroy

        self._shells.pop(lab, None)
        if self.network is not None:  # end the shells here first: this process reaps them
            self.network.stop()
            self.network = None
        return destroy(lab, force)

    def labs(self) -> list[str]:
        from lab.backend.mininet.teardown import keeper_labs

        return sorted(set(state_labs()) | set(keeper_labs()))

    def kernel_views(self, state: LabState) -> dict[str, str]:
        from lab.backend.evidence import within_time

        namespaces = {name: shell.netns() for name, shell in self.shells(state.lab).items()
                      if shell.alive()}
        return within_time(list(namespaces), lambda name: self._kernel_view(namespaces[name]))

    # ------------------------------------------------------------------ one node

    def shells(self, lab: str) -> dict[str, HostShell]:
        """Each host's shell, as the network's holder wrote them (read again when changed)."""
        path = hosts_file(lab)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return {}
        cached = self._shells.get(lab)
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_hosts(path))
            self._shells[lab] = cached
        return cached[1]

    def namespace(self, lab: str, node: str) -> str:
        """``/proc/PID/ns/net`` of the host's shell."""
        shell = self.shells(lab).get(node)
        if shell is None:
            raise BackendError(f"lab {lab} has no Mininet host {node}")
        if not shell.alive():
            raise BackendError(f"Mininet host {node} of lab {lab} is gone (its shell, PID "
                               f"{shell.pid}, has ended: was the network's holder stopped?)")
        return shell.netns()

