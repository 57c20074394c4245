"""Kubernetes-style readiness probes, all at once on one selector (no thread per probe).

Kinds (a pod's workload chooses its own, lab.topology.workload):
- ``http``: GET ``path``; a status from 200 to 399 before the timeout succeeds, as in
  Kubernetes. The decision is made from the status line alone, so a hung body cannot delay it.
- ``tcp``: the connection is accepted.
- ``udp``: the datagram ``send`` gets any datagram back.
- ``dns``: a query for ``name``/``rr_type`` gets NOERROR with at least one answer.
- ``exec``: ``command`` (run by the agent, in the node) exits with 0.
A refused or reset connection, a timeout or any other answer is a failure, with its detail.
"""

from __future__ import annotations

import errno
import os
import secrets
import selectors
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import IO

MAX_RESPONSE_HEAD = 4096
MAX_DATAGRAM = 65535
DNS_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


@dataclass(frozen=True)
class ProbeTarget:
    name: str
    address: IPv4Address
    port: int
    path: str = "/ready"
    kind: str = "http"  # http | tcp | udp | dns | exec
    send: bytes = b""  # udp
    dns_name: str = ""  # dns
    rr_type: int = 1  # dns
    command: tuple[str, ...] = ()  # exec


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    done_ns: int  # CLOCK_MONOTONIC instant the result was known
    detail: str  # "200", "503", "timeout", "connection refused", "NXDOMAIN", "exit 1", ...


def parse_status(head: bytes) -> int | None:
    """The status code of an HTTP response head, once its status line is complete."""
    line, found, _ = head.partition(b"\n")
    if not found:
        return None
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return -1
    return int(parts[1])


def outcome_from_status(status: int, done_ns: int) -> ProbeOutcome:
    if status < 0:
        return ProbeOutcome(False, done_ns, "malformed response")
    return ProbeOutcome(200 <= status < 400, done_ns, str(status))


def dns_query(query_id: int, name: str, rr_type: int) -> bytes:
    """A DNS query (class IN, no recursion wanted) for ``name``/``rr_type``."""
    labels = b"".join(bytes([len(part)]) + part.encode("ascii")
                      for part in name.rstrip(".").split(".") if part)
    return struct.pack("!6H", query_id, 0, 1, 0, 0, 0) + labels + b"\0" \
        + struct.pack("!2H", rr_type, 1)


def dns_answer_detail(reply: bytes, query: bytes) -> str | None:
    """None when ``reply`` answers ``query`` with NOERROR and at least one answer; otherwise
    why not (the rcode's name, "no answer", "malformed answer")."""
    if len(reply) < 12 or reply[:2] != query[:2] or not reply[2] & 0x80:
        return "malformed answer"
    question = query[12:]
    if reply[12:12 + len(question)].lower() != question.lower():
        return "malformed answer"
    rcode = reply[3] & 0x0F
    if rcode:
        return DNS_RCODES.get(rcode, f"rcode {rcode}")
    if struct.unpack("!H", reply[6:8])[0] == 0:
        return "no answer"
    return None


class _Probe:
    __slots__ = ("head", "process", "request", "sock", "target")

    def __init__(self, target: ProbeTarget, sock: socket.socket | None,
                 process: subprocess.Popen[bytes] | None = None) -> None:
        self.target = target
        self.sock = sock
        self.process = process
        self.head = b""
        self.request = b""
        if target.kind == "http":
            self.request = (f"GET {target.path} HTTP/1.0\r\nHost: {target.address}:"
                            f"{target.port}\r\nUser-Agent: anylab-agent\r\nAccept: */*\r\n\r\n"
                            ).encode()
        elif target.kind == "udp":
            self.request = target.send
        elif target.kind == "dns":
            self.request = dns_query(secrets.randbits(16), target.dns_name, target.rr_type)

    def fileobj(self) -> socket.socket | IO[bytes]:
        if self.process is not None:
            assert self.process.stdout is not None
            return self.process.stdout
        assert self.sock is not None
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()


def _start(target: ProbeTarget) -> _Probe | ProbeOutcome:
    """The probe under way, or its outcome when it failed at once."""
    if target.kind == "exec":
        try:
            process = subprocess.Popen(list(target.command), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as exc:
            return ProbeOutcome(False, time.monotonic_ns(), (exc.strerror or str(exc)).lower())
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        return _Probe(target, None, process)
    datagram = target.kind in ("udp", "dns")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
    sock.setblocking(False)
    err = sock.connect_ex((str(target.address), target.port))
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        return ProbeOutcome(False, time.monotonic_ns(), os.strerror(err).lower())
    return _Probe(target, sock)


def probe_all(targets: Sequence[ProbeTarget], timeout_s: float) -> dict[str, ProbeOutcome]:
    """Probe every target concurrently; returns one outcome per target name."""
    deadline = time.monotonic() + timeout_s
    results: dict[str, ProbeOutcome] = {}
    with selectors.DefaultSelector() as selector:
        for target in targets:
            probe = _start(target)
            if isinstance(probe, ProbeOutcome):
                results[target.name] = probe
                continue
            events = selectors.EVENT_READ if target.kind == "exec" else selectors.EVENT_WRITE
            selector.register(probe.fileobj(), events, probe)
        try:
            _run(selector, deadline, results)
        finally:
            for key in list(selector.get_map().values()):
                probe = key.data
                probe.close()
                results[probe.target.name] = ProbeOutcome(False, time.monotonic_ns(), "timeout")
    return results


def _run(selector: selectors.BaseSelector, deadline: float,
         results: dict[str, ProbeOutcome]) -> None:
    while selector.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for key, mask in selector.select(remaining):
            probe: _Probe = key.data
            outcome = _advance(selector, probe, mask)
            if outcome is not None:
                selector.unregister(key.fileobj)
                probe.close()
                results[probe.target.name] = outcome


def _advance(selector: selectors.BaseSelector, probe: _Probe, mask: int) -> ProbeOutcome | None:
    """Move one probe on; return its outcome once known."""
    if probe.process is not None:
        return _advance_exec(probe)
    sock = probe.sock
    assert sock is not None
    kind = probe.target.kind
    try:
        if mask & selectors.EVENT_WRITE:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return ProbeOutcome(False, time.monotonic_ns(), os.strerror(err).lower())
            if kind == "tcp":
                return ProbeOutcome(True, time.monotonic_ns(), "connected")
            sock.send(probe.request)  # small: fits an empty send buffer
            selector.modify(sock, selectors.EVENT_READ, probe)
            return None
        data = sock.recv(MAX_DATAGRAM if kind in ("udp", "dns") else MAX_RESPONSE_HEAD)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        return ProbeOutcome(False, time.monotonic_ns(), (exc.strerror or str(exc)).lower())
    now = time.monotonic_ns()
    if kind == "udp":
        return ProbeOutcome(True, now, "answered")
    if kind == "dns":
        problem = dns_answer_detail(data, probe.request)
        return ProbeOutcome(problem is None, now, problem or "NOERROR")
    if not data:
        return ProbeOutcome(False, now, "closed without a response")
    probe.head += data
    status = parse_status(probe.head)
    if status is None:
        if len(probe.head) >= MAX_RESPONSE_HEAD:
            return ProbeOutcome(False, now, "malformed response")
        return None
    return outcome_from_status(status, now)


def _advance_exec(probe: _Probe) -> ProbeOutcome | None:
    """The command's output is read and dropped; its end (EOF) gives the exit code."""
    assert probe.process is not None and probe.process.stdout is not None
    try:
        if os.read(probe.process.stdout.fileno(), MAX_RESPONSE_HEAD):
            return None
    except (BlockingIOError, InterruptedError):
        return None
    code = probe.process.wait()
    return ProbeOutcome(code == 0, time.monotonic_ns(), f"exit {code}")
