"""`anylab compare`: what got worse from one run to another (analysis.compare), on the
recorded real runs and on hand-made summaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analysis.compare import CompareError, compare, compare_runs, parse_tolerance
from lab.cli.main import EXIT_BUDGET, EXIT_OK
from tests.conftest import REPO

REAL = REPO / "tests" / "data" / "real-runs"
BFD = REAL / "20261127-012226-node-crash-bfd"
HOLD = REAL / "20261127-012556-node-crash-holdtimer"


def _summary(outage: float, tcp: float = 0.0, client: str = "c1") -> dict[str, Any]:
    def stats(v: float) -> dict[str, float]:
        return {"median": v, "p95": v, "iqr": 0.0, "min": v, "max": v}

    return {"scenario": "s", "interval_ms": 1.0, "metrics_version": 2,
            "aggregate": [{"step": 0, "fault": "node-crash", "client": client, "service": "dns",
                           "outage_ms": stats(outage), "tcp_broken": stats(tcp),
                           "detection_ms": None}]}


def test_a_summary_of_the_first_definitions_is_compared_on_its_rate_derived_figure() -> None:
    old = _summary(900.0)
    del old["metrics_version"]  # version 1: its outage_ms was rate-derived
    new = _summary(40.0)
    new["aggregate"][0]["rate_derived_ms"] = new["aggregate"][0]["outage_ms"] | {
        "median": 1500.0, "p95": 1500.0}
    result = compare(old, new)
    assert {d.figure for d in result.differences} == {"rate_derived_ms", "tcp_broken"}
    assert {d.verdict for d in result.differences if d.figure == "rate_derived_ms"} == {
        "worse"}
    assert {d.figure for d in compare(old, old).differences} == {"rate_derived_ms",
                                                                  "tcp_broken"}


def test_holdtimer_is_worse_than_bfd_and_a_run_equals_itself() -> None:
    worse = compare_runs(BFD, HOLD)
    assert {(d.client, d.service, d.figure) for d in worse.worse} >= {
        ("us-c1", "dns", "outage_ms"), ("us-c1", "dns", "loss_derived_ms")}
    assert compare_runs(BFD, BFD).worse == []
    back = compare_runs(HOLD, BFD)  # the other way round: the outage is better
    assert not [d for d in back.worse if d.figure in ("outage_ms", "loss_derived_ms")]
    assert {d.figure for d in back.worse} == {"tcp_broken"}  # the BFD run broke a flow


@pytest.mark.parametrize(("base", "new", "tolerance", "verdict"), [
    (1000.0, 1100.0, 0.1, "same"),      # 10 % + 1 ms allowed: 1101
    (1000.0, 1102.0, 0.1, "worse"),
    (0.0, 1.0, 0.1, "same"),            # one probe interval of slack
    (0.0, 2.0, 0.1, "worse"),
    (900.0, 800.0, 0.0, "better"),
])
def test_tolerance_and_slack(base: float, new: float, tolerance: float, verdict: str) -> None:
    result = compare(_summary(base), _summary(new), tolerance)
    outage = [d for d in result.differences if d.figure == "outage_ms"]
    assert {d.verdict for d in outage} == {verdict}


def test_a_broken_connection_more_is_worse() -> None:
    result = compare(_summary(0.0, tcp=0.0), _summary(0.0, tcp=1.0))
    assert {(d.figure, d.statistic) for d in result.worse} == {("tcp_broken", "median"),
                                                               ("tcp_broken", "p95")}


def test_runs_with_nothing_in_common_are_refused() -> None:
    with pytest.raises(CompareError, match=r"no \(step"):
        compare(_summary(1.0, client="a"), _summary(1.0, client="b"))
    partial = compare({**_summary(1.0), "aggregate": _summary(1.0)["aggregate"]
                       + _summary(1.0, client="x")["aggregate"]}, _summary(1.0))
    assert partial.only_base == [(0, "node-crash", "x", "dns", "ipv4")] and partial.only_new == []


def test_missing_summary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CompareError, match=r"no summary\.json"):
        compare_runs(tmp_path, BFD)


@pytest.mark.parametrize(("text", "value"), [("10%", 0.1), ("0.25", 0.25), ("0", 0.0)])
def test_tolerances(text: str, value: float) -> None:
    assert parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-5%", "ten", ""])
def test_bad_tolerances(text: str) -> None:
    with pytest.raises(ValueError):
        parse_tolerance(text)


def test_cli_exit_codes_and_json() -> None:
    def anylab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lab.cli", "compare", *args], text=True,
                              capture_output=True, timeout=120, check=False,
                              cwd=REPO)

    worse = anylab(str(BFD), str(HOLD), "--json")
    assert worse.returncode == EXIT_BUDGET, worse.stderr
    document = json.loads(worse.stdout)
    assert document["worse"] > 0 and document["tolerance"] == 0.1
    same = anylab(str(BFD), str(BFD), "--tolerance", "0%")
    assert same.returncode == EXIT_OK and "nothing worse" in same.stdout
    assert anylab(str(BFD), str(BFD), "--tolerance", "lots").returncode == 2
