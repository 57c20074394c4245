"""Recorder spec, start/ready helpers and routes.parquet loading (no root)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lab.measure.recorder.fib as fib
from lab.backend.state import ProcessRecord
from lab.measure.recorder import (
    ROUTE_COLUMNS,
    RecorderError,
    RecorderSpec,
    RouterNamespace,
    load_routes,
    start_recorder,
    wait_ready,
)
from lab.measure.recorder.monitor import RowWriter, main


def spec_for(tmp_path: Path, **routers: str) -> RecorderSpec:
    return RecorderSpec.build("demo", routers or {"nyc-l1": "al.demo.nyc-l1",
                                                  "nyc-s1": "al.demo.nyc-s1"},
                              ["192.0.2.53", "198.51.100.0/24"], tmp_path / "fib.jsonl",
                              tmp_path / "ready")


def test_spec_build_and_round_trip(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    assert spec.prefixes == ("192.0.2.53/32", "198.51.100.0/24")
    assert spec.routers == (RouterNamespace("nyc-l1", "/run/netns/al.demo.nyc-l1"),
                            RouterNamespace("nyc-s1", "/run/netns/al.demo.nyc-s1"))
    path = spec.write(tmp_path / "spec" / "recorder.json")
    assert RecorderSpec.load(path) == spec
    data = json.loads(path.read_text())
    assert set(data) == {"lab", "prefixes", "routers", "out", "ready"}
    mapped = RecorderSpec.build("demo", {"a": "altest-1-a", "b": "/var/run/netns/x"},
                                ["10.0.0.0/8"], tmp_path / "o", tmp_path / "r")
    assert [r.netns for r in mapped.routers] == ["/run/netns/altest-1-a", "/var/run/netns/x"]
    both = RecorderSpec.build("demo", {"a": "x"}, ["2001:db8:53::53/128", "192.0.2.53/32",
                                                  "2001:db8:053::53/128"],
                              tmp_path / "o", tmp_path / "r")
    assert both.prefixes == ("192.0.2.53/32", "2001:db8:53::53/128")


@pytest.mark.parametrize(("prefixes", "routers", "message"), [
    ([], ["a"], "no prefixes"),
    (["192.0.2.53/24"], ["a"], "bad prefix"),
    (["2001:db8::1/32"], ["a"], "bad prefix"),
    (["nonsense"], ["a"], "bad prefix"),
])
def test_spec_errors(tmp_path: Path, prefixes: list[str], routers: list[str],
                     message: str) -> None:
    with pytest.raises(RecorderError, match=message):
        RecorderSpec.build("demo", {r: f"al.demo.{r}" for r in routers}, prefixes,
                           tmp_path / "o", tmp_path / "r")


def test_spec_load_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(RecorderError, match="JSON object"):
        RecorderSpec.load(bad)
    bad.write_text('{"lab": "x", "prefixes": ["192.0.2.53/32"]}')
    with pytest.raises(RecorderError, match="missing or wrong field"):
        RecorderSpec.load(bad)
    bad.write_text(json.dumps({"lab": "x", "prefixes": ["192.0.2.53/32"], "out": "o",
                               "ready": "r", "routers": [{"name": "a", "netns": "n"},
                                                         {"name": "a", "netns": "m"}]}))
    with pytest.raises(RecorderError, match="duplicate"):
        RecorderSpec.load(bad)
    with pytest.raises(RecorderError, match="cannot read"):
        RecorderSpec.load(tmp_path / "absent.json")


ROWS: list[dict[str, Any]] = [
    {"t_ns": 30, "router": "r2", "prefix": "192.0.2.53/32", "action": "del",
     "nexthops": ["10.0.0.2"], "proto": "bgp", "type": "unicast", "metric": 20, "nhid": 5},
    {"t_ns": 10, "router": "r1", "prefix": "192.0.2.53/32", "action": "present",
     "nexthops": ["10.0.0.2", "10.0.0.10"], "proto": "bgp", "type": "unicast", "metric": 20,
     "nhid": None},
    {"t_ns": 20, "router": "r1", "prefix": "192.0.2.53/32", "action": "add",
     "nexthops": ["10.0.0.10"], "proto": "bgp", "type": "unicast", "metric": 20, "nhid": None,
     "cause": "nexthop"},
]


def write_rows(path: Path, rows: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def test_load_routes_has_exactly_the_format_columns(tmp_path: Path) -> None:
    frame = load_routes(write_rows(tmp_path / "fib.jsonl", ROWS), trial=3)
    assert list(frame.columns) == list(ROUTE_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == ROUTE_COLUMNS
    assert frame["t_ns"].tolist() == [10, 20, 30]
    assert frame["action"].tolist() == ["present", "add", "del"]
    assert frame["nexthops"].tolist() == ["10.0.0.2,10.0.0.10", "10.0.0.10", ""]
    assert frame["n_nexthops"].tolist() == [2, 1, 0]
    assert set(frame["trial"]) == {3}
    out = tmp_path / "routes.parquet"
    frame.to_parquet(out)
    assert pd.read_parquet(out)["router"].tolist() == ["r1", "r1", "r2"]


def test_load_routes_window_truncated_tail_and_empty(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "fib.jsonl", ROWS, tail='{"t_ns": 40, "rou')
    frame = load_routes(path, 0, start_ns=15, end_ns=30)
    assert frame["t_ns"].tolist() == [20]
    empty = load_routes(write_rows(tmp_path / "none.jsonl", []), 0)
    assert list(empty.columns) == list(ROUTE_COLUMNS) and len(empty) == 0
    assert {c: str(t) for c, t in empty.dtypes.items()} == ROUTE_COLUMNS
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{oops\n" + json.dumps(ROWS[0]) + "\n")
    with pytest.raises(RecorderError, match=r"broken\.jsonl:1"):
        load_routes(broken, 0)


def test_start_recorder_hands_its_command_to_the_spawn_it_is_given(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def fake_spawn(argv: Sequence[str], log: Path) -> ProcessRecord:
        calls.append({"argv": list(argv), "log": log})
        return ProcessRecord(123, "_recorder", "recorder", 1)

    spec_for(tmp_path).write(tmp_path / "spec.json")
    (tmp_path / "ready").touch()  # left by an earlier run
    record = start_recorder(fake_spawn, tmp_path / "spec.json", tmp_path / "recorder.log")
    assert not (tmp_path / "ready").exists()
    assert (record.pid, record.node, record.kind) == (123, "_recorder", "recorder")
    (call,) = calls
    assert call["log"] == tmp_path / "recorder.log"
    assert call["argv"] == [sys.executable, "-m", "lab.measure.recorder", "--spec",
                            str(tmp_path / "spec.json")]


def test_wait_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = tmp_path / "ready"
    with pytest.raises(RecorderError, match="not ready after"):
        wait_ready(ready, 0.05)
    log = tmp_path / "recorder.log"
    log.write_text("recorder: r1: cannot watch /run/netns/x: no such file\n")
    monkeypatch.setattr(fib, "is_alive", lambda record: False)
    with pytest.raises(RecorderError, match="exited before it was ready: recorder: r1"):
        wait_ready(ready, 5.0, ProcessRecord(1, "_recorder", "recorder", 1), log)
    ready.touch()
    wait_ready(ready, 0.0)


def test_process_reports_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--spec", str(tmp_path / "absent.json")]) == 1
    assert "cannot read recorder spec" in capsys.readouterr().err
    spec = RecorderSpec.build("demo", {"r1": str(tmp_path / "no-such-netns")},
                              ["192.0.2.53/32"], tmp_path / "o.jsonl", tmp_path / "ready")
    assert main(["--spec", str(spec.write(tmp_path / "spec.json"))]) == 1
    assert "r1: cannot watch" in capsys.readouterr().err
    assert not (tmp_path / "ready").exists()


def test_row_writer_flushes_at_most_every_50_ms(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        writer = RowWriter(handle)
        writer.write({"t_ns": 1})
        writer.flush(force=True)
        assert path.read_text() == '{"t_ns":1}\n'
        writer.write({"t_ns": 2})
        writer.flush()  # within 50 ms of the last flush: buffered
        assert writer.rows == 2
    assert path.read_text().count("\n") == 2
