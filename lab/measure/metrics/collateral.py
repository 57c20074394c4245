"""Collateral damage: what a failure did to the flows that were not on the failed element.

Anycast with ECMP moves flows that had nothing to do with a failure: when a leaf's next-hop
group loses a member, flows of the healthy members may hash elsewhere; a moved TCP connection
breaks when the node it lands on has no state for it. So every client row of an event says
which of its flows were on the failed element and what the others suffered.

A flow is *on the failed element* when the pod, node or site that answered it before the
event (the most frequent in the second before) is the fault's target, or an end of a target
link (``a--b``). For targets that answer no probe (a spine, a leaf, a transit) no flow is on
them and every flow that lost probes is counted; the row's ``target_answers`` says which case
applies.

A broken TCP flow's cause, from its own events (``lab.measure.probe.tcpflows``):
- ``target``: it was on the failed element;
- ``moved``: reset (or closed) by a node that had no state for it: it reconnected to another
  node than before, or was reset without its own node failing;
- ``path loss``: no reply in time (a path that dropped it, for longer than its timeout);
- ``other``: refused or unreachable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.measure.metrics.windows import Event, EventWindow, event_int, is_event

FlowKey = tuple[str, str, str, int]  # client, service, family, flow


def target_elements(target: str) -> frozenset[str]:
    """The names a fault's target stands for (both ends of a link)."""
    return frozenset(part for part in target.split("--") if part)


def answered_by(figures: Mapping[str, Any], elements: Collection[str],
                suffix: str = "_before") -> bool:
    """Whether the flow's answering pod, node or site before the window (``pod_before`` ...;
    a TCP flow_connected event's are ``pod`` ..., ``suffix`` "") is in ``elements``."""
    return any(figures.get(f"{key}{suffix}") in elements for key in ("pod", "node", "site"))


@dataclass(frozen=True)
class TcpBreak:
    """One TCP flow broken in a window: where it was connected before and after."""

    flow: int
    reason: str
    t_ns: int
    before: Mapping[str, Any]  # the flow_connected event before the break (site, node, pod)
    after: Mapping[str, Any] | None  # the first flow_connected after it, if any

    def on(self, elements: Collection[str]) -> bool:
        return answered_by(self.before, elements, suffix="")

    def cause(self, elements: Collection[str]) -> str:
        if self.on(elements):
            return "target"
        if self.reason in ("reset", "eof"):
            return "moved"
        if self.reason == "timeout":
            return "path loss"
        return "other"

    def to_dict(self, elements: Collection[str], window: EventWindow) -> dict[str, Any]:
        return {"flow": self.flow, "reason": self.reason, "cause": self.cause(elements),
                "at_ms": round((self.t_ns - window.t_ns) / 1e6, 3),
                "node_before": self.before.get("node"),
                "node_after": (self.after or {}).get("node")}


def tcp_breaks(tcp_events: Sequence[Event], window: EventWindow) -> dict[FlowKey, TcpBreak]:
    """Per TCP flow broken in the window: its break (the first in the window), the
    connection it had before and the one it made after."""
    history: dict[FlowKey, list[Event]] = {}
    for event in tcp_events:
        if is_event(event, window.trial, "tcp", ("flow_connected", "flow_broken")):
            key = (str(event.get("client")), str(event.get("service")),
                   str(event.get("family", "ipv4")), event_int(event, "flow"))
            history.setdefault(key, []).append(event)
    found: dict[FlowKey, TcpBreak] = {}
    for key, flow_events in history.items():
        flow_events.sort(key=lambda e: event_int(e, "t_ns"))
        broken = next((e for e in flow_events if e.get("kind") == "flow_broken"
                       and window.t_ns <= event_int(e, "t_ns") < window.end_ns), None)
        if broken is None:
            continue
        t_ns = event_int(broken, "t_ns")
        before = [e for e in flow_events if e.get("kind") == "flow_connected"
                  and event_int(e, "t_ns") < t_ns]
        after = next((e for e in flow_events if e.get("kind") == "flow_connected"
                      and event_int(e, "t_ns") > t_ns), None)
        found[key] = TcpBreak(key[3], str(broken.get("reason")), t_ns,
                              before[-1] if before else {}, after)
    return found


def collateral(window: EventWindow, flows: Sequence[Mapping[str, Any]],
               breaks: Sequence[TcpBreak], target_answers: bool) -> dict[str, Any]:
    """One client row's ``collateral``: how many of its flows were on the failed element, and
    for the others (every flow when the target answers no probe): the flows that lost
    probes, the probes lost, their loss windows, the longest, and the TCP flows broken with
    their causes."""
    elements = target_elements(window.target) if target_answers else frozenset()
    on = [f for f in flows if answered_by(f, elements)]
    others = [f for f in flows if not answered_by(f, elements)]
    hit = [f for f in others if f.get("lost")]
    broken = [b for b in breaks if not b.on(elements)]
    return {"target_answers": target_answers, "flows_on_target": len(on),
            "flows_elsewhere": len(others), "flows_with_loss": len(hit),
            "lost": sum(int(f["lost"]) for f in hit),
            "loss_windows": sum(int(f.get("loss_windows") or 0) for f in hit),
            "longest_ms": max((float(f["outage_ms"]) for f in hit), default=0.0),
            "tcp_broken": len(broken),
            "tcp_flows": [b.to_dict(elements, window) for b in breaks]}


__all__ = ["FlowKey", "TcpBreak", "answered_by", "collateral", "target_elements",
           "tcp_breaks"]
