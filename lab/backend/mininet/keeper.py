"""The process that holds a lab's Mininet network while the lab is up:
``python -m lab.backend.mininet.keeper SPEC HOSTS``.

A Mininet host lives as long as its shell, and the shell as long as the process that holds its
terminal: `anylab up` ends, the lab stays, so the network is held here. The keeper builds the
network of SPEC (``lab.backend.mininet.network``), writes each host's shell (PID and start
time) to HOSTS, and waits. SIGTERM or SIGINT end the hosts and the keeper. A build that fails
writes ``{"error": ...}`` to HOSTS instead and exits 1. The keeper runs with the lab's tag like
every process of the lab, so a forced teardown finds it even without a state file.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType

from lab.atomicfile import write_atomic
from lab.backend.mininet.network import MininetNetwork, NetworkSpec, write_hosts
from lab.errors import LabError


class _Stop(Exception):
    pass


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def main(argv: list[str]) -> int:
    spec_path, hosts_path = Path(argv[0]), Path(argv[1])
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    network = MininetNetwork(NetworkSpec.from_json(spec_path.read_text(encoding="utf-8")))
    try:
        try:
            shells = network.build()
        except LabError as exc:
            write_atomic(hosts_path, json.dumps({"error": str(exc)}))
            return 1
        write_hosts(hosts_path, shells)
        while True:
            signal.pause()
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        network.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
