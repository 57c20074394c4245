"""One definition of every figure: summary.json (``lab.measure.metrics``, as the runner writes
it) and ``analysis`` (tables, report, notebooks) give the same value in every row, on every
real run in tests/data/real-runs, on the samples, and on a hand-made run built on the edge
cases where the two once differed:

- the answering site before an event when two sites answered equally often (the one seen last);
- detection when a session not touching the target went down first (the target's first);
- losses in the last reply timeout before the probes end (not charged) and a loss run that
  began just before the next action (that action's in-flight loss, charged to its window).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import Run, client_table, event_table, load_run
from lab.measure.metrics.summary import summarize_run
from tests.conftest import REPO
from tests.unit.test_analysis_data import (
    MS,
    SAMPLES,
    T0,
    injector,
    lane,
    meta,
    runner,
    write_run,
)

REAL_RUNS = sorted(p for p in (REPO / "tests" / "data" / "real-runs").iterdir() if p.is_dir())
SAMPLE_RUNS = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
CLIENT_FIELDS = ("outage_ms", "rate_derived_ms", "loss_derived_ms", "loss_windows",
                 "loss_ratio", "lost", "recovered", "site_before",
                 "site_after", "flip_ns", "rtt_before_ms", "rtt_after_ms", "tcp_broken")


def recomputed_summary(run: Run) -> dict[str, Any]:
    """summary.json as the runner computes it, from the run directory's files."""
    bounds = [(t, *run.trial_bounds(t)) for t in run.trials]
    return summarize_run(scenario=run.scenario, complete=run.complete,
                         probes=pd.read_parquet(run.path / "probes.parquet"),
                         routes=pd.read_parquet(run.path / "routes.parquet"),
                         events=list(run.records), interval_ms=run.interval_ms,
                         trial_bounds=bounds)


def _same(value: Any, expected: Any) -> bool:
    missing = value is None or (isinstance(value, float) and math.isnan(value)) or (
        value is pd.NA)
    if expected is None:
        return bool(missing)
    if missing:
        return False
    if isinstance(expected, float) or isinstance(value, float):
        return abs(float(value) - float(expected)) < 1e-6
    return bool(value == expected)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, int, int, dict[str, Any]]]:
    rows = []
    for trial in summary["trials"]:
        for event in trial["events"]:
            rows += [("fault", trial["trial"], event["step"], c) for c in event["clients"]]
            for c in (event.get("reversion") or {}).get("clients", []):
                rows.append(("undo", trial["trial"], event["step"], c))
    return rows


def assert_agreement(run: Run, summary: dict[str, Any]) -> int:
    """Every client row and every event of ``summary`` equals analysis's; returns how many
    values were compared."""
    table = client_table(run)
    compared = 0
    for phase, trial, step, expected in summary_rows(summary):
        rows = table[(table["phase"] == phase) & (table["trial"] == trial)
                     & (table["step"] == step) & (table["client"] == expected["client"])
                     & (table["service"] == expected["service"])]
        assert len(rows) == 1, (phase, trial, step, expected["client"], expected["service"])
        row = rows.iloc[0]
        for name in CLIENT_FIELDS:
            value = row[name]
            value = None if value is pd.NA else value
            assert _same(value, expected.get(name)), (run.path.name, phase, trial, step,
                                                      expected["client"], name, value,
                                                      expected.get(name))
            compared += 1
    events = event_table(run)
    faults = events[events["phase"] == "fault"].reset_index(drop=True)
    entries = [e for t in summary["trials"] for e in t["events"]]
    assert len(entries) == len(faults)
    for entry, (_, row) in zip(entries, faults.iterrows(), strict=True):
        plane = entry["control_plane"]
        for value, expected in ((row["detection_ms"], entry["detection_ms"]),
                                (row["detection_source"], entry["detection_source"]),
                                (row["first_fib_ms"], plane["first_fib_change_ms"]),
                                (row["last_fib_ms"], plane["last_fib_change_ms"]),
                                (row["routers_changed"], len(plane["routers"]))):
            assert _same(value, expected), (run.path.name, entry["step"], value, expected)
            compared += 1
    return compared


def _as_stored(value: Any, stored: Any) -> Any:
    """``value`` with only the keys ``stored`` has, in nested dicts and lists of dicts."""
    if isinstance(value, dict) and isinstance(stored, dict):
        return {k: _as_stored(v, stored[k]) for k, v in value.items() if k in stored}
    if isinstance(value, list) and isinstance(stored, list) and len(value) == len(stored):
        return [_as_stored(v, s) for v, s in zip(value, stored, strict=True)]
    return value


@pytest.mark.parametrize("path", REAL_RUNS + SAMPLE_RUNS, ids=lambda p: p.name)
def test_summary_and_analysis_agree_on_every_row(path: Path) -> None:
    run = load_run(path)
    stored = json.loads((path / "summary.json").read_text())
    recomputed = recomputed_summary(run)
    # summary.json is what the runner's code gives for the files beside it (figures added
    # since it was written aside)
    for (_, _, _, kept), (_, _, _, again) in zip(summary_rows(stored),
                                                  summary_rows(recomputed), strict=True):
        assert _as_stored(again, kept) == kept
    assert assert_agreement(run, stored) > 50


def test_edge_cases_agree(tmp_path: Path) -> None:
    fault, nxt, end = T0 + 1000 * MS, T0 + 1600 * MS, T0 + 5000 * MS
    # c1: 1 s before the fault alternates ams/nyc (a tie: nyc answered last); c2 loses from
    # 5 ms before the next action (less than a round trip, 10 ms) until it, and the last
    # 1.5 s of the trial
    tie = {k: "ams" if k % 2 == 0 else "nyc" for k in range(1000)}
    lanes = [lane("c1", count=5000, sites=tie),
             lane("c2", count=5000, lost=[*range(1595, 1600), *range(3500, 5000)])]
    events = [runner("trial_start", T0), injector("fault", fault, target="n1"),
              {"t_ns": fault + 100 * MS, "trial": 0, "source": "bgp", "kind": "session_down",
               "router": "l9", "peer": "n9", "reason": "x"},
              {"t_ns": fault + 300 * MS, "trial": 0, "source": "bfd", "kind": "bfd_down",
               "router": "l1", "peer": "n1", "reason": "x"},
              injector("fault", nxt, step=1, fault="link-down", target="a--b"),
              runner("trial_end", end)]
    run = load_run(write_run(tmp_path / "edge", lanes, events,
                             run_meta=meta(probe={"interval_ms": 1.0, "flows": 1,
                                                  "tcp_flows": 0, "clients": ["c1", "c2"],
                                                  "services": ["dns"]})))
    summary = recomputed_summary(run)
    assert_agreement(run, summary)
    first = summary["trials"][0]["events"][0]
    assert (first["detection_ms"], first["detection_source"]) == (300.0, "bfd")
    c1, c2 = first["clients"]
    assert c1["site_before"] == "nyc"  # the tie goes to the site seen last, not the first name
    assert c2["lost"] == 0 and c2["outage_ms"] == 0.0  # in flight at the next action
    second = summary["trials"][0]["events"][1]
    # the next action's window charges the 5 in flight at it, not the trial's last 2 s (not
    # judged)
    assert (second["clients"][1]["lost"], second["clients"][1]["outage_ms"]) == (5, 5.0)
