"""Injector actions (faults and undos) and the windows they are measured in.

The windows are the runner's own (``lab.measure.metrics.windows``, the one definition): a
fault's window runs from its instant to the next injector action of the trial (strictly
later) or to the trial end; its undo opens a *reversion* window bounded the same way. So the
figures here and summary.json measure the same stretch of time, with the same code. A trial
is also cut into *phases* for catchment: before the first action, then one per action.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.measure.metrics.windows import EventWindow, event_windows

ActionKind = Literal["fault", "undo"]


@dataclass(frozen=True)
class FaultEvent:
    """One injector action of one trial and its window ``[t_ns, end_ns)``. For a fault,
    ``undo`` is the action that reverted it (None when it was never undone); ``window`` is
    the runner's record of it, which the figures are computed from."""

    trial: int
    kind: ActionKind
    step: int
    fault: str
    target: str
    t_ns: int
    end_ns: int
    window: EventWindow = field(compare=False, hash=False, repr=False)
    done_ns: int | None = None
    cycle: int = 0
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    undo: FaultEvent | None = None

    @property
    def label(self) -> str:
        """``node-crash nyc-k8s-n1`` for a fault, ``undo node-crash`` for an undo."""
        if self.kind == "undo":
            return f"undo {self.fault}"
        return f"{self.fault} {self.target}".strip()

    @property
    def window_ms(self) -> float:
        return (self.end_ns - self.t_ns) / 1e6


@dataclass(frozen=True)
class Phase:
    """A stretch of a trial for catchment shares: ``before``, or the window of an action."""

    name: str
    start_ns: int
    end_ns: int
    action: FaultEvent | None = None


def _event(window: EventWindow, details: Mapping[tuple[str, int, int], Any],
           undo: FaultEvent | None = None) -> FaultEvent:
    found = details.get((window.kind, window.step, window.t_ns))
    return FaultEvent(trial=window.trial, kind=window.kind, step=window.step,
                      fault=window.fault, target=window.target, t_ns=window.t_ns,
                      end_ns=window.end_ns, window=window, done_ns=window.done_ns,
                      cycle=window.cycle, details=found if isinstance(found, Mapping) else {},
                      undo=undo)


def build_actions(records: Sequence[Mapping[str, Any]],
                  trial_ends: Mapping[int, int]) -> list[FaultEvent]:
    """Every injector action with its window, in time order; faults carry their undo.
    ``records`` are events.jsonl's objects; ``trial_ends`` each trial's end instant."""
    out: list[FaultEvent] = []
    for trial, end in sorted(trial_ends.items()):
        own = [e for e in records if e.get("trial") == trial]
        details = {(str(e.get("kind")), int(e.get("step", 0)), int(e.get("t_ns", 0))):
                   e.get("details") for e in own if e.get("source") == "injector"}
        for window in event_windows(own, trial, end):
            undo = _event(window.reversion, details) if window.reversion else None
            out.append(_event(window, details, undo))
            if undo is not None:
                out.append(undo)
    return sorted(out, key=lambda a: (a.trial, a.t_ns))


def trial_phases(actions: list[FaultEvent], trial: int, start_ns: int,
                 end_ns: int) -> list[Phase]:
    """``before`` (trial start to the first action), then ``during <fault>`` after each
    fault and ``after <fault>`` after each undo."""
    mine = [a for a in actions if a.trial == trial]
    first = mine[0].t_ns if mine else end_ns
    phases = [Phase("before", start_ns, first)] if first > start_ns else []
    for action in mine:
        name = f"during {action.fault}" if action.kind == "fault" else f"after {action.fault}"
        phases.append(Phase(name, action.t_ns, action.end_ns, action))
    return phases


__all__ = ["ActionKind", "FaultEvent", "Phase", "build_actions", "trial_phases"]
