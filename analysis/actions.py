"""Injector actions (faults and undos) and the windows they are measured in.

A fault's window runs from its instant to the next injector action of the trial (strictly
later) or to the trial end; its undo opens a *reversion* window bounded the same way. This is
the runner's own rule (lab/measure/metrics/windows.py), so the figures here and summary.json measure
the same stretch of time. A trial is also cut into *phases* for catchment: before the first
action, then one phase per action.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd

ActionKind = Literal["fault", "undo"]


@dataclass(frozen=True)
class FaultEvent:
    """One injector action of one trial and its window ``[t_ns, end_ns)``. For a fault,
    ``undo`` is the action that reverted it (None when it was never undone)."""

    trial: int
    kind: ActionKind
    step: int
    fault: str
    target: str
    t_ns: int
    end_ns: int
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


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else int(value)
    return int(value) if isinstance(value, int) else None


def _action(row: Mapping[Hashable, Any], end_ns: int) -> FaultEvent:
    details = row.get("details")
    return FaultEvent(
        trial=int(row["trial"]), kind="undo" if row["kind"] == "undo" else "fault",
        step=_int_or_none(row.get("step")) or 0, fault=str(row.get("fault") or ""),
        target=str(row.get("target") or ""), t_ns=int(row["t_ns"]), end_ns=end_ns,
        done_ns=_int_or_none(row.get("done_ns")), cycle=_int_or_none(row.get("cycle")) or 0,
        details=details if isinstance(details, Mapping) else {})


def build_actions(events: pd.DataFrame,
                  bounds: Mapping[int, tuple[int, int]]) -> list[FaultEvent]:
    """Every injector action with its window; faults carry their undo."""
    if events.empty:
        return []
    injector = events[(events["source"] == "injector")
                      & events["kind"].isin(["fault", "undo"])]
    out: list[FaultEvent] = []
    for trial, (_, trial_end) in sorted(bounds.items()):
        rows = injector[(injector["trial"] == trial) & (injector["t_ns"] < trial_end)]
        records = rows.sort_values("t_ns", kind="stable").to_dict("records")
        instants = [int(r["t_ns"]) for r in records]
        actions = [_action(r, next((t for t in instants if t > int(r["t_ns"])), trial_end))
                   for r in records]
        out += _pair_undos(actions)
    return out


def _pair_undos(actions: list[FaultEvent]) -> list[FaultEvent]:
    """An undo pairs with the latest earlier fault of its step that has no undo yet."""
    paired = list(actions)
    open_faults: dict[int, int] = {}
    for i, action in enumerate(actions):
        if action.kind == "fault":
            open_faults[action.step] = i
        elif (j := open_faults.pop(action.step, None)) is not None:
            paired[j] = replace(paired[j], undo=action)
    return paired


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
