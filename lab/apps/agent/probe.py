"""Kubernetes-style httpGet probes, all pods at once on one selector (no thread per pod).

A probe succeeds when the pod answers with a status from 200 to 399 before the timeout, as in
Kubernetes; a refused or reset connection, a timeout or any other status is a failure. The
decision is made from the status line alone, so a hung body cannot delay it.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

MAX_RESPONSE_HEAD = 4096


@dataclass(frozen=True)
class ProbeTarget:
    name: str
    address: IPv4Address
    port: int
    path: str = "/ready"


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    done_ns: int  # CLOCK_MONOTONIC instant the result was known
    detail: str  # "200", "503", "timeout", "connection refused", ...


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


class _Probe:
    __slots__ = ("head", "request", "sock", "target")

    def __init__(self, target: ProbeTarget, sock: socket.socket) -> None:
        self.target = target
        self.sock = sock
        self.head = b""
        self.request = (f"GET {target.path} HTTP/1.0\r\nHost: {target.address}:{target.port}\r\n"
                        "User-Agent: anylab-agent\r\nAccept: */*\r\n\r\n").encode()


def probe_all(targets: Sequence[ProbeTarget], timeout_s: float) -> dict[str, ProbeOutcome]:
    """Probe every target concurrently; returns one outcome per target name."""
    deadline = time.monotonic() + timeout_s
    results: dict[str, ProbeOutcome] = {}
    with selectors.DefaultSelector() as selector:
        for target in targets:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex((str(target.address), target.port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                results[target.name] = ProbeOutcome(False, time.monotonic_ns(),
                                                    os.strerror(err).lower())
                continue
            selector.register(sock, selectors.EVENT_WRITE, _Probe(target, sock))
        try:
            _run(selector, deadline, results)
        finally:
            for key in list(selector.get_map().values()):
                probe: _Probe = key.data
                probe.sock.close()
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
                selector.unregister(probe.sock)
                probe.sock.close()
                results[probe.target.name] = outcome


def _advance(selector: selectors.BaseSelector, probe: _Probe, mask: int) -> ProbeOutcome | None:
    """Move one probe on; return its outcome once known."""
    sock = probe.sock
    try:
        if mask & selectors.EVENT_WRITE:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return ProbeOutcome(False, time.monotonic_ns(), os.strerror(err).lower())
            sock.send(probe.request)  # a few dozen bytes: fits an empty send buffer
            selector.modify(sock, selectors.EVENT_READ, probe)
            return None
        data = sock.recv(MAX_RESPONSE_HEAD)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        return ProbeOutcome(False, time.monotonic_ns(), (exc.strerror or str(exc)).lower())
    now = time.monotonic_ns()
    if not data:
        return ProbeOutcome(False, now, "closed without a response")
    probe.head += data
    status = parse_status(probe.head)
    if status is None:
        if len(probe.head) >= MAX_RESPONSE_HEAD:
            return ProbeOutcome(False, now, "malformed response")
        return None
    return outcome_from_status(status, now)
