"""The anycast lab in a Mininet script.

    from lab.mininet import AnycastNet

    with AnycastNet("topologies/two-sites-mini.yaml") as net:   # start() ... stop()
        print(net["east-c1"].cmd("ping -c1 192.0.2.53"))
        net.cli()                                                # Mininet's own CLI

``AnycastNet`` brings the lab of a topology file up on the Mininet backend, holding the Mininet
network in the calling process, and returns when every BGP session is Established and every
client is answered on every VIP (the same readiness as `anylab up`). ``net[name]`` is the
Mininet host of a plan node or pod, so ``cmd``, ``popen``, ``sendCmd``, ``IP()`` and the rest
of Mininet's API work on it; ``net.mn`` is the ``mininet.net.Mininet`` object. ``anylab
status``, ``exec``, ``vtysh`` and ``run`` reach the lab from other terminals by its name while
the script runs. ``stop()`` (or leaving the ``with`` block) removes the lab.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.backend import labs
from lab.backend.labs import UpResult
from lab.backend.mininet.backend import MininetBackend
from lab.backend.protocol import TeardownReport
from lab.errors import BackendError


class AnycastNet:
    """The lab of ``topology`` on Mininet, held by this process (see the module's docstring).
    ``name``: the lab's name (default: the topology's); ``progress``: called with each step."""

    def __init__(self, topology: str | Path, name: str | None = None,
                 timeout_s: float = labs.DEFAULT_READY_TIMEOUT_S,
                 progress: Callable[[str], None] | None = None) -> None:
        self.topology = Path(topology)
        self.name = name
        self.timeout_s = timeout_s
        self.progress = progress or (lambda _message: None)
        self.backend = MininetBackend(hold_here=True)
        self.result: UpResult | None = None

    def start(self) -> UpResult:
        """Bring the lab up; BackendError (naming the kept evidence) when it is not ready."""
        if self.result is not None:
            raise BackendError(f"lab {self.result.state.lab!r} is already started")
        result = labs.up(self.topology, self.name, self.progress, timeout_s=self.timeout_s,
                         backend=self.backend)
        if not result.report.ready:
            raise BackendError(f"lab {result.state.lab!r} was not ready:\n"
                               f"{result.report.explain()}\nevidence kept in "
                               f"{result.report.evidence}")
        self.result = result
        return result

    @property
    def lab(self) -> str:
        return self._started().state.lab

    @property
    def mn(self) -> Any:
        """Mininet's own network object (``mininet.net.Mininet``)."""
        self._started()
        network = self.backend.network
        if network is None or network.net is None:
            raise BackendError("the lab's Mininet network is gone")
        return network.net

    def __getitem__(self, node: str) -> Any:
        """The Mininet host of a plan node or pod."""
        return self.mn[node]

    def __contains__(self, node: str) -> bool:
        return node in self.mn

    @property
    def hosts(self) -> list[Any]:
        return list(self.mn.hosts)

    def status(self) -> dict[str, Any]:
        """What `anylab status --json` shows: sessions, announcements, where clients land."""
        result = self._started()
        return self.backend.status(result.state, result.plan)

    def cli(self) -> None:
        """Mininet's CLI on the lab (node names as in the plan, e.g. ``us-c1 ping ...``)."""
        from lab.cli.mininet import LabCLI

        LabCLI(self.mn)

    def stop(self) -> TeardownReport | None:
        """Remove the lab (its processes, hosts and state); None when it was not started."""
        if self.result is None:
            return None
        lab, self.result = self.result.state.lab, None
        return self.backend.destroy(lab, force=True)

    def _started(self) -> UpResult:
        if self.result is None:
            raise BackendError("the lab is not started: call start() first")
        return self.result

    def __enter__(self) -> AnycastNet:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
