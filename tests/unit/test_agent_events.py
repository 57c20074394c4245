"""Event records and the status file."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from lab.apps.agent.events import EventLog, event_line, event_record, read_events, write_json_atomic


def test_event_lines_are_compact_json_with_the_common_fields_first() -> None:
    record = event_record(12, "n1", "announce", {"vip": IPv4Address("192.0.2.53"),
                                                 "prefix": IPv4Network("192.0.2.53/32"),
                                                 "done_ns": 15})
    line = event_line(record)
    assert line == ('{"t_ns":12,"node":"n1","event":"announce","vip":"192.0.2.53",'
                    '"prefix":"192.0.2.53/32","done_ns":15}\n')


def test_unknown_events_and_overridden_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        event_record(1, "n1", "annouce", {})
    with pytest.raises(ValueError, match="node"):
        event_record(1, "n1", "announce", {"node": "x"})


def test_the_log_appends_with_the_clock(tmp_path: Path) -> None:
    ticks = iter(range(100, 200))
    path = tmp_path / "sub" / "agent-events.jsonl"
    log = EventLog(path, "n1", clock=lambda: next(ticks))
    log.write("agent_start", pid=1)
    log.write("pod_ready", t_ns=5, pod="p1")
    log.close()
    log = EventLog(path, "n1", clock=lambda: 7)
    log.write("agent_stop")
    log.close()
    assert read_events(path) == [
        {"t_ns": 100, "node": "n1", "event": "agent_start", "pid": 1},
        {"t_ns": 5, "node": "n1", "event": "pod_ready", "pod": "p1"},
        {"t_ns": 7, "node": "n1", "event": "agent_stop"}]


def test_status_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_json_atomic(path, {"node": "n1", "announced": [IPv4Address("192.0.2.53")]})
    write_json_atomic(path, {"node": "n1", "announced": []})
    assert json.loads(path.read_text()) == {"node": "n1", "announced": []}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
