"""The sample run directories follow docs/run-format.md, the generator reproduces them, and
a small builder of hand-made runs for the other analysis tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data" / "sample-runs"
SAMPLE_BFD = SAMPLES / "20261127-004500-node-crash-bfd"
SAMPLE_HOLD = SAMPLES / "20261127-011500-node-crash-hold"
SAMPLE_ISOLATE = SAMPLES / "20261127-013000-site-isolate-bfd"
GENERATOR = REPO / "scripts" / "make_sample_run.py"

PROBE_TYPES = {"trial": pa.int16(), "client": pa.string(), "service": pa.string(),
               "flow": pa.int16(), "seq": pa.int64(), "send_ns": pa.int64(),
               "recv_ns": pa.int64(), "rtt_ms": pa.float64(), "site": pa.string(),
               "cluster": pa.string(), "node": pa.string(), "pod": pa.string()}
ROUTE_TYPES = {"trial": pa.int16(), "t_ns": pa.int64(), "router": pa.string(),
               "prefix": pa.string(), "action": pa.string(), "nexthops": pa.string(),
               "n_nexthops": pa.int16()}
MS = 1_000_000
S = 1_000_000_000
T0 = 5_000 * S  # a monotonic instant for hand-made runs


# ------------------------------------------------------------------------ hand-made runs

def lane(client: str, *, service: str = "dns", flow: int = 0, start_ns: int = T0,
         count: int = 3000, interval_ns: int = MS, site: str = "nyc", rtt_ms: float = 10.0,
         lost: Iterable[int] = (), sites: dict[int, str] | None = None,
         trial: int = 0) -> pd.DataFrame:
    """One probe stream: ``lost`` are lost sequence numbers, ``sites`` maps a sequence
    number to the site answering from it on."""
    seq = pd.Series(range(count), dtype="int64")
    send = start_ns + seq * interval_ns
    gone = seq.isin(set(lost))
    answering = pd.Series([site] * count, dtype="object")
    for from_seq, other in sorted((sites or {}).items()):
        answering[seq >= from_seq] = other
    rtt = pd.Series([rtt_ms] * count, dtype="float64").mask(gone)
    recv = (send + (rtt * MS).fillna(0).astype("int64")).astype("Int64").mask(gone)
    who = answering.mask(gone)
    return pd.DataFrame({
        "trial": pd.Series([trial] * count, dtype="int16"), "client": client,
        "service": service, "flow": pd.Series([flow] * count, dtype="int16"), "seq": seq,
        "send_ns": send, "recv_ns": recv, "rtt_ms": rtt, "site": who,
        "cluster": who.map(lambda s: f"{s}-k8s", na_action="ignore"),
        "node": who.map(lambda s: f"{s}-k8s-n1", na_action="ignore"),
        "pod": who.map(lambda s: f"{s}-k8s-n1-p1", na_action="ignore")})


def injector(kind: str, t_ns: int, *, trial: int = 0, step: int = 0,
             fault: str = "node-crash", target: str = "nyc-k8s-n1") -> dict[str, Any]:
    return {"t_ns": t_ns, "trial": trial, "source": "injector", "kind": kind, "step": step,
            "fault": fault, "target": target, "done_ns": t_ns + MS, "details": {}}


def runner(kind: str, t_ns: int, trial: int = 0) -> dict[str, Any]:
    return {"t_ns": t_ns, "trial": trial, "source": "runner", "kind": kind}


def meta(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format": 1, "run_id": "20261127-000000-tiny", "lab": "tiny", "complete": True,
        "interrupted": False, "started_wall": "2026-11-27T00:00:00+00:00",
        "clock": {"monotonic_ns": T0, "realtime_ns": 1_795_737_600 * S},
        "scenario": {"name": "tiny", "description": "a hand-made run", "file": "x.yaml",
                     "document": {}},
        "topology": {"name": "tiny", "file": "t.yaml", "document": {
            "sites": [{"name": "nyc"}, {"name": "ams"}],
            "services": [{"name": "dns", "vip": "192.0.2.53"}]}},
        "timers": {"nyc": {"keepalive_s": 3, "hold_s": 9, "connect_retry_s": 2, "ecmp": 16,
                           "bfd": {"interval_ms": 300, "multiplier": 3}}},
        "probe": {"interval_ms": 1.0, "flows": 1, "tcp_flows": 0, "clients": ["c1"],
                  "services": ["dns"]},
        "trials": 1, "versions": {"anycast_lab": "0.1.0"}, "host": {"cores": 2}}
    base.update(overrides)
    return base


def write_run(root: Path, probes: Sequence[pd.DataFrame], events: Sequence[dict[str, Any]],
              routes: Sequence[dict[str, Any]] = (), *, run_meta: dict[str, Any] | None = None,
              summary: dict[str, Any] | None = None) -> Path:
    """A run directory from hand-made records, in the contract's types."""
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps(run_meta or meta()))
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    frame = pd.concat(probes, ignore_index=True)
    schema = pa.schema(list(PROBE_TYPES.items()))
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False),
                   root / "probes.parquet")
    route_frame = pd.DataFrame(list(routes), columns=list(ROUTE_TYPES))
    pq.write_table(pa.Table.from_pandas(route_frame, schema=pa.schema(list(ROUTE_TYPES.items())),
                                        preserve_index=False), root / "routes.parquet")
    (root / "summary.json").write_text(json.dumps(summary or {"scenario": "tiny",
                                                               "trials": []}))
    return root


def route(t_ns: int, router: str, hops: Sequence[str], trial: int = 0) -> dict[str, Any]:
    return {"trial": trial, "t_ns": t_ns, "router": router, "prefix": "192.0.2.53/32",
            "action": "add" if hops else "del", "nexthops": ",".join(sorted(hops)),
            "n_nexthops": len(hops)}


# ------------------------------------------------------------------------ the samples

@pytest.mark.parametrize("sample", [SAMPLE_BFD, SAMPLE_HOLD, SAMPLE_ISOLATE],
                         ids=lambda p: p.name)
def test_sample_follows_the_contract(sample: Path) -> None:
    schema = pq.read_schema(sample / "probes.parquet")
    assert {n: schema.field(n).type for n in schema.names} == PROBE_TYPES
    routes = pq.read_schema(sample / "routes.parquet")
    assert {n: routes.field(n).type for n in routes.names} == ROUTE_TYPES
    run = json.loads((sample / "run.json").read_text())
    assert run["format"] == 1 and run["complete"] is True and run["run_id"] == sample.name
    for line in (sample / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        assert {"t_ns", "trial", "source", "kind"} <= set(event)
    summary = json.loads((sample / "summary.json").read_text())
    assert len(summary["trials"]) == run["trials"]
    first = summary["trials"][0]["events"][0]
    assert {"detection_ms", "control_plane", "clients", "reversion"} <= set(first)


def test_main_sample_is_the_performance_size() -> None:
    assert pq.read_metadata(SAMPLE_BFD / "probes.parquet").num_rows == 720_000


def test_generator_reproduces_a_sample(tmp_path: Path) -> None:
    out = tmp_path / SAMPLE_ISOLATE.name
    subprocess.run([sys.executable, str(GENERATOR), str(out), "--scenario", "site-isolate",
                    "--flows", "2", "--seed", "3"], check=True, capture_output=True, timeout=120)
    for name in ("run.json", "events.jsonl", "summary.json"):
        assert (out / name).read_text() == (SAMPLE_ISOLATE / name).read_text(), name
    for name in ("probes.parquet", "routes.parquet"):
        assert pq.read_table(out / name).equals(pq.read_table(SAMPLE_ISOLATE / name)), name
