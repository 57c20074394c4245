"""The anycast server: one process per pod, answering every service with its identity.

``python -m lab.apps.server --spec FILE`` runs inside the pod's network namespace, bound to the pod
address:
- UDP services echo each datagram followed by ``\\n`` and the identity as compact JSON
  (``{"site":..,"cluster":..,"node":..,"pod":..,"service":..}``), so probers can tell who
  answered;
- TCP services answer each line (up to 4 KiB) with the line, a space, the identity and ``\\n``;
  connections stay open until the client closes them;
- on SIGTERM it drains, as a terminating pod's server does: it accepts no new connection and
  closes its health port, answers datagrams and its open connections, and exits when the
  last connection closes (or when it is killed at the end of its grace period);
- an HTTP/1.0 health port serves ``GET /live`` (always 200) and ``GET /ready`` (200, or 503
  while the spec's unready flag file exists), like a Kubernetes httpGet probe target.

One thread, one non-blocking selector loop; imports are kept to the standard library (and the
small spec module) because a lab starts this program hundreds of times.

The server is part of the instrument: every probe's round trip includes its answer. It runs
at nice ``NICE`` where the kernel allows, so that on a busy machine it gets a CPU before the
ordinary processes around it (measured at nice 0 with a second lab running: 13-28 ms of extra
round trip and requests dropped from full socket buffers; docs/benchmarks.md, "fidelity").
Not real-time: real-time servers under that load kept the routers' BFD daemons from running
and every session of the lab flapped.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lab.apps.mainloop import MainLoop
from lab.apps.server.spec import ServerSpec, SpecError, load_server_spec
from lab.sockopts import enlarge_receive_buffer

MAX_LINE = 4096
MAX_HEALTH_REQUEST = 8192
RECV_SIZE = 65535
UDP_BURST = 256  # datagrams served per wake-up before other sockets get their turn
# A UDP service's receive buffer, as DNS servers are told to set (NSD's so-rcvbuf: 4m): the
# default (about 200 small datagrams) overflows when the server is off the CPU for tens of ms
# while the flows that a failure moved onto its pod pour in; those drops were the lab's own.
UDP_RCVBUF = 4 * 1024 * 1024
OUTBOX_LIMIT = 256 * 1024  # stop reading a TCP client that does not read its replies
LISTEN_BACKLOG = 1024

NICE = -10

_Handler = Callable[[int], None]


def run_first(nice: int = NICE) -> bool:
    """This process at ``nice``; False where not permitted (a container without
    CAP_SYS_NICE): the server then runs at the default priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        return False
    return True


def identity_bytes(spec: ServerSpec, service: str) -> bytes:
    return json.dumps(spec.identity(service), separators=(",", ":")).encode()


def udp_reply(request: bytes, suffix: bytes) -> bytes:
    """The answer to one datagram: the request verbatim, then ``suffix`` (``\\n`` + identity)."""
    return request + suffix


def take_lines(inbox: bytearray, suffix: bytes) -> bytes | None:
    """Answer the complete lines in ``inbox`` (consuming them): each as line + ``suffix``
    (a space, the identity and ``\\n``). None when a line exceeds MAX_LINE bytes."""
    replies = bytearray()
    start = 0
    while (end := inbox.find(b"\n", start)) >= 0:
        line = inbox[start:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE:
            return None
        replies += line
        replies += suffix
        start = end + 1
    del inbox[:start]
    if len(inbox) > MAX_LINE:
        return None
    return bytes(replies)


def _http(status: str, body: str) -> bytes:
    return (f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}").encode()


def health_response(request: bytes, unready_flag: Path) -> bytes:
    """The response to one health request (only its request line matters)."""
    parts = request.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].isalpha():
        return _http("400 Bad Request", "bad request\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _http("405 Method Not Allowed", "method not allowed\n")
    if target == b"/live":
        response = _http("200 OK", "ok")
    elif target == b"/ready":
        ready = not unready_flag.exists()
        response = _http("200 OK", "ok") if ready else _http("503 Service Unavailable", "unready")
    else:
        response = _http("404 Not Found", "not found\n")
    if method == b"HEAD":
        return response[:response.index(b"\r\n\r\n") + 4]
    return response


def health_request_complete(inbox: bytes | bytearray) -> bool:
    return b"\r\n\r\n" in inbox or b"\n\n" in inbox or len(inbox) >= MAX_HEALTH_REQUEST


class _Connection:
    """One accepted TCP connection: a service client (suffix set) or a health check."""

    __slots__ = ("closing", "inbox", "outbox", "sock", "suffix")

    def __init__(self, sock: socket.socket, suffix: bytes | None) -> None:
        self.sock = sock
        self.suffix = suffix
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.closing = False


class AnycastServer:
    """Every socket of one pod's server on one selector; ``serve`` runs until ``stop``."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.ports: dict[str, int] = {}
        self.loop = MainLoop()
        self._selector = self.loop.selector
        self._listeners: list[socket.socket] = []
        self._open: set[_Connection] = set()  # service connections (not health checks)
        try:
            self._bind_all()
        except OSError:
            self.close()
            raise

    def _bind_all(self) -> None:
        """Each service on the pod's IPv4 address and, in a dual-stack lab, its IPv6 one (on
        the port the first socket got); the health port on IPv4, as kubelet probes it."""
        address = str(self.spec.address)
        for service in self.spec.services:
            suffix_id = identity_bytes(self.spec, service.name)
            port = service.port
            for family, bound in self._families():
                if service.protocol == "udp":
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    self._listeners.append(sock)
                    enlarge_receive_buffer(sock, UDP_RCVBUF)
                    sock.bind((bound, port))
                    sock.setblocking(False)
                    self._register(sock, self._udp_handler(sock, b"\n" + suffix_id))
                else:
                    sock = self._listen(bound, port, family)
                    self._register(sock, self._accept_handler(sock, b" " + suffix_id + b"\n"))
                port = sock.getsockname()[1]
            self.ports[service.name] = port
        health = self._listen(address, self.spec.health_port)
        self._register(health, self._accept_handler(health, None))
        self.ports["health"] = health.getsockname()[1]

    def _families(self) -> list[tuple[socket.AddressFamily, str]]:
        found = [(socket.AF_INET, str(self.spec.address))]
        if self.spec.address6 is not None:
            found.append((socket.AF_INET6, str(self.spec.address6)))
        return found

    def _listen(self, address: str, port: int,
                family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        self._listeners.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        return sock

    def _register(self, sock: socket.socket, handler: _Handler,
                  events: int = selectors.EVENT_READ) -> None:
        self._selector.register(sock, events, handler)

    def describe(self) -> str:
        services = ", ".join(f"{s.protocol}/{self.ports[s.name]} ({s.name})"
                             for s in self.spec.services)
        where = str(self.spec.address) + (f" and {self.spec.address6}" if self.spec.address6
                                          else "")
        return (f"anycast server {self.spec.pod} ready on {where}: "
                f"{services or 'no services'}; health tcp/{self.ports['health']}")

    def serve(self) -> None:
        """Until SIGTERM/SIGINT (or ``stop``); then drain: no new connection is accepted and
        the health port closes, while datagrams and the open connections are still answered
        until the last connection closes (a terminating pod: its kubelet kills it when its
        grace period ends)."""
        while not self.loop.stopping:
            self.poll(None)
        self.stop_accepting()
        while self._open:
            self.poll(None, after_stop=True)

    def stop_accepting(self) -> None:
        for sock in [s for s in self._listeners if s.type == socket.SOCK_STREAM]:
            self._selector.unregister(sock)
            sock.close()
            self._listeners.remove(sock)

    def poll(self, timeout: float | None, after_stop: bool = False) -> None:
        """Handle whatever is ready now (waiting up to ``timeout`` seconds for something)."""
        for key, mask in self.loop.wait(timeout, after_stop):
            handler: _Handler = key.data
            handler(mask)

    def stop(self) -> None:
        """Ask ``serve`` to return; safe from a signal handler or another thread."""
        self.loop.stop()

    def close(self) -> None:
        for key in list(self._selector.get_map().values()):
            sock = key.fileobj
            if key.data is not None and isinstance(sock, socket.socket):
                sock.close()
        for sock in self._listeners:
            sock.close()
        self.loop.close()

    def _udp_handler(self, sock: socket.socket, suffix: bytes) -> _Handler:
        recvfrom, sendto = sock.recvfrom, sock.sendto

        def on_datagrams(_mask: int) -> None:
            for _ in range(UDP_BURST):
                try:
                    data, peer = recvfrom(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue  # a queued ICMP error: nothing to answer
                try:  # noqa: SIM105 (the hot path: no context manager per datagram)
                    sendto(data + suffix, peer)
                except OSError:
                    pass  # full send buffer or unreachable sender: a lost reply, as on a wire

        return on_datagrams

    def _accept_handler(self, listener: socket.socket, suffix: bytes | None) -> _Handler:
        def on_accept(_mask: int) -> None:
            while True:
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return  # e.g. out of descriptors: try again on the next wake-up
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = _Connection(sock, suffix)
                if suffix is not None:
                    self._open.add(conn)
                self._register(sock, self._connection_handler(conn))

        return on_accept

    def _connection_handler(self, conn: _Connection) -> _Handler:
        def on_connection(mask: int) -> None:
            if mask & selectors.EVENT_WRITE:
                self._flush(conn)
            if mask & selectors.EVENT_READ and conn.sock.fileno() >= 0 and not conn.closing:
                self._read(conn)

        return on_connection

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.inbox += data
        if conn.suffix is None:
            if health_request_complete(conn.inbox):
                conn.closing = True
                self._send(conn, health_response(bytes(conn.inbox), self.spec.unready_flag))
            return
        replies = take_lines(conn.inbox, conn.suffix)
        if replies is None:
            self._drop(conn)  # a line longer than the protocol allows
        elif replies:
            self._send(conn, replies)

    def _send(self, conn: _Connection, data: bytes) -> None:
        conn.outbox += data
        self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.outbox) if conn.outbox else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(conn)
            return
        del conn.outbox[:sent]
        if not conn.outbox and conn.closing:
            self._drop(conn)
            return
        events = selectors.EVENT_READ
        if conn.outbox:
            events = selectors.EVENT_WRITE
            if len(conn.outbox) < OUTBOX_LIMIT:
                events |= selectors.EVENT_READ
        if self._selector.get_key(conn.sock).events != events:
            self._selector.modify(conn.sock, events, self._selector.get_key(conn.sock).data)

    def _drop(self, conn: _Connection) -> None:
        self._open.discard(conn)
        self._selector.unregister(conn.sock)
        conn.sock.close()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.apps.server",
                                     description="anycast server for one pod")
    parser.add_argument("--spec", required=True, type=Path, help="the pod's server spec (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        spec = load_server_spec(args.spec)
        server = AnycastServer(spec)
    except SpecError as exc:
        print(f"lab.apps.server.main: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lab.apps.server.main: cannot bind: {exc}", file=sys.stderr)
        return 1

    favoured = run_first()
    print(server.describe() + ("" if favoured else f" (nice {NICE} not permitted)"),
          file=sys.stderr, flush=True)
    try:
        with server.loop.stopped_by_signals():
            server.serve()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
