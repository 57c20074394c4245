"""HTTP (or plain TCP connect) probes of anycast services from client namespaces, on one clock.

``python -m lab.measure.probe.httpprobe --spec FILE`` (spec: ``lab.measure.probe.httpspec``)
gives every flow a slot every ``interval_ms`` from one common start (CLOCK_MONOTONIC: slot k
is at start + k * interval, no drift; slots missed while the program stalled are skipped and
counted, never sent in a burst; the selector wakes with millisecond resolution, so a probe
goes out up to about a millisecond after its slot, stamped when it does). At each slot a flow
makes one probe (its ``seq`` counts probes made, from 0):

- ``http`` with ``keepalive``: a GET on the flow's persistent HTTP/1.1 connection (made at the
  slot when there is none: the request follows the handshake). When the previous request is
  still unanswered the slot's probe is lost as ``busy``: nothing is sent, no pipelining. A
  response without keep-alive ends the connection; a timeout closes it with RST; the next slot
  makes a new one (at most one connection attempt per slot).
- ``http`` without ``keepalive``: a new connection per slot, a GET with ``Connection: close``;
  several may be in flight.
- ``connect``: a new connection per slot; answered when the handshake completes, then closed
  with RST.

A probe is answered by a complete response (head and body: Content-Length, chunked, or up to
the server's close; at most ``MAX_BODY`` bytes) or, in ``connect`` mode, the handshake; it is
lost when that does not come within ``timeout_ms``, or on a connection error. Send time: when
the request was written (keep-alive) or when connect() was called (a new connection per probe);
receive time: when the response was complete or the handshake done. Connections are closed
with RST, so that none waits in TIME_WAIT in a client namespace.

The record file (``out``; write-buffered, flushed every ``FLUSH_NS`` and at exit; a reader
ignores an unfinished last line) has one record per line, a type letter and blank-separated
fields; times are CLOCK_MONOTONIC ns, ``-`` an absent status:

======  ============================================  ==========================================
letter  fields                                         meaning
======  ============================================  ==========================================
``H``   1 MODE KEEPALIVE INTERVAL_NS TIMEOUT_NS        header: format 1, ``http`` or ``connect``,
        START_NS TRIAL                                 1/0, the time of slot 0, the spec's
                                                       trial (``-``: none)
``F``   KEY CLIENT SERVICE VIP PORT FLOW               a flow; KEY from 0, in spec order
``I``   ID TEXT                                        identity ID (from 0): the identity
                                                       header's value (non-printable: ``0x``
                                                       and its bytes in hex)
``A``   KEY SEQ SEND_NS RECV_NS STATUS ID              an answered probe: a response (STATUS
                                                       its code, any code) or a handshake
                                                       (STATUS ``-``); ID -1: no identity
``L``   KEY SEQ SEND_NS REASON STATUS                  a lost probe (STATUS when known: a
                                                       malformed response's code)
``K``   T_NS SLOTS                                     SLOTS slots skipped (every flow)
``X``   T_NS NAME=COUNT ...                            counters at exit (``COUNTERS``)
======  ============================================  ==========================================

Counters: ``probes`` made, ``answered`` (responses of any status, or handshakes), ``failed``
(answered with a status outside 2xx/3xx), ``lost_REASON`` per reason, ``skipped`` slots,
``connects`` (connect() calls) and ``connections`` (handshakes completed: one per flow while
keep-alive connections last).

Lost reasons (``REASONS``): ``timeout`` (no complete response, or handshake, in time),
``refused``, ``reset``, ``unreachable`` (also: the client's namespace cannot be entered),
``eof`` (the server closed before the response was complete), ``busy`` (the previous request
was still outstanding; SEND_NS is the slot's time), ``malformed`` (not an HTTP/1.x response,
or a body over ``MAX_BODY``), ``stopped`` (unanswered when SIGTERM/SIGINT came). Records are
written when a probe's outcome is known: not in seq order. ``lab.measure.probe.httprecords``
reads them (``load_http_probes``: probes.parquet rows).

One thread and one selector for every flow; each socket is created inside its client's
namespace (setns on this thread, then back; not at all when it is the program's own). SIGTERM
and SIGINT end the program: unanswered probes are written ``stopped``, then the counters,
exit status 0. ``duration_ms`` ends it too: no slot at or after it, then unanswered probes get
their time. Standard library only: the program starts cheaply.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import selectors
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lab.apps.mainloop import MainLoop
from lab.apps.server.spec import SpecError
from lab.measure.probe.httpspec import HttpFlowSpec, HttpProbeSpec, load_http_probe_spec
from lab.measure.probe.tcpflows import LINGER_RESET, reason_for, start_program
from lab.netns import in_netns, netns_path

if TYPE_CHECKING:
    from lab.backend.processes import Spawn
    from lab.backend.state import ProcessRecord

FORMAT = 1
REASONS = ("timeout", "refused", "reset", "unreachable", "eof", "busy", "malformed", "stopped")
COUNTERS = ("probes", "answered", "failed", *(f"lost_{r}" for r in REASONS), "skipped",
            "connects", "connections")
FLUSH_NS = 100_000_000
RECV_SIZE = 65536
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
USER_AGENT = "anycast-lab-httpprobe/1"
_PROG = "lab.measure.probe.httpprobe"


class Malformed(Exception):
    """The bytes received are not an HTTP/1.x response we accept."""


class Response:
    __slots__ = ("identity", "keep_alive", "status")

    def __init__(self, status: int, identity: bytes | None, keep_alive: bool) -> None:
        self.status, self.identity, self.keep_alive = status, identity, keep_alive


class ResponseReader:
    """An incremental HTTP/1.x response parser: ``feed`` bytes until it returns the Response
    (Malformed when they are not one); ``finish`` at the server's close. The body is counted,
    not kept."""

    __slots__ = ("body", "buf", "identity_header", "remaining", "response", "state", "status")

    def __init__(self, identity_header: str | None) -> None:
        self.identity_header = identity_header.lower().encode() if identity_header else None
        self.buf = bytearray()
        self.reset()

    def reset(self) -> None:
        self.buf.clear()
        self.state = "head"  # head, length, chunk-size, chunk-data, chunk-end, trailer, close
        self.status: int | None = None  # once the head is read
        self.response: Response | None = None
        self.remaining = 0
        self.body = 0

    def feed(self, data: bytes) -> Response | None:
        self.buf += data
        while True:
            if self.state == "head":
                if not self._head():
                    return None
            elif self.state == "close":
                self._body(len(self.buf))
                self.buf.clear()
                return None
            elif self.state == "length":
                taken = min(self.remaining, len(self.buf))
                del self.buf[:taken]
                self.remaining -= taken
                if self.remaining:
                    return None
                return self._done()
            elif not self._chunked():
                return None
            if self.state == "done":
                return self._done()

    def finish(self) -> Response | None:
        """The response the server's close completes (a body up to the close), if any."""
        if self.state == "close" and self.response is not None:
            return self._done()
        return None

    def _done(self) -> Response:
        assert self.response is not None
        if self.buf:  # more than we asked for: the connection cannot be trusted further
            self.response.keep_alive = False
        self.state = "done"
        return self.response

    def _body(self, size: int) -> None:
        self.body += size
        if self.body > MAX_BODY:
            raise Malformed(f"body over {MAX_BODY} bytes")

    def _line(self, limit: int) -> bytes | None:
        end = self.buf.find(b"\n")
        if end < 0:
            if len(self.buf) > limit:
                raise Malformed("line too long")
            return None
        line = bytes(self.buf[:end])
        del self.buf[:end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _head(self) -> bool:
        ends = [i for i in (self.buf.find(b"\n\r\n"), self.buf.find(b"\n\n")) if i >= 0]
        if not ends:
            if len(self.buf) > MAX_HEAD:
                raise Malformed("response head too long")
            return False
        end = min(ends)
        size = end + (3 if self.buf[end + 1:end + 2] == b"\r" else 2)
        if size > MAX_HEAD:
            raise Malformed("response head too long")
        lines = bytes(self.buf[:end]).split(b"\n")
        del self.buf[:size]
        version, status = _status_line(lines[0].rstrip(b"\r"))
        headers = _headers(lines[1:])
        if 100 <= status < 200:
            if status == 101:
                raise Malformed("101 Switching Protocols: no upgrade was asked for")
            return True  # an interim response: the real one follows
        self.status = status
        connection = {t.strip().lower() for v in headers.get(b"connection", ())
                      for t in v.split(b",")}
        keep_alive = b"close" not in connection if version == b"HTTP/1.1" \
            else b"keep-alive" in connection
        ident = None
        if self.identity_header is not None:
            values = headers.get(self.identity_header)
            ident = values[0] if values and values[0] else None
        self.response = Response(status, ident, keep_alive)
        coding = headers.get(b"transfer-encoding")
        lengths = {v.strip() for value in headers.get(b"content-length", ())
                   for v in value.split(b",")}
        if status in (204, 304):
            self.state = "done"
        elif coding:
            chunked = coding[-1].split(b",")[-1].strip().lower() == b"chunked"
            self.state = "chunk-size" if chunked else "close"
        elif lengths:
            if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
                raise Malformed("bad Content-Length")
            self.remaining = int(length)
            self._body(self.remaining)
            self.state = "length"
        else:
            self.state = "close"
        if self.state == "close":
            self.response.keep_alive = False
        return True

    def _chunked(self) -> bool:
        """One step of a chunked body; False when it needs more bytes."""
        if self.state == "chunk-size":
            line = self._line(1024)
            if line is None:
                return False
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16) if size_text.isalnum() else -1
            except ValueError:
                size = -1
            if size < 0:
                raise Malformed(f"bad chunk size {size_text[:20]!r}")
            self._body(size)
            self.remaining = size
            self.state = "chunk-data" if size else "trailer"
        elif self.state == "chunk-data":
            taken = min(self.remaining, len(self.buf))
            del self.buf[:taken]
            self.remaining -= taken
            if self.remaining:
                return False
            self.state = "chunk-end"
        elif self.state == "chunk-end":
            line = self._line(2)
            if line is None:
                return False
            if line:
                raise Malformed("chunk data longer than its size")
            self.state = "chunk-size"
        else:  # trailer fields, up to an empty line
            line = self._line(MAX_HEAD)
            if line is None:
                return False
            if not line:
                self.state = "done"
        return True


def _status_line(line: bytes) -> tuple[bytes, int]:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") \
            or len(parts[1]) != 3 or not parts[1].isdigit() or not 100 <= int(parts[1]) <= 599:
        raise Malformed(f"bad status line {line[:40]!r}")
    return parts[0], int(parts[1])


def _headers(lines: list[bytes]) -> dict[bytes, list[bytes]]:
    headers: dict[bytes, list[bytes]] = {}
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
            raise Malformed(f"bad header line {line[:40]!r}")
        headers.setdefault(name.lower(), []).append(value.strip(b" \t"))
    return headers


def identity_text(value: bytes) -> str:
    """How an identity is written: printable ASCII as is, anything else ``0x`` and hex."""
    if all(32 <= b <= 126 for b in value):
        return value.decode("ascii")
    return "0x" + value.hex()


class RecordFile:
    """The record file, write-buffered (``flush`` writes what is buffered)."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = path.open("w", encoding="ascii", buffering=1 << 16)
        self.identities: dict[bytes, int] = {}
        self.counters = dict.fromkeys(COUNTERS, 0)

    def identity(self, value: bytes | None) -> int:
        if value is None:
            return -1
        ident = self.identities.get(value)
        if ident is None:
            ident = self.identities[value] = len(self.identities)
            self.file.write(f"I {ident} {identity_text(value)}\n")
        return ident

    def answered(self, key: int, probe: Probe, recv_ns: int, status: int | None,
                 identity: bytes | None) -> None:
        ident = self.identity(identity)
        self.file.write(f"A {key} {probe.seq} {probe.send_ns} {recv_ns} "
                        f"{'-' if status is None else status} {ident}\n")
        self.counters["answered"] += 1
        if status is not None and not 200 <= status <= 399:
            self.counters["failed"] += 1

    def lost(self, key: int, seq: int, send_ns: int, reason: str, status: int | None) -> None:
        self.file.write(f"L {key} {seq} {send_ns} {reason} "
                        f"{'-' if status is None else status}\n")
        self.counters[f"lost_{reason}"] += 1

    def write(self, line: str) -> None:
        self.file.write(line)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Probe:
    __slots__ = ("conn", "deadline", "done", "send_ns", "seq")

    def __init__(self, seq: int, send_ns: int, deadline: int) -> None:
        self.seq, self.send_ns, self.deadline = seq, send_ns, deadline
        self.conn: Conn | None = None
        self.done = False


class Conn:
    """One TCP connection of a flow, and the probe it carries (None: idle)."""

    __slots__ = ("events", "flow", "outbox", "probe", "reader", "sock", "state")

    def __init__(self, flow: Flow, sock: socket.socket) -> None:
        self.flow, self.sock = flow, sock
        self.state = "connecting"
        self.probe: Probe | None = None
        self.reader = ResponseReader(flow.runner.identity_header)
        self.outbox = b""
        self.events = selectors.EVENT_WRITE  # what the selector waits for (once registered)

    def on_ready(self, mask: int, now: int) -> None:
        if self.state == "connecting":
            self.connected(now)
            return
        if mask & selectors.EVENT_WRITE and self.outbox:
            self.flush()
        if mask & selectors.EVENT_READ and self.sock.fileno() >= 0:  # not closed by flush
            self.receive(now)

    def connected(self, now: int) -> None:
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.fail(now, reason_for(code))
            return
        runner = self.flow.runner
        runner.log.counters["connections"] += 1
        self.state = "open"
        if runner.mode == "connect":
            self.answer(now, None, None)
            self.close()
            return
        if runner.keepalive and self.probe is not None:
            self.probe.send_ns = time.monotonic_ns()
        self.outbox = self.flow.request
        self.flush()

    def send(self, probe: Probe) -> None:
        """Write the request of ``probe`` on this idle connection."""
        self.attach(probe)
        probe.send_ns = time.monotonic_ns()
        self.outbox = self.flow.request
        self.flush()

    def attach(self, probe: Probe) -> None:
        self.probe, probe.conn = probe, self
        self.flow.inflight.append(probe)

    def flush(self) -> None:
        try:
            sent = self.sock.send(self.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.fail(time.monotonic_ns(), reason_for(exc.errno or 0))
            return
        self.outbox = self.outbox[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
        if events != self.events:
            self.events = events
            self.flow.runner.selector.modify(self.sock, events, self)

    def receive(self, now: int) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(now, reason_for(exc.errno or 0))
            return
        if self.probe is None:  # the server closed an idle connection, or talks unasked
            self.close()
            return
        if not data:
            response = self.reader.finish()
            if response is None:
                self.fail(now, "eof")
            else:
                self.answer(now, response.status, response.identity)
                self.close()
            return
        try:
            response = self.reader.feed(data)
        except Malformed:
            self.fail(now, "malformed", self.reader.status)
            return
        if response is None:
            return
        self.answer(now, response.status, response.identity)
        if self.flow.runner.keepalive and response.keep_alive:
            self.reader.reset()
        else:
            self.close()

    def answer(self, now: int, status: int | None, identity: bytes | None) -> None:
        probe = self.probe
        assert probe is not None
        probe.done, self.probe = True, None
        self.flow.runner.log.answered(self.flow.key, probe, now, status, identity)

    def fail(self, now: int, reason: str, status: int | None = None) -> None:
        """The probe (if any) is lost for ``reason``; the connection goes."""
        probe = self.probe
        if probe is not None:
            probe.done, self.probe = True, None
            self.flow.runner.log.lost(self.flow.key, probe.seq, probe.send_ns, reason, status)
        self.close()

    def close(self) -> None:
        flow = self.flow
        if flow.conn is self:
            flow.conn = None
        if flow.runner.selector.get_map().get(self.sock) is not None:
            flow.runner.selector.unregister(self.sock)
        try:  # noqa: SIM105 (best effort on a socket that may be dead already)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        except OSError:
            pass
        self.sock.close()


class Flow:
    """One flow's probes: its connection (keep-alive) and the probes in flight, oldest first
    (they share the timeout, so the first one is the next to expire)."""

    def __init__(self, key: int, spec: HttpFlowSpec, runner: ProbeRunner) -> None:
        self.key, self.spec, self.runner = key, spec, runner
        self.seq = 0
        self.conn: Conn | None = None
        self.inflight: deque[Probe] = deque()
        self.netns: str | None = None if _is_own_netns(spec.netns) else spec.netns
        self.failing = False  # a socket could not be made: said once per outage
        self.request = _request(spec, runner.spec)

    def new_probe(self, now: int) -> Probe:
        probe = Probe(self.seq, now, now + self.runner.timeout_ns)
        self.seq += 1
        self.runner.log.counters["probes"] += 1
        return probe

    def connect(self, sock: socket.socket, probe: Probe) -> None:
        runner = self.runner
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(self, sock)
        conn.attach(probe)
        if runner.keepalive:
            self.conn = conn
        runner.log.counters["connects"] += 1
        probe.send_ns = time.monotonic_ns()
        code = sock.connect_ex((self.spec.vip, self.spec.port))
        if code not in (0, errno.EINPROGRESS):
            conn.fail(time.monotonic_ns(), reason_for(code))
            return
        runner.selector.register(sock, selectors.EVENT_WRITE, conn)

    def deadline(self) -> int | None:
        inflight = self.inflight
        while inflight and inflight[0].done:
            inflight.popleft()
        return inflight[0].deadline if inflight else None

    def expire(self, now: int) -> None:
        while (deadline := self.deadline()) is not None and deadline <= now:
            conn = self.inflight.popleft().conn
            assert conn is not None
            conn.fail(now, "timeout")

    def stop(self, now: int) -> None:
        for probe in self.inflight:
            if not probe.done and probe.conn is not None:
                probe.conn.fail(now, "stopped")
        self.inflight.clear()
        if self.conn is not None:
            self.conn.close()


class ProbeRunner:
    """Every flow on one main loop; ``run`` until ``stop`` (or the spec's duration)."""

    def __init__(self, spec: HttpProbeSpec, log: RecordFile) -> None:
        self.spec, self.log = spec, log
        self.mode, self.keepalive = spec.mode, spec.keepalive and spec.mode == "http"
        self.identity_header = spec.identity_header
        self.interval_ns = spec.interval_ms * 1_000_000
        self.timeout_ns = spec.timeout_ms * 1_000_000
        self.end_slot = None if spec.duration_ms is None \
            else -(-spec.duration_ms * 1_000_000 // self.interval_ns)  # first slot not made
        self.loop = MainLoop()
        self.selector = self.loop.selector
        self.flows = [Flow(key, f, self) for key, f in enumerate(spec.flows)]
        self.start_ns = 0
        self.next_slot = 0

    def header(self) -> None:
        self.start_ns = time.monotonic_ns()
        trial = "-" if self.spec.trial is None else self.spec.trial
        self.log.write(f"H {FORMAT} {self.mode} {int(self.keepalive)} {self.interval_ns} "
                       f"{self.timeout_ns} {self.start_ns} {trial}\n")
        for flow in self.flows:
            f = flow.spec
            self.log.write(f"F {flow.key} {f.client} {f.service} {f.vip} {f.port} {f.flow}\n")

    def run(self) -> None:
        self.header()
        flush_at = self.start_ns + FLUSH_NS
        while not self.loop.stopping:
            now = time.monotonic_ns()
            for flow in self.flows:
                flow.expire(now)
            slot = (now - self.start_ns) // self.interval_ns
            ended = self.end_slot is not None and self.next_slot >= self.end_slot
            if ended and all(flow.deadline() is None for flow in self.flows):
                return
            if not ended and slot >= self.next_slot:
                self.slot(now, slot)
            if now >= flush_at:
                self.log.flush()
                flush_at = now + FLUSH_NS
            wakes = [flush_at, *(d for f in self.flows if (d := f.deadline()) is not None)]
            if self.end_slot is None or self.next_slot < self.end_slot:
                wakes.append(self.start_ns + self.next_slot * self.interval_ns)
            wake = min(wakes)
            for key, mask in self.loop.wait((wake - time.monotonic_ns()) / 1e9):
                key.data.on_ready(mask, time.monotonic_ns())

    def slot(self, now: int, slot: int) -> None:
        """Slot ``slot`` is due: the ones missed since the last are skipped (counted, not
        sent), and none at or after the end."""
        made = self.end_slot is None or slot < self.end_slot
        upto = slot if made else self.end_slot
        assert upto is not None
        if upto > self.next_slot:
            self.log.write(f"K {now} {upto - self.next_slot}\n")
            self.log.counters["skipped"] += upto - self.next_slot
        self.next_slot = upto + 1 if made else upto
        if made:
            self.on_slot(now)

    def on_slot(self, now: int) -> None:
        """Every flow's probe of this slot; new sockets made per namespace at once."""
        wanted: dict[str | None, list[tuple[Flow, Probe]]] = {}
        for flow in self.flows:
            probe = flow.new_probe(now)
            conn = flow.conn
            if conn is None:
                wanted.setdefault(flow.netns, []).append((flow, probe))
            elif conn.probe is not None:
                self.log.lost(flow.key, probe.seq, now, "busy", None)
            else:
                conn.send(probe)
        for netns, asks in wanted.items():
            made = _sockets(netns, [flow.spec.family for flow, _ in asks])
            for (flow, probe), sock in zip(asks, made, strict=True):
                if isinstance(sock, socket.socket):
                    flow.failing = False
                    flow.connect(sock, probe)
                    continue
                if not flow.failing:
                    print(f"{_PROG}: {flow.spec.client}: {sock}", file=sys.stderr, flush=True)
                    flow.failing = True
                self.log.lost(flow.key, probe.seq, probe.send_ns, "unreachable", None)

    def stop(self) -> None:
        self.loop.stop()

    def finish(self) -> None:
        """Unanswered probes ``stopped``, every connection closed, the counters written."""
        now = time.monotonic_ns()
        for flow in self.flows:
            flow.stop(now)
        counters = " ".join(f"{name}={count}" for name, count in self.log.counters.items())
        self.log.write(f"X {time.monotonic_ns()} {counters}\n")
        self.log.flush()

    def close(self) -> None:
        for flow in self.flows:
            flow.stop(time.monotonic_ns())
        self.loop.close()


def _sockets(netns: str | None, families: list[str]) -> list[socket.socket | OSError]:
    """New TCP sockets in ``netns`` (None: this program's own), one per family given; the
    error instead of each when the namespace cannot be entered or a socket not made."""
    made: list[socket.socket | OSError] = []
    try:
        with in_netns(netns) if netns is not None else contextlib.nullcontext():
            for family in families:
                try:
                    made.append(socket.socket(
                        socket.AF_INET6 if family == "ipv6" else socket.AF_INET,
                        socket.SOCK_STREAM))
                except OSError as exc:  # out of descriptors
                    made.append(exc)
    except OSError as exc:  # the namespace is gone (NamespaceError)
        for sock in made:
            if isinstance(sock, socket.socket):
                sock.close()
        return [exc] * len(families)
    return made


def _is_own_netns(netns: str) -> bool:
    """Whether ``netns`` is this program's namespace (then sockets need no setns)."""
    try:
        target = netns_path(netns).stat()
        own = Path("/proc/thread-self/ns/net").stat()
    except OSError:
        return False
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)


def _request(flow: HttpFlowSpec, spec: HttpProbeSpec) -> bytes:
    if spec.mode != "http":
        return b""
    host = spec.host
    if host is None:
        host = f"[{flow.vip}]" if ":" in flow.vip else flow.vip
        if flow.port != 80:
            host += f":{flow.port}"
    connection = "keep-alive" if spec.keepalive else "close"
    return (f"GET {spec.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Accept: */*\r\nConnection: {connection}\r\n\r\n").encode("ascii")


def http_probe_argv(spec_path: Path) -> list[str]:
    return [sys.executable, "-m", _PROG, "--spec", str(spec_path)]


def start_http_probes(spawn: Spawn, spec_path: Path, log: Path) -> ProcessRecord:
    """Start one process for every flow of the spec (validated first: SpecError lists the
    problems) with ``spawn``, outside every node: it opens each socket in its client's
    namespace (the spec gives their paths). It writes the spec's ``out`` until SIGTERM (or
    ``duration_ms``)."""
    spec = load_http_probe_spec(spec_path)
    return start_program(spawn, http_probe_argv(spec_path), log, spec.out,
                         f"the HTTP probes of {spec.lab}")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {_PROG}",
                                     description="HTTP or TCP connect probes from client "
                                                 "namespaces")
    parser.add_argument("--spec", required=True, help="the probes spec (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        spec = load_http_probe_spec(Path(args.spec))
        log = RecordFile(spec.out)
    except SpecError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{_PROG}: cannot open the record file: {exc}", file=sys.stderr)
        return 1
    runner = ProbeRunner(spec, log)
    try:
        with runner.loop.stopped_by_signals():
            print(f"http probes: {len(spec.flows)} flows, {spec.mode} every "
                  f"{spec.interval_ms} ms, records to {spec.out}", file=sys.stderr, flush=True)
            runner.run()
        runner.finish()
    finally:
        runner.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
