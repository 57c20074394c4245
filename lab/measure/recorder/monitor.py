"""The FIB recorder process: one thread, one epoll set, one netlink socket per router.

Each socket lives in its router's namespace and hears every IPv4 route, nexthop and link
change there. Changes of the watched prefixes (main table) become JSON lines stamped with
CLOCK_MONOTONIC at receipt (see ``lab.measure.recorder.tracker``). At start, and after a
receive-buffer overrun, the current routes are dumped as ``present`` rows. Output is flushed
at least every 100 ms; SIGTERM or SIGINT ends the process with status 0.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from lab.apps.mainloop import MainLoop
from lab.errors import RecorderError
from lab.measure.recorder.messages import RTM_GETNEXTHOP, RTM_GETROUTE, dump_request
from lab.measure.recorder.netlink import port_id, route_monitor_socket
from lab.measure.recorder.spec import RecorderSpec
from lab.measure.recorder.tracker import Emit, FibTracker, Row

FLUSH_INTERVAL_NS = 50_000_000
SELECT_TIMEOUT_S = 0.05
DUMP_TIMEOUT_S = 10.0
RECEIVE_SIZE = 1 << 18


class RouterMonitor:
    """The netlink socket of one router, feeding its FibTracker."""

    def __init__(self, name: str, netns: Path, prefixes: frozenset[str], emit: Emit) -> None:
        self.name = name
        self.sock, compat_mode = route_monitor_socket(netns)
        self.port = port_id(self.sock)
        self.tracker = FibTracker(name, prefixes, compat_mode, emit)
        self._buffer = bytearray(RECEIVE_SIZE)
        self._seq = 0
        self.overruns = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def snapshot(self) -> None:
        """Load the nexthop objects, then write the watched routes as ``present`` rows;
        routes known before but gone now (lost notifications) are written as ``del``."""
        for attempt in range(3):
            try:
                self._dump(RTM_GETNEXTHOP)
                self.tracker.seen_in_dump = set()
                self._dump(RTM_GETROUTE)
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS or attempt == 2:
                    raise
        self.tracker.forget_missing(time.monotonic_ns())

    def _dump(self, kind: int) -> None:
        self._seq += 1
        self.sock.settimeout(DUMP_TIMEOUT_S)
        try:
            self.sock.send(dump_request(kind, self._seq))
            ended = False
            while not ended:
                size = self.sock.recv_into(self._buffer)
                ended = self.tracker.handle(bytes(self._buffer[:size]), time.monotonic_ns(),
                                            self.port, self._seq)
        except TimeoutError as exc:
            raise RecorderError(f"{self.name}: no answer to a netlink dump") from exc
        finally:
            self.sock.setblocking(False)

    def receive(self) -> None:
        """Handle every datagram waiting on the socket."""
        while True:
            try:
                size = self.sock.recv_into(self._buffer)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                print(f"recorder: {self.name}: netlink receive buffer overrun, "
                      "re-reading the routes", file=sys.stderr, flush=True)
                self.snapshot()
                continue
            self.tracker.handle(bytes(self._buffer[:size]), time.monotonic_ns())


class RowWriter:
    """JSON lines, flushed at most FLUSH_INTERVAL_NS after they were written."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._dirty = False
        self._last_flush = time.monotonic_ns()
        self.rows = 0

    def write(self, row: Row) -> None:
        self._handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._dirty = True
        self.rows += 1

    def flush(self, force: bool = False) -> None:
        now = time.monotonic_ns()
        if self._dirty and (force or now - self._last_flush >= FLUSH_INTERVAL_NS):
            self._handle.flush()
            self._dirty = False
            self._last_flush = now


def _open_monitors(spec: RecorderSpec, emit: Emit) -> list[RouterMonitor]:
    prefixes = frozenset(spec.prefixes)
    monitors: list[RouterMonitor] = []
    try:
        for router in spec.routers:
            try:
                monitors.append(RouterMonitor(router.name, Path(router.netns), prefixes, emit))
            except OSError as exc:
                raise RecorderError(f"{router.name}: cannot watch {router.netns}: {exc}") from exc
        for monitor in monitors:
            monitor.snapshot()
    except BaseException:
        for monitor in monitors:
            monitor.close()
        raise
    return monitors


def record(spec: RecorderSpec) -> int:
    """Watch until SIGTERM or SIGINT; returns the number of rows written."""
    loop = MainLoop()
    try:
        with loop.stopped_by_signals():
            out = os.open(spec.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                          0o600)
            with open(out, "a", encoding="utf-8") as handle:  # noqa: PTH123 (an fd)
                writer = RowWriter(handle)
                monitors = _open_monitors(spec, writer.write)
                writer.flush(force=True)
                Path(spec.ready).touch()
                try:
                    _loop(monitors, loop, writer)
                finally:
                    writer.flush(force=True)
                    for monitor in monitors:
                        monitor.close()
                return writer.rows
    finally:
        loop.close()


def _loop(monitors: list[RouterMonitor], loop: MainLoop, writer: RowWriter) -> None:
    for monitor in monitors:
        loop.selector.register(monitor, selectors.EVENT_READ, monitor)
    while not loop.stopping:
        for key, _events in loop.wait(SELECT_TIMEOUT_S):
            key.data.receive()
        writer.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.measure.recorder",
                                     description="Record FIB changes of service prefixes.")
    parser.add_argument("--spec", required=True, type=Path, help="recorder spec (JSON)")
    args = parser.parse_args(argv)
    try:
        spec = RecorderSpec.load(args.spec)
        rows = record(spec)
    except (RecorderError, OSError) as exc:
        print(f"recorder: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"recorder: stopped, {rows} rows, pid {os.getpid()}", file=sys.stderr, flush=True)
    return 0
