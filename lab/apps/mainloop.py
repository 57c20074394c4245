"""The main loop of every long-running Python program a lab runs (node agent, TCP flows,
FIB recorder): one selector for the program's sockets, and a socket pair that wakes it at once
when it must stop (SIGTERM or SIGINT, or ``stop`` from anywhere: a signal handler, another
thread). Nothing polls: a program sleeps in ``wait`` until a socket is ready, its own
deadline passes or it is told to stop.

Standard library only: these programs start by the dozen and import little.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
from collections.abc import Iterator
from types import FrameType

Ready = list[tuple[selectors.SelectorKey, int]]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class MainLoop:
    """``while not loop.stopping: for key, mask in loop.wait(timeout): ...``"""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.stop_reason: str | None = None  # the first reason given (a signal's name)

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str = "stop") -> None:
        """Make ``wait`` return now and ``stopping`` true; safe from a signal handler."""
        if self.stop_reason is None:
            self.stop_reason = reason
        with contextlib.suppress(OSError):  # full or closed: a wake-up is pending anyway
            self._wake_w.send(b"x")

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the loop (with the signal's name) while the body runs."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.stop(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def wait(self, timeout_s: float | None, after_stop: bool = False) -> Ready:
        """The registered sockets ready within ``timeout_s`` (None: no limit); nothing once
        the loop is stopping, unless ``after_stop`` (a program that winds down)."""
        if self.stopping and not after_stop:
            return []
        ready = []
        for key, mask in self.selector.select(None if timeout_s is None
                                              else max(timeout_s, 0.0)):
            if key.fileobj is self._wake_r:
                self._drain()
            else:
                ready.append((key, mask))
        return ready

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._wake_r.recv(4096):
                pass

    def close(self) -> None:
        """Close the selector and the wake-up pair (the program closes its own sockets)."""
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
