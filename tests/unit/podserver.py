"""The C pod server on loopback, for tests: started from a spec (as ``lab.apps.server`` starts
it), its ports read from its ready line, and ended when the test is done."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from lab.apps.server.build import ensure_server_built
from lab.apps.server.main import server_argv
from lab.apps.server.spec import ServerSpec

START_TIMEOUT_S = 10.0


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    ready_line: str
    ports: dict[str, int]  # service name -> port; "health" too


def ports_of(ready_line: str) -> dict[str, int]:
    """Each service's port (``udp/PORT (NAME)``) and the health port (``health tcp/PORT``)."""
    ports = {name: int(port) for port, name in re.findall(r"(?:udp|tcp)/(\d+) \(([^)]*)\)",
                                                              ready_line)}
    health = re.search(r"health tcp/(\d+)", ready_line)
    if health:
        ports["health"] = int(health.group(1))
    return ports


@contextlib.contextmanager
def running_server(spec: ServerSpec) -> Iterator[RunningServer]:
    process = subprocess.Popen(server_argv(spec, ensure_server_built()), stdin=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        line = process.stderr.readline().decode()  # the ready line, or an error and exit
        if "ready on" not in line:
            process.wait(START_TIMEOUT_S)
            raise AssertionError(f"the pod server did not start (exit {process.returncode}): "
                                 f"{line}{process.stderr.read().decode()}")
        yield RunningServer(process, line, ports_of(line))
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(START_TIMEOUT_S)
        process.stderr.close()
