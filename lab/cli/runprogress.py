"""What `anylab run` shows while it plays: a progress bar per trial (its settle, steps and
tail, with the time left of the trial and of the run) under the current step; a spinner
while the lab comes up or recovers; nothing live with ``--quiet`` (CI logs), where each step
is one plain line on stderr instead."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from lab.run.runner import TrialTiming

REFRESH_S = 0.2


@dataclass
class RunDisplay:
    console: Console
    quiet: bool
    verbose: bool
    progress: Progress | None = None
    task: TaskID | None = None
    timing: TrialTiming | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def step(self, message: str) -> None:
        """A step of the run (the runner's progress messages)."""
        if self.quiet or self.verbose:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {message}", markup=False,
                               highlight=False)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=message)

    def trial(self, timing: TrialTiming) -> None:
        self.timing = timing
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, total=timing.planned_s, completed=0,
                                 left=self._left(timing, 0.0))

    @staticmethod
    def _left(timing: TrialTiming, elapsed: float) -> str:
        trial_left = max(0.0, timing.planned_s - elapsed)
        run_left = trial_left + (timing.trials - timing.trial - 1) * timing.planned_s
        return (f"trial {timing.trial + 1}/{timing.trials}: {trial_left:.0f} s left, "
                f"run: {run_left:.0f} s left")

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            timing = self.timing
            if timing is None or self.progress is None or self.task is None:
                continue
            elapsed = min(time.monotonic() - timing.start_monotonic, timing.planned_s)
            self.progress.update(self.task, completed=elapsed, left=self._left(timing, elapsed))

    @contextlib.contextmanager
    def live(self) -> Iterator[RunDisplay]:
        if self.quiet:
            yield self
            return
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 BarColumn(), TextColumn("{task.fields[left]}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.task = self.progress.add_task("starting", total=None, left="")
        ticker = threading.Thread(target=self._tick, name="run-progress", daemon=True)
        with self.progress:
            ticker.start()
            try:
                yield self
            finally:
                self._stop.set()
                ticker.join()
