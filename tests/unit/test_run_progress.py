"""What `anylab run` shows while it plays: the runner tells when each trial starts and how long
its timeline lasts; the display turns that into time left, or plain lines with --quiet."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from lab.backend.fake import FakeBackend
from lab.cli.runprogress import RunDisplay
from lab.run.measurement import NoMeasurement
from lab.run.runner import RunOptions, TrialTiming, run_scenario
from tests.unit.test_runner_fake import lab_root, scenario  # noqa: F401 - the fixture

TWO_TRIALS = """\
name: fake-progress
topology: {topology}
probe: {{interval: 1ms, flows: 1, tcp_flows: 0}}
settle: 10ms
tail: 20ms
repeat: 2
recover_timeout: 1s
steps:
  - {{fault: node-crash, target: beta-k8s-n1, at: 5ms, duration: 30ms}}
"""


def test_the_runner_announces_each_trial_with_its_length(lab_root: Path) -> None:  # noqa: F811
    timings: list[TrialTiming] = []
    steps: list[str] = []
    run_scenario(RunOptions(scenario(lab_root, TWO_TRIALS), name="fake",
                            runs_root=lab_root / "runs"), steps.append, backend=FakeBackend(),
                 measurement=NoMeasurement, on_trial=timings.append)
    assert [(t.trial, t.trials) for t in timings] == [(0, 2), (1, 2)]
    assert {t.planned_s for t in timings} == {0.065}  # settle + timeline (5 + 30) + tail
    assert timings[1].start_monotonic > timings[0].start_monotonic
    assert "node-crash on beta-k8s-n1" in steps


def test_time_left_counts_the_trials_to_come() -> None:
    timing = TrialTiming(trial=0, trials=3, start_monotonic=0.0, planned_s=10.0)
    assert RunDisplay._left(timing, 4.0) == "trial 1/3: 6 s left, run: 26 s left"
    assert RunDisplay._left(timing, 30.0) == "trial 1/3: 0 s left, run: 20 s left"


def test_quiet_prints_one_plain_line_per_step() -> None:
    buffer = io.StringIO()
    display = RunDisplay(Console(file=buffer, width=120), quiet=True, verbose=False)
    with display.live():
        display.step("node-crash on [nyc-k8s-n1]")
        display.trial(TrialTiming(0, 1, 0.0, 5.0))
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("] node-crash on [nyc-k8s-n1]")
