"""Measurement windows: the stretch of a trial that each injector action is charged with.

A fault's window runs from its instant (the injector's ``t_ns``) to the next injector action of
the trial (a fault or an undo of any step, strictly later) or to the trial end; its undo opens a
*reversion* window bounded the same way. Everything measured for an event is measured inside its
window, so overlapping steps never charge one step with another's effects.

Actions the timeline puts at the same instant (their ``at_ms``) are carried out one after the
other, milliseconds apart: they share one window, which the next action of a later instant
closes. Otherwise the first of two simultaneous faults would be measured for the few
milliseconds it took to apply, and the second charged with both.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lab.errors import MetricsError

Event = Mapping[str, object]
ActionKind = Literal["fault", "undo"]
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class EventWindow:
    """One injector action and the window it is measured in: ``[t_ns, end_ns)``."""

    trial: int
    step: int
    fault: str
    target: str
    kind: ActionKind
    t_ns: int
    end_ns: int
    trial_end_ns: int
    at_ms: float | None = None  # the timeline's instant; None for an undo at the trial end
    cycle: int = 0
    done_ns: int | None = None
    at_trial_end: bool = False
    reversion: EventWindow | None = None

    @property
    def length_ns(self) -> int:
        return self.end_ns - self.t_ns

    @property
    def ends_at_action(self) -> bool:
        """True when another injector action (not the trial end) closes the window."""
        return self.end_ns < self.trial_end_ns


def event_int(event: Event, key: str) -> int:
    value = event.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetricsError(f"{event.get('source')} event {event.get('kind')}: {key!r} must be "
                           f"an integer, found {value!r}")
    return value


def is_event(event: Event, trial: int, source: str, kinds: Sequence[str]) -> bool:
    return (event.get("trial") == trial and event.get("source") == source
            and event.get("kind") in kinds)


def _action(event: Event, trial: int, end_ns: int) -> EventWindow:
    details = event.get("details")
    at_end = isinstance(details, Mapping) and details.get("at_trial_end") is True
    done = event.get("done_ns")
    cycle, at_ms = event.get("cycle"), event.get("at_ms")
    kind: ActionKind = "undo" if event.get("kind") == "undo" else "fault"
    return EventWindow(
        trial=trial, step=event_int(event, "step"), fault=str(event.get("fault", "")),
        target=str(event.get("target", "")), kind=kind, t_ns=event_int(event, "t_ns"),
        end_ns=end_ns, trial_end_ns=end_ns,
        at_ms=float(at_ms) if isinstance(at_ms, (int, float)) and not isinstance(at_ms, bool)
        else None,
        cycle=cycle if isinstance(cycle, int) and not isinstance(cycle, bool) else 0,
        done_ns=done if isinstance(done, int) and not isinstance(done, bool) else None,
        at_trial_end=at_end)


def _close(actions: list[EventWindow], end_ns: int) -> list[EventWindow]:
    """Each action's window ends at the next strictly later action that the timeline did not
    put at the same instant, or at the trial end."""
    instants = [a.t_ns for a in actions]  # sorted
    closed: list[EventWindow] = []
    for action in actions:
        later = bisect.bisect_right(instants, action.t_ns)
        while later < len(actions) and action.at_ms is not None \
                and actions[later].at_ms == action.at_ms:
            later += 1
        closed.append(replace(action, end_ns=instants[later] if later < len(instants)
                              else end_ns))
    return closed


def event_windows(events: Sequence[Event], trial: int, end_ns: int) -> list[EventWindow]:
    """The fault windows of one trial in time order, each with its reversion window (the
    window of its undo) when it was undone. Actions at or after ``end_ns`` are ignored; an
    undo pairs with the latest earlier fault of the same step that has no undo yet (a
    link-flap step has several fault/undo cycles)."""
    actions = [_action(e, trial, end_ns) for e in events
               if is_event(e, trial, "injector", ("fault", "undo"))]
    actions = [a for a in actions if a.t_ns < end_ns]
    actions.sort(key=lambda a: a.t_ns)  # stable: same-instant actions keep the log's order
    closed = _close(actions, end_ns)
    faults: list[EventWindow] = []
    open_faults: dict[int, int] = {}  # step -> index in faults
    for window in closed:
        if window.kind == "fault":
            open_faults[window.step] = len(faults)
            faults.append(window)
            continue
        index = open_faults.pop(window.step, None)
        if index is not None:
            faults[index] = replace(faults[index], reversion=window)
    return faults


__all__ = ["NS_PER_MS", "NS_PER_S", "Event", "EventWindow", "event_int",
           "event_windows", "is_event"]
