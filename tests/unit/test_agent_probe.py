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
from lab.apps.server.spec import ServerSpec
from tests.unit.podserver import running_server

LOOPBACK = IPv4Address("127.0.0.1")


@pytest.fixture
def health_port(tmp_path: Path) -> Iterator[int]:
    spec = ServerSpec(lab="t", site="s", cluster="c", node="n", pod="p", address=LOOPBACK,
                      services=(), health_port=0, unready_flag=tmp_path / "unready")
    with running_server(spec) as server:
        yield server.ports["health"]


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


class _DnsStub:
    """A loopback UDP server answering each DNS query as told: "ok" (NOERROR, one answer),
    "servfail", "nodata", "wrong-question" or "garbage"."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            head, question = query[:12], query[12:]
            rcode, answers = {"servfail": (2, 0), "nodata": (0, 0)}.get(self.mode, (0, 1))
            if self.mode == "wrong-question":
                question = b"\x05other" + question[question.index(b"\x07"):]
            flags = bytes([0x84, rcode])
            reply = head[:2] + flags + b"\x00\x01" + answers.to_bytes(2, "big") + b"\0\0\0\0" \
                + question + (b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x33\x64\x50"
                              if answers else b"")
            self.sock.sendto(b"\x12" if self.mode == "garbage" else reply, peer)

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


def test_workload_checks_of_every_kind(silent_port: int, closed_port: int) -> None:
    stubs = {mode: _DnsStub(mode) for mode in ("ok", "servfail", "nodata", "wrong-question",
                                                 "garbage")}
    try:
        targets = [ProbeTarget(f"dns-{mode}", LOOPBACK, stub.port, kind="dns",
                               dns_name="www.example.test") for mode, stub in stubs.items()]
        targets += [ProbeTarget("udp", LOOPBACK, stubs["ok"].port, kind="udp", send=b"hi"),
                    ProbeTarget("tcp-open", LOOPBACK, silent_port, kind="tcp"),
                    ProbeTarget("tcp-closed", LOOPBACK, closed_port, kind="tcp"),
                    ProbeTarget("exec-ok", LOOPBACK, 1, kind="exec", command=("true",)),
                    ProbeTarget("exec-fails", LOOPBACK, 1, kind="exec",
                                command=("sh", "-c", "echo no; exit 3")),
                    ProbeTarget("exec-hangs", LOOPBACK, 1, kind="exec",
                                command=("sleep", "5")),
                    ProbeTarget("exec-missing", LOOPBACK, 1, kind="exec",
                                command=("/nonexistent/check",))]
        results = probe_all(targets, 0.5)
    finally:
        for stub in stubs.values():
            stub.close()
    assert {name: (r.ok, r.detail) for name, r in results.items()} == {
        "dns-ok": (True, "NOERROR"), "dns-servfail": (False, "SERVFAIL"),
        "dns-nodata": (False, "no answer"), "dns-wrong-question": (False, "malformed answer"),
        "dns-garbage": (False, "malformed answer"), "udp": (True, "answered"),
        "tcp-open": (True, "connected"), "tcp-closed": (False, "connection refused"),
        "exec-ok": (True, "exit 0"), "exec-fails": (False, "exit 3"),
        "exec-hangs": (False, "timeout"), "exec-missing": (False, "no such file or directory")}


def test_a_pod_is_ready_when_its_health_and_every_own_server_check_pass() -> None:
    from lab.apps.agent.main import pod_outcome, pod_targets
    from lab.apps.agent.probe import ProbeOutcome
    from lab.apps.agent.spec import AgentCheck, AgentPod
    from lab.plan.model import ReadinessCheck

    pod = AgentPod("p1", LOOPBACK, 8080, True,
                   checks=(AgentCheck("dns", ReadinessCheck("dns", 53, name="www.example.test")),))
    targets = pod_targets([pod])
    assert [(t.name, t.kind, t.port) for t in targets] == [("p1", "http", 8080),
                                                           ("p1/dns", "dns", 53)]
    good, bad = ProbeOutcome(True, 5, "200"), ProbeOutcome(False, 7, "SERVFAIL")
    assert pod_outcome(pod, {"p1": good, "p1/dns": ProbeOutcome(True, 9, "NOERROR")}) == \
        ProbeOutcome(True, 9, "200")
    assert pod_outcome(pod, {"p1": good, "p1/dns": bad}) == ProbeOutcome(False, 7,
                                                                        "dns: SERVFAIL")
    assert pod_outcome(pod, {"p1": ProbeOutcome(False, 3, "503"), "p1/dns": bad}).detail == "503"
    assert pod_outcome(pod, {"p1": good}).detail == "dns: no result"
