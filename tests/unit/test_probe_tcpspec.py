"""The TCP flows spec: round trip, defaults, and every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.apps.server.spec import SpecError
from lab.measure.probe import TcpFlowSpec, TcpFlowsSpec, load_tcp_flows_spec, write_tcp_flows_spec
from lab.measure.probe.tcpflows import tcp_flows_argv


def flow(**changes: Any) -> dict[str, Any]:
    base = {"client": "us-c1", "netns": "al.x.us-c1", "service": "web", "vip": "192.0.2.80",
            "port": 80, "flow": 0}
    base.update(changes)
    return base


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "tcp.json"
    path.write_text(json.dumps(document))
    return path


def test_round_trip(tmp_path: Path) -> None:
    spec = TcpFlowsSpec(lab="x", events=tmp_path / "events.jsonl", trial=2,
                        flows=(TcpFlowSpec("us-c1", "/run/netns/al.x.us-c1", "web",
                                           "192.0.2.80", 80, 1),),
                        message_interval_ms=20, timeout_ms=500, reconnect_ms=0)
    assert load_tcp_flows_spec(write_tcp_flows_spec(spec, tmp_path / "s.json")) == spec


def test_defaults(tmp_path: Path) -> None:
    spec = load_tcp_flows_spec(write(tmp_path, {"lab": "x", "flows": [flow()],
                                                "events": "/tmp/e.jsonl"}))
    assert (spec.message_interval_ms, spec.timeout_ms, spec.reconnect_ms, spec.trial) == \
        (50, 1000, 100, None)
    assert spec.flows[0] == TcpFlowSpec("us-c1", "al.x.us-c1", "web", "192.0.2.80", 80, 0)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    document = {"lab": "x", "events": "e", "timeout_ms": 0, "colour": "red",
                "flows": [flow(vip="nope"), flow(port=70000, extra=1, flow=1), flow(flow=0),
                          flow(netns="a/b", client="c2")]}
    with pytest.raises(SpecError) as info:
        load_tcp_flows_spec(write(tmp_path, document))
    paths = {issue.path for issue in info.value.issues}
    assert paths == {"colour", "timeout_ms", "flows[0].vip", "flows[1].port", "flows[1].extra",
                     "flows[2].flow", "flows[3].netns"}


@pytest.mark.parametrize(("document", "path", "message"), [
    ({"lab": "x", "events": "e", "flows": []}, "flows", "at least one"),
    ({"lab": "x", "events": "e"}, "flows", "required"),
    ({"lab": "x", "flows": [flow()]}, "events", "required"),
    ({"lab": "x", "events": "e", "flows": [flow()], "trial": -1}, "trial", "between"),
    ([1, 2], "", "must be an object"),
], ids=["empty", "no-flows", "no-events", "trial", "not-object"])
def test_single_problems(tmp_path: Path, document: Any, path: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_tcp_flows_spec(write(tmp_path, document))
    assert any(i.path == path and message in i.message for i in info.value.issues), \
        info.value.issues


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_tcp_flows_spec(path)


def test_program_command_line(tmp_path: Path) -> None:
    argv = tcp_flows_argv(tmp_path / "s.json")
    assert argv[1:] == ["-m", "lab.measure.probe.tcpflows", "--spec", str(tmp_path / "s.json")]
