"""A fake FRR daemon vty socket for unit tests (protocol in lab.backend.vty): it records each
NUL-terminated command it receives and answers it from a script of replies."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

POLL_S = 0.05


@dataclass(frozen=True)
class Reply:
    output: str = ""
    status: int = 0
    trickle: bool = False  # one byte per send, with tiny sleeps in between
    hang_up: bool = False  # close the connection before the reply's trailer is complete
    silent: bool = False  # never answer


@contextmanager
def short_dir() -> Iterator[Path]:
    """A folder under /tmp: unix socket paths must stay under ~100 characters."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="vty"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


class FakeVty:
    """Serves ``path`` in a thread until closed; unscripted commands succeed with no output."""

    def __init__(self, path: Path, replies: Mapping[str, Reply] | None = None) -> None:
        self.replies = dict(replies or {})
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen()
        self._server.settimeout(POLL_S)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeVty:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(POLL_S)
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                command = raw.decode()
                self.commands.append(command)
                if not self._answer(conn, self.replies.get(command, Reply())):
                    return

    def _answer(self, conn: socket.socket, reply: Reply) -> bool:
        """Send one reply; False when the connection should end."""
        if reply.silent:
            return True
        data = reply.output.encode() + b"\0\0\0" + bytes([reply.status])
        if reply.hang_up:
            conn.sendall(data[:-2])
            return False
        if reply.trickle:
            for i in range(len(data)):
                conn.sendall(data[i:i + 1])
                time.sleep(0.002)
        else:
            conn.sendall(data)
        return True
