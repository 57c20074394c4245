"""The instrument watches itself on a real run: the mini lab's node-crash scenario on a quiet
machine gives valid trials with the instrument's figures; the same scenario while CPU hogs
take the machine from the lab's own parts (real-time busy loops above the link emulator's
priority, on every core) gives an invalid trial whose warnings say what lagged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lab.backend import labs
from lab.backend.processes import stop_pids
from lab.measure.calibrate import MEASURE_MS
from lab.run.runner import RunOptions, run_scenario
from tests.conftest import REPO, TOPOLOGIES
from tests.integration.labfixture import require_backend, running_lab
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
SCENARIO = REPO / "tests" / "data" / "scenarios" / "mini-node-crash.yaml"
HOG_PRIORITY = 20  # SCHED_FIFO, above the emulator's 10 and the probers' 5
HOG = """
import os, sys, time
cpu, busy_s, idle_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
os.sched_setaffinity(0, {cpu})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(sys.argv[4])))
while True:
    end = time.monotonic() + busy_s
    while time.monotonic() < end:
        pass
    time.sleep(idle_s)
"""


@pytest.fixture(scope="module")
def mini() -> Iterator[labs.UpResult]:
    require_backend("netns")
    with running_lab(TOPOLOGIES / "two-sites-mini.yaml", "instr") as result:
        yield result


@contextmanager
def cpu_hogs(busy_ms: float, idle_ms: float) -> Iterator[list[int]]:
    """A real-time busy loop on every core, ``busy_ms`` on and ``idle_ms`` off; stopped by
    PID on the way out."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(cpu), str(busy_ms / 1000),
                              str(idle_ms / 1000), str(HOG_PRIORITY)])
            for cpu in sorted(os.sched_getaffinity(0))]
    try:
        time.sleep(0.5)
        assert all(h.poll() is None for h in hogs), "a CPU hog did not start"
        yield [h.pid for h in hogs]
    finally:
        stop_pids([h.pid for h in hogs], grace_s=2.0)
        for hog in hogs:
            hog.wait(timeout=10)


def test_up_calibrates_the_emulated_delays(mini: labs.UpResult) -> None:
    def check(attempt: int) -> None:
        # the calibration `up` made, then (on a busy machine) the lab calibrated again
        calibration = mini.calibration if attempt == 0 else labs.calibrate_delays_of(
            mini.backend, mini.state, mini.plan, lambda _m: None)
        assert calibration is not None
        assert [c.client for c in calibration.clients] == ["east-c1", "west-c1"]
        for client in calibration.clients:
            # one probe per millisecond of the round, a few lost to its end
            assert client.link is not None and client.probes > MEASURE_MS * 0.8
            # the lab's own cost is a fraction of a millisecond per round trip on this machine
            assert 0 <= client.compensation_us <= 2000
            assert client.residual_ms is not None and abs(client.residual_ms) < 1.0, client

    on_a_quiet_machine(check)


def _run(mini: labs.UpResult, tmp_path: Path) -> dict[str, Any]:
    scenario = tmp_path / "instrument.yaml"
    scenario.write_text(SCENARIO.read_text().replace("topology: topologies/",
                                                     f"topology: {TOPOLOGIES}/"))
    result = run_scenario(RunOptions(scenario, name=mini.state.lab, runs_root=tmp_path / "runs"),
                          lambda _m: None)
    return result.summary


def test_a_quiet_run_is_valid_and_shows_its_instrument(mini: labs.UpResult,
                                                      tmp_path: Path) -> None:
    # a hypervisor that steals a quarter of the CPU makes the probers skip slots: that run
    # is rightly invalid, and says nothing of a quiet machine
    folders: list[Path] = []

    def attempt(number: int) -> dict[str, Any]:
        folders.append(tmp_path / f"attempt-{number}")
        folders[-1].mkdir()
        summary = _run(mini, folders[-1])
        assert summary["trials"][0]["valid"] is True, summary["trials"][0]["warnings"]
        return summary

    summary = on_a_quiet_machine(attempt)
    (trial,) = summary["trials"]
    (run_dir,) = (folders[-1] / "runs").iterdir()
    calibration = json.loads((run_dir / "run.json").read_text())["delay_calibration"]
    assert {c["client"] for c in calibration["clients"]} == {"east-c1", "west-c1"}
    instrument = trial["instrument"]
    assert instrument["problems"] == []
    assert instrument["emulator"]["forwarded"] > 10_000  # two clients' probes, both ways
    assert instrument["probers"]["clients"] == 2 and instrument["probers"]["ticks"] > 5_000
    assert 0 < instrument["host"]["cpu_busy"] <= 1
    assert instrument["sessions_down_before_fault"] == []
    # the round trips before the fault, against the configured 4 ms (2 ms access link each
    # way): within a millisecond after the run's own calibration
    delay = instrument["delay"]
    assert {p["client"] for p in delay["paths"]} == {"east-c1", "west-c1"}
    assert all(p["expected_rtt_ms"] == 4.0 for p in delay["paths"])
    assert delay["max_abs_error_ms"] < 1.0, delay


def test_an_overloaded_run_is_marked_invalid_with_the_reason(mini: labs.UpResult,
                                                            tmp_path: Path) -> None:
    with cpu_hogs(busy_ms=40, idle_ms=10):
        summary = _run(mini, tmp_path)
    (trial,) = summary["trials"]
    assert trial["valid"] is False
    # measured: 5 % of the frames 10 ms late, 65 % of the slots skipped
    problems = " | ".join(trial["instrument"]["problems"])
    assert "more than 10 ms late" in problems and "probe slots" in problems, trial["instrument"]
    assert any(w.startswith("the instrument lagged") for w in trial["warnings"])
