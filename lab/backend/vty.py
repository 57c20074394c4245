"""Commands to one FRR daemon over its vty socket, the way vtysh talks to it.

vtysh costs ~40 ms of CPU per start (it builds the command tree of every daemon); readiness
and status ask dozens of routers, so they talk to the one daemon that knows the answer
directly. The protocol (FRR lib/vty.c, stable since Quagga): the client writes a command
followed by a NUL byte; the daemon answers with the output, three NUL bytes and a status
byte (0 = success). Commands on one connection share a context, as in a vtysh session.
vtysh stays the tool for whole integrated configurations, which it splits between daemons.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from lab.errors import BackendError

VTY_TIMEOUT_S = 10.0
_STATUS = {1: "warning", 2: "unknown command", 3: "ambiguous command",
           4: "incomplete command", 13: "configuration failed"}


def vty_commands(path: Path, commands: Sequence[str],
                 timeout_s: float = VTY_TIMEOUT_S) -> list[str]:
    """Run ``commands`` in order on the daemon listening at ``path``; their outputs.
    Raises BackendError at the first command that does not succeed."""
    outputs = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            for command in commands:
                sock.sendall(command.encode() + b"\0")
                status, output = _reply(sock)
                if status != 0:
                    raise BackendError(f"{path.name}: {command!r} failed "
                                       f"({_STATUS.get(status, status)}): {output.strip()}")
                outputs.append(output)
    except OSError as exc:
        raise BackendError(f"{path}: {exc}") from exc
    return outputs


def _reply(sock: socket.socket) -> tuple[int, str]:
    data = b""
    while len(data) < 4 or data[-4:-1] != b"\0\0\0":
        chunk = sock.recv(65536)
        if not chunk:
            raise BackendError("the daemon closed its vty connection")
        data += chunk
    return data[-1], data[:-4].decode("utf-8", errors="replace")
