"""Checks of timing precision that need the machine to themselves.

The lab measures milliseconds with userspace processes on a shared 2-core machine. When the
hypervisor takes part of the CPU for other machines, the link emulator and the probers fall
behind and a precise figure (a median delay, a jitter's spread, a valid trial) says nothing
about the code. Such checks run through ``on_a_quiet_machine``: a failed attempt is tried
again; when every failed attempt ran while the hypervisor took more than ``STEAL_LIMIT`` of
the CPU, the test is skipped with those figures; otherwise the last failure stands, with the
machine's figures attached to it. Load the lab itself makes (this machine's own processes) is
never an excuse: only time stolen by the hypervisor is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from lab.run.instrument import snapshot, trial_fields

T = TypeVar("T")

ATTEMPTS = 3
# the share of CPU time the hypervisor may take before a timing figure says more about the
# machine than about the lab (the instrument saw 27 % on a CI machine: probers skipped slots)
STEAL_LIMIT = 0.05


@dataclass(frozen=True)
class HostLoad:
    """The machine while something was measured (shares of all cores' time)."""

    busy: float | None
    steal: float | None
    pressure: float | None  # tasks waiting for a CPU ("some", /proc/pressure/cpu)

    @classmethod
    def of(cls, host: Mapping[str, Any]) -> HostLoad:
        """From an instrument's ``host`` figures (lab.run.instrument.trial_fields)."""
        return cls(host.get("cpu_busy"), host.get("cpu_steal"), host.get("cpu_pressure"))

    @property
    def stolen(self) -> bool:
        return (self.steal or 0.0) > STEAL_LIMIT

    def __str__(self) -> str:
        def share(value: float | None) -> str:
            return "?" if value is None else f"{value:.0%}"

        return (f"CPU busy {share(self.busy)}, taken by the hypervisor {share(self.steal)}, "
                f"pressure {share(self.pressure)}")


def on_a_quiet_machine(check: Callable[[int], T]) -> T:
    """``check(attempt)`` measures and asserts; its result once an attempt passes. A failed
    attempt is tried again (``ATTEMPTS`` in all); see the module's docstring."""
    loads: list[HostLoad] = []
    for attempt in range(ATTEMPTS):
        start, began = snapshot(None, []), time.monotonic_ns()
        try:
            return check(attempt)
        except AssertionError as failure:
            fields = trial_fields(start, snapshot(None, []), time.monotonic_ns() - began)
            loads.append(HostLoad.of(fields["host"]))
            if attempt + 1 < ATTEMPTS:
                continue
            machine = "; ".join(f"attempt {n + 1}: {load}" for n, load in enumerate(loads))
            # an attempt too short to see the machine (it checked figures made before it,
            # e.g. the calibration `up` made) says nothing either way
            measured = [load for load in loads if load.steal is not None]
            if measured and all(load.stolen for load in measured):
                pytest.skip(f"the hypervisor took more than {STEAL_LIMIT:.0%} of the CPU in "
                            f"every attempt, too busy to measure this ({machine}); last "
                            f"failure: {failure}")
            failure.add_note(f"the machine during the attempts: {machine}")
            raise
    raise AssertionError("unreachable: ATTEMPTS >= 1")
