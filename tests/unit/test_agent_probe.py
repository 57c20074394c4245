"""httpGet probes against a real anycast server on loopback, and against silent or absent pods."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lab.apps.agent.probe import ProbeTarget, outcome_from_status, parse_status, probe_all
from lab.apps.server.main import AnycastServer
from lab.apps.server.spec import ServerSpec

LOOPBACK = IPv4Address("127.0.0.1")


@pytest.fixture
def health_port(tmp_path: Path) -> Iterator[int]:
    spec = ServerSpec(lab="t", site="s", cluster="c", node="n", pod="p", address=LOOPBACK,
                      services=(), health_port=0, unready_flag=tmp_path / "unready")
    server = AnycastServer(spec)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server.ports["health"]
    server.stop()
    thread.join(timeout=5)
    server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts (in the kernel backlog) but never answers: a hung pod."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_status_line_parsing() -> None:
    assert parse_status(b"HTTP/1.0 200 OK\r\n") == 200
    assert parse_status(b"HTTP/1.0 20") is None
    assert parse_status(b"garbage\n") == -1
    assert outcome_from_status(302, 1).ok and not outcome_from_status(404, 1).ok
    assert not outcome_from_status(-1, 1).ok


def test_ready_unready_refused_and_hung_pods(health_port: int, silent_port: int,
                                             closed_port: int, tmp_path: Path) -> None:
    targets = [ProbeTarget("ok", LOOPBACK, health_port),
               ProbeTarget("live", LOOPBACK, health_port, "/live"),
               ProbeTarget("hung", LOOPBACK, silent_port),
               ProbeTarget("gone", LOOPBACK, closed_port)]
    start = time.monotonic_ns()
    results = probe_all(targets, 0.4)
    took_ms = (time.monotonic_ns() - start) / 1e6
    assert {name: (r.ok, r.detail) for name, r in results.items()} == {
        "ok": (True, "200"), "live": (True, "200"), "hung": (False, "timeout"),
        "gone": (False, "connection refused")}
    assert 380 <= took_ms < 1500
    # the hung pod did not hold the others up: their results came long before the timeout
    assert results["ok"].done_ns - start < 200e6
    (tmp_path / "unready").touch()
    results = probe_all(targets[:2], 0.4)
    assert (results["ok"].ok, results["ok"].detail) == (False, "503")
    assert results["live"].ok


def test_no_targets_returns_at_once() -> None:
    start = time.monotonic()
    assert probe_all([], 1.0) == {}
    assert time.monotonic() - start < 0.1
