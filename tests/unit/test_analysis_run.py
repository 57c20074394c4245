"""Loading run directories: the typed Run, its time axis, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import Run, RunError, load_run, load_runs
from lab.errors import LabError
from tests.unit.test_analysis_data import (
    MS,
    SAMPLE_BFD,
    SAMPLE_HOLD,
    T0,
    S,
    injector,
    lane,
    runner,
    write_run,
)


@pytest.fixture(scope="module")
def sample() -> Run:
    return load_run(SAMPLE_BFD)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A writable copy of the small files of the main sample (probes linked)."""
    out = tmp_path / "run"
    out.mkdir()
    for name in ("run.json", "events.jsonl", "routes.parquet", "summary.json"):
        shutil.copy(SAMPLE_BFD / name, out / name)
    (out / "probes.parquet").symlink_to(SAMPLE_BFD / "probes.parquet")
    return out


def test_sample_loads_typed(sample: Run) -> None:
    assert sample.complete and not sample.interrupted
    assert sample.run_id == "20261127-004500-node-crash-bfd"
    assert sample.label == "node-crash-bfd"
    assert sample.interval_ms == 1.0 and sample.interval_ns == 1_000_000
    assert sample.clients == ["us-c1", "us-c2", "eu-c1", "eu-c2", "ap-c1", "ap-c2"]
    assert sample.services == ["dns", "web"]
    assert sample.sites == ["ams", "nyc", "sin"]
    assert sample.trials == [0]
    assert sample.service_prefixes == {"192.0.2.53/32": "dns", "192.0.2.80/32": "web"}
    probes = sample.probes
    assert len(probes) == 720_000
    assert str(probes["recv_ns"].dtype) == "Int64" and probes["send_ns"].dtype == "int64"
    assert isinstance(probes["client"].dtype, pd.CategoricalDtype)
    assert probes["lost"].sum() == probes["rtt_ms"].isna().sum() > 0
    assert sample.summary["scenario"] == "node-crash-bfd"
    assert {"t_ns", "trial", "source", "kind"} <= set(sample.events.columns)


def test_fault_events_and_windows(sample: Run) -> None:
    (fault,) = sample.fault_events
    assert (fault.kind, fault.fault, fault.target, fault.step) == (
        "fault", "node-crash", "nyc-k8s-n1", 0)
    assert fault.undo is not None and fault.undo.kind == "undo"
    assert fault.end_ns == fault.undo.t_ns  # the undo closes the fault's window
    start, end = sample.trial_bounds(0)
    assert fault.undo.end_ns == end
    assert sample.seconds(fault.t_ns) == pytest.approx(5.0)
    assert sample.seconds(fault.undo.t_ns, origin=fault) == pytest.approx(7.0)
    assert fault.label == "node-crash nyc-k8s-n1" and fault.undo.label == "undo node-crash"
    assert [a.kind for a in sample.actions] == ["fault", "undo"]
    assert sample.wall_time(start).isoformat().startswith("2026-11-27T00:45:02")


def test_node_sites(sample: Run) -> None:
    assert sample.node_sites["nyc-k8s-n1"] == "nyc"
    assert len(sample.node_sites) == 12


def test_load_runs_keeps_order() -> None:
    runs = load_runs([SAMPLE_HOLD, SAMPLE_BFD])
    assert [r.label for r in runs] == ["node-crash-hold", "node-crash-bfd"]
    assert runs[0].trials == [0, 1, 2]
    assert [a.trial for a in runs[0].fault_events] == [0, 1, 2]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        load_run(tmp_path / "nope")


def test_run_error_is_a_lab_error() -> None:
    assert issubclass(RunError, LabError)


@pytest.mark.parametrize("name", ["probes.parquet", "events.jsonl", "routes.parquet",
                                  "summary.json"])
def test_missing_file(copy: Path, name: str) -> None:
    (copy / name).unlink()
    with pytest.raises(RunError, match=f"missing {name}"):
        load_run(copy)


def test_missing_run_json(copy: Path) -> None:
    (copy / "run.json").unlink()
    with pytest.raises(RunError, match=r"run\.json: missing"):
        load_run(copy)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("run.json", '{"format": 1,', r"run\.json:1: malformed JSON"),
    ("run.json", "[1, 2]", "expected a JSON object"),
    ("summary.json", "{oops}", r"summary\.json:1: malformed JSON"),
    ("events.jsonl", '{"t_ns": 1, "trial": 0, "source": "runner", "kind": "x"}\n{bad\n',
     r"events\.jsonl:2: malformed JSON"),
    ("events.jsonl", '{"t_ns": "1", "trial": 0, "source": "runner", "kind": "x"}\n',
     r"events\.jsonl:1: 't_ns' must be an integer"),
], ids=["run-json", "run-json-array", "summary", "events-line", "events-type"])
def test_malformed(copy: Path, name: str, text: str, message: str) -> None:
    (copy / name).write_text(text)
    with pytest.raises(RunError, match=message):
        load_run(copy)


def test_unsupported_format(copy: Path) -> None:
    data = json.loads((copy / "run.json").read_text())
    data["format"] = 2
    (copy / "run.json").write_text(json.dumps(data))
    with pytest.raises(RunError, match="format 2 is not supported"):
        load_run(copy)


def test_missing_column(copy: Path) -> None:
    table = pq.read_table(SAMPLE_BFD / "routes.parquet").drop(["n_nexthops"])
    pq.write_table(table, copy / "routes.parquet")
    with pytest.raises(RunError, match=r"routes\.parquet: missing column n_nexthops"):
        load_run(copy)


def test_not_parquet(copy: Path) -> None:
    (copy / "routes.parquet").write_text("not parquet")
    with pytest.raises(RunError, match="not a readable Parquet file"):
        load_run(copy)


def _incomplete(copy: Path) -> None:
    data = json.loads((copy / "run.json").read_text())
    data.update(complete=False, interrupted=True)
    (copy / "run.json").write_text(json.dumps(data))


def test_incomplete_run_loads_with_a_flag(copy: Path) -> None:
    _incomplete(copy)
    (copy / "summary.json").unlink()  # an interrupted run may lack it
    run = load_run(copy)  # no warning (the suite turns warnings into errors)
    assert not run.complete and run.interrupted
    assert run.missing_files == ("summary.json",)
    assert run.summary == {}
    assert len(run.fault_events) == 1


def test_incomplete_run_refused_when_required(copy: Path) -> None:
    _incomplete(copy)
    with pytest.raises(RunError, match="incomplete"):
        load_run(copy, require_complete=True)
    assert load_run(SAMPLE_BFD, require_complete=True).complete


def test_trial_bounds_without_runner_events(tmp_path: Path) -> None:
    """An interrupted run may lack trial_end: the trial ends just after its last probe or
    event (as summary.json takes it)."""
    root = write_run(tmp_path / "r", [lane("c1", count=2000)],
                     [runner("trial_start", T0), injector("fault", T0 + S)])
    run = load_run(root)
    assert run.trial_bounds(0) == (T0, T0 + 1999 * MS + 1)
    (fault,) = run.fault_events
    assert fault.undo is None and fault.end_ns == T0 + 1999 * MS + 1


def test_nullable_recv_written_as_double(tmp_path: Path) -> None:
    """A runner that lets pandas write recv_ns as float still loads, as Int64."""
    root = write_run(tmp_path / "r", [lane("c1", count=10, lost=[3])], [])
    table = pq.read_table(root / "probes.parquet")
    index = table.schema.get_field_index("recv_ns")
    table = table.set_column(index, "recv_ns", table.column("recv_ns").cast(pa.float64()))
    pq.write_table(table, root / "probes.parquet")
    probes = load_run(root).probes
    assert str(probes["recv_ns"].dtype) == "Int64"
    assert probes["recv_ns"].isna().sum() == 1


def test_dns_answer_status_is_read_and_null_before_it_existed(tmp_path: Path) -> None:
    root = write_run(tmp_path / "r", [lane("c1", count=10, lost=[3])], [])
    assert load_run(root).probes["status"].isna().all()  # the column is new
    table = pq.read_table(root / "probes.parquet")
    status = pa.array([0, 0, 0, 2, *[0] * 6], pa.int32())
    pq.write_table(table.append_column("status", status), root / "probes.parquet")
    probes = load_run(root).probes
    assert str(probes["status"].dtype) == "Int32"
    assert probes["status"].tolist() == [0, 0, 0, 2, *[0] * 6]
    assert list(probes.columns).index("status") == list(probes.columns).index("rtt_ms") + 1
