"""The lab is a measuring instrument: its readings must agree with protocol theory.

Silent node crash with BFD 300 ms x 3: outage about 0.6-1.3 s; with a 9 s hold timer and no
BFD: 6-10 s; carrier loss: well under 0.3 s; a graceful drain: (close to) nothing lost; ten
BFD trials: spread within one BFD transmit interval. On every backend: bare namespaces,
containers deployed by containerlab, Mininet hosts.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lab.backend import backend_named, labs
from lab.run.runner import RunOptions, run_scenario
from tests.conftest import REPO, TOPOLOGIES
from tests.integration.labfixture import (
    assert_lab_gone,
    assert_only_planned_neighbours,
    require_backend,
    running_lab,
    unique_lab_name,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCENARIOS = REPO / "tests" / "data" / "scenarios"
BFD_INTERVAL_MS = 300  # the mini lab's BFD profile: 300 ms x 3


@pytest.fixture(scope="module", params=["netns", "containerlab", "mininet"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend must agree with theory (and so with the others)."""
    return require_backend(str(request.param))


@pytest.fixture(scope="module")
def mini(backend: str) -> Iterator[labs.UpResult]:
    with running_lab(TOPOLOGIES / "two-sites-mini.yaml", "truth", backend=backend) as result:
        yield result


def _run(scenario: str, lab: str, runs: Path, monkeypatch: pytest.MonkeyPatch,
         backend: str | None = None, **options: Any) -> dict[str, Any]:
    monkeypatch.chdir(REPO)
    result = run_scenario(RunOptions(SCENARIOS / scenario, name=lab, keep_lab=True,
                                     runs_root=runs, **options), lambda _m: None,
                          backend=backend_named(backend) if backend else None)
    assert result.complete
    for name in ("run.json", "events.jsonl", "probes.parquet", "routes.parquet",
                 "summary.json"):
        assert (result.run_dir / name).is_file(), name
    return result.summary


def _client(event: dict[str, Any], client: str, service: str = "echo") -> dict[str, Any]:
    return next(c for c in event["clients"] if c["client"] == client and c["service"] == service)


def test_silent_crash_with_bfd(mini: labs.UpResult, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _run("mini-node-crash.yaml", mini.state.lab, tmp_path, monkeypatch)
    event = summary["trials"][0]["events"][0]
    hit = _client(event, "east-c1")
    assert 600 <= hit["outage_ms"] <= 1300, hit
    assert hit["site_before"] == hit["site_after"] == "alpha"
    assert event["detection_source"] in {"bfd", "bgp"}
    assert 500 <= event["detection_ms"] <= 1000
    assert _client(event, "west-c1")["lost"] == 0
    run_dir = next(tmp_path.iterdir())
    probes = pd.read_parquet(run_dir / "probes.parquet")
    assert probes["recv_ns"].isna().sum() >= hit["lost"]
    routes = pd.read_parquet(run_dir / "routes.parquet")
    assert {"alpha-l1", "alpha-l2", "alpha-s1"} & set(routes["router"])


def test_carrier_loss_is_fast(mini: labs.UpResult, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _run("mini-link-down.yaml", mini.state.lab, tmp_path, monkeypatch)
    hit = _client(summary["trials"][0]["events"][0], "east-c1")
    assert hit["outage_ms"] < 300, hit
    # the link came back with its permanent neighbour entries (set down, it lost them)
    assert_only_planned_neighbours(mini)


def test_graceful_drain_loses_close_to_nothing(mini: labs.UpResult, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _run("mini-drain.yaml", mini.state.lab, tmp_path, monkeypatch)
    event = summary["trials"][0]["events"][0]
    moved = _client(event, "east-c1")
    assert moved["site_before"] == "alpha" and moved["site_after"] == "beta", moved
    assert moved["loss_derived_ms"] <= 20, moved
    back = _client(event["reversion"], "east-c1")
    assert back["site_after"] == "alpha" and back["loss_derived_ms"] <= 20, back


def test_bfd_trials_are_repeatable(mini: labs.UpResult, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten crashes land at random moments of the BFD transmit cycle, so the detection time
    varies by up to one interval (the crashed node's last packet left 0-300 ms before the
    crash): the outages spread over at most ~300 ms. Their IQR/median is then ~15 % on
    average, but a sample of ten exceeds 20 % about one time in eight (simulated), so the
    test bounds what the protocol allows: an IQR under one transmit interval. The benchmark
    reports the ratio (docs/benchmarks.md)."""
    summary = _run("mini-bfd-repeat.yaml", mini.state.lab, tmp_path, monkeypatch)
    outages = [_client(t["events"][0], "east-c1")["outage_ms"] for t in summary["trials"]]
    assert len(outages) == 10
    quartiles = statistics.quantiles(outages, n=4)
    median = statistics.median(outages)
    print(json.dumps({"outages_ms": outages, "median": median,
                      "iqr_over_median": (quartiles[2] - quartiles[0]) / median}))
    assert all(500 <= o <= 1400 for o in outages), outages
    assert quartiles[2] - quartiles[0] <= BFD_INTERVAL_MS, outages


def test_hold_timer_without_bfd(backend: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique_lab_name("hold")
    try:
        summary = _run("mini-holdtimer.yaml", name, tmp_path, monkeypatch, backend=backend)
    finally:
        labs.down(name, force=True)
        assert_lab_gone(name)
    event = summary["trials"][0]["events"][0]
    hit = _client(event, "east-c1")
    assert 6000 <= hit["outage_ms"] <= 10000, hit
    assert event["detection_source"] == "bgp"
