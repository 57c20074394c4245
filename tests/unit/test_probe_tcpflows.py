"""The TCP flows program's logic over socket pairs (no namespaces, no network)."""

from __future__ import annotations

import errno
import json
import selectors
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.measure.probe.tcpflows import EventLog, Flow, FlowRunner, identity_of, main, reason_for
from lab.measure.probe.tcpspec import TcpFlowSpec, TcpFlowsSpec

MS = 1_000_000
REPLY = b'0 0 {"site":"nyc","cluster":"k","node":"n1","pod":"p1","service":"web"}\n'


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[FlowRunner]:
    spec = TcpFlowsSpec(lab="x", events=tmp_path / "events.jsonl", trial=1,
                        flows=(TcpFlowSpec("c1", "al.x.c1", "web", "192.0.2.80", 80, 0),),
                        message_interval_ms=50, timeout_ms=1000, reconnect_ms=100)
    log = EventLog(str(spec.events), spec.trial)
    flow_runner = FlowRunner(spec, log)
    yield flow_runner
    flow_runner.close()
    log.close()


def events(runner: FlowRunner) -> list[dict[str, Any]]:
    path = Path(runner.flows[0].runner.log.path)
    return [json.loads(line) for line in path.read_text().splitlines()]


def open_flow(flow: Flow, now: int) -> socket.socket:
    """Stand in for connect(): a connected socket pair, the handshake just completed."""
    mine, theirs = socket.socketpair()
    mine.setblocking(False)
    theirs.settimeout(2)
    flow.sock, flow.state, flow.due_ns = mine, "connecting", now + 1000 * MS
    flow.attempts += 1
    flow.runner.selector.register(mine, selectors.EVENT_WRITE, flow)
    flow.on_ready(selectors.EVENT_WRITE, now)
    return theirs


def test_reasons_and_identities() -> None:
    assert [reason_for(c) for c in (errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT,
                                    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EIO)] == \
        ["refused", "reset", "timeout", "unreachable", "unreachable", "reset"]
    assert identity_of(REPLY.rstrip()) == {"site": "nyc", "node": "n1", "pod": "p1"}
    assert identity_of(b"0 0 nothing") == {} and identity_of(b"0 0 {bad") == {}
    assert identity_of(b'0 0 ["x"]') == {}


def test_first_reply_records_connected_with_identity(runner: FlowRunner) -> None:
    flow = runner.flows[0]
    peer = open_flow(flow, 0)
    assert peer.recv(100) == b"0 0\n"  # the first line goes out at once
    peer.sendall(REPLY)
    flow.on_ready(selectors.EVENT_READ, 5 * MS)
    assert events(runner) == [{"t_ns": 5 * MS, "trial": 1, "source": "tcp",
                               "kind": "flow_connected", "client": "c1", "service": "web",
                               "family": "ipv4", "flow": 0, "site": "nyc", "node": "n1",
                               "pod": "p1",
                               "attempts": 0}]
    peer.close()


def test_server_gone_is_eof_then_reconnect_is_scheduled(runner: FlowRunner) -> None:
    flow = runner.flows[0]
    peer = open_flow(flow, 0)
    peer.sendall(REPLY)
    flow.on_ready(selectors.EVENT_READ, 1 * MS)
    peer.recv(100)  # closed with unread data, it would be a reset
    peer.close()
    flow.on_ready(selectors.EVENT_READ, 7 * MS)
    broken = events(runner)[-1]
    assert (broken["kind"], broken["reason"], broken["t_ns"]) == ("flow_broken", "eof", 7 * MS)
    assert flow.state == "idle" and flow.sock is None and flow.due_ns == 107 * MS


def test_no_reply_in_time_is_a_timeout(runner: FlowRunner) -> None:
    flow = runner.flows[0]
    peer = open_flow(flow, 0)
    peer.sendall(REPLY)
    flow.on_ready(selectors.EVENT_READ, 1 * MS)
    flow.on_time(50 * MS)  # second line, never answered
    assert flow.deadline() == 100 * MS
    flow.on_time(1049 * MS)
    assert events(runner)[-1]["kind"] == "flow_connected"
    flow.on_time(1050 * MS)
    assert events(runner)[-1]["reason"] == "timeout"
    peer.close()


def test_an_outage_is_recorded_once(runner: FlowRunner) -> None:
    flow = runner.flows[0]
    peer = open_flow(flow, 0)
    peer.sendall(REPLY)
    flow.on_ready(selectors.EVENT_READ, 1 * MS)
    flow.broken(2 * MS, "reset")
    peer.close()
    for attempt in range(3):  # failed reconnections: silent
        flow.attempts += 1
        flow.broken((100 + attempt) * MS, "refused")
    peer = open_flow(flow, 500 * MS)
    peer.recv(100)
    peer.sendall(REPLY)
    flow.on_ready(selectors.EVENT_READ, 501 * MS)
    kinds = [(e["kind"], e.get("reason"), e.get("attempts")) for e in events(runner)]
    assert kinds == [("flow_connected", None, 0), ("flow_broken", "reset", None),
                     ("flow_connected", None, 3)]
    peer.close()


def test_a_first_attempt_that_fails_is_recorded(runner: FlowRunner) -> None:
    flow = runner.flows[0]
    flow.attempts = 1
    flow.broken(1 * MS, "refused")
    flow.broken(2 * MS, "refused")
    assert [e["reason"] for e in events(runner)] == ["refused"]


def test_messages_keep_their_schedule_without_bursts(runner: FlowRunner) -> None:
    flow = runner.flows[0]
    peer = open_flow(flow, 0)
    assert flow.due_ns == 50 * MS
    flow.on_time(50 * MS)
    assert flow.due_ns == 100 * MS
    flow.on_time(370 * MS)  # stalled: one line now, then the schedule goes on
    assert flow.due_ns == 420 * MS
    assert peer.recv(100) == b"0 0\n0 1\n0 2\n"
    peer.close()


def test_stop_before_run_returns(runner: FlowRunner) -> None:
    runner.stop()
    runner.run()
    assert events_file_empty(runner)


def events_file_empty(runner: FlowRunner) -> bool:
    return Path(runner.log.path).read_text() == ""


def test_bad_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.json").write_text("{}")
    assert main(["--spec", str(tmp_path / "s.json")]) == 2
    assert "field required" in capsys.readouterr().err
