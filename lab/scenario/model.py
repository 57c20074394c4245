"""The scenario file as typed data: probe settings and a timeline of faults.

Shape and ranges here (pydantic, ``extra="forbid"``); targets are checked against the lab's
plan in ``lab.scenario.load``, which also turns the steps into a schedule of instants.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lab.measure.metrics.budgets import FIGURES, parse_condition
from lab.topology.fields import DurationMs
from lab.topology.model import BgpSettings, Name, Percent, PodCount, RateBps, StrictModel

FaultName = Literal[
    "link-down", "link-blackhole", "link-impair", "link-flap",
    "node-crash", "node-stop", "daemon-kill", "daemon-restart",
    "bgp-session-shutdown", "pod-kill", "pod-unready", "service-withdraw",
    "site-isolate", "site-drain", "wan-latency", "transit-partition", "uplink-shutdown",
    "node-drain", "speaker-restart", "node-power-off", "rolling-update",
]

# Faults that can act on one address family (`family:`) of a dual-stack lab.
FAMILY_FAULTS = frozenset({"bgp-session-shutdown", "site-drain", "uplink-shutdown"})

# What each fault's `target` names.
TARGET_KINDS: dict[str, str] = {
    "link-down": "link", "link-blackhole": "link", "link-impair": "link", "link-flap": "link",
    "node-crash": "node", "node-stop": "node", "daemon-kill": "node", "daemon-restart": "node",
    "bgp-session-shutdown": "link", "pod-kill": "pod", "pod-unready": "pod",
    "service-withdraw": "cluster", "site-isolate": "site", "site-drain": "site",
    "wan-latency": "link", "transit-partition": "link", "uplink-shutdown": "site",
    "node-drain": "node", "speaker-restart": "node", "node-power-off": "node",
    "rolling-update": "cluster",
}


class ServingTarget(StrictModel):
    """The node (or pod) currently answering a client's probes for a service."""

    client: Name
    service: Name
    flow: Annotated[int, Field(ge=0, le=63)] = 0


class TargetSelector(StrictModel):
    serving: ServingTarget


class Step(StrictModel):
    """One step: a fault (optionally undone after `duration`), or a pause (`wait`)."""

    fault: FaultName | None = None
    target: str | TargetSelector | None = None
    at: DurationMs | None = None
    duration: DurationMs | None = None
    wait: DurationMs | None = None
    # parameters of some faults
    daemon: Literal["bgpd", "bfdd", "zebra", "gobgpd", "agent"] | None = None
    delay: DurationMs | None = None
    jitter: DurationMs | None = None
    loss: Percent | None = None
    rate: RateBps | None = None
    period: DurationMs | None = None
    count: Annotated[int, Field(ge=1, le=1000)] | None = None
    method: Literal["prepend", "gshut", "withdraw"] | None = None
    prepend: Annotated[int, Field(ge=1, le=10)] | None = None
    # rolling-update: the cluster's rollout strategy, overridden
    max_surge: PodCount | None = None
    max_unavailable: PodCount | None = None
    pre_stop: DurationMs | None = None
    termination_grace: DurationMs | None = None
    family: Literal["ipv4", "ipv6"] | None = None  # FAMILY_FAULTS only; default: every family
    transit: Name | None = None  # uplink-shutdown: the site's uplink to it (default: all)
    note: str = ""

    @model_validator(mode="after")
    def _fault_or_wait(self) -> Step:
        if (self.fault is None) == (self.wait is None):
            raise ValueError("a step is either a `fault:` or a `wait:`")
        if self.fault is not None and self.target is None:
            raise ValueError(f"fault {self.fault!r} needs a `target:`")
        return self


class ProbeSettings(StrictModel):
    interval: DurationMs = 1.0
    services: list[Name] | Literal["all"] = "all"
    clients: list[Name] | Literal["all"] = "all"
    # many flows (source ports, so ECMP hashes) per client and service by default: a failure
    # moves flows that had nothing to do with it (lab.measure.metrics.collateral)
    flows: Annotated[int, Field(ge=1, le=64)] = 16
    # TCP connections per client and service: long-lived flows, or a service's HTTP probes
    tcp_flows: Annotated[int, Field(ge=0, le=64)] = 8
    # each tick probes one flow of each service in turn: the client's probes keep the
    # interval, each flow's come every ``flows`` intervals (false: every flow every tick)
    rotate: bool = True
    # take the lab's own forwarding cost off the emulated delays first (lab.measure.calibrate)
    calibrate: bool = True


Bound = Annotated[str, Field(min_length=1)] | float
Statistic = Literal["median", "p95", "min", "max"]
FigureBound = Bound | dict[Statistic, Bound]


class Expectation(StrictModel):
    """A budget (lab.measure.metrics.budgets): which events and flows, and the bounds their
    figures must keep."""

    step: Annotated[int, Field(ge=0)] | None = None
    fault: FaultName | None = None
    client: Name | None = None
    service: Name | None = None
    family: Literal["ipv4", "ipv6"] | None = None
    outage_ms: FigureBound | None = None
    rate_derived_ms: FigureBound | None = None
    lost_ms: FigureBound | None = None
    loss_windows: FigureBound | None = None
    loss_ratio: FigureBound | None = None
    detection_ms: FigureBound | None = None
    tcp_broken: FigureBound | None = None
    rtt_after_ms: FigureBound | None = None
    site_after: Name | list[Name] | None = None
    stays: bool | None = None
    note: str = ""

    @model_validator(mode="after")
    def _bounds_are_conditions(self) -> Expectation:
        bounds = [getattr(self, f) for f in FIGURES]
        if all(b is None for b in bounds) and self.site_after is None and not self.stays:
            raise ValueError("an expectation bounds at least one figure (" + ", ".join(FIGURES)
                             + ") or a site (site_after, stays)")
        for bound in bounds:
            for condition in (bound.values() if isinstance(bound, dict) else [bound]):
                if condition is not None:
                    parse_condition(condition)
        return self

    def as_dict(self) -> dict[str, object]:
        """As the budget evaluator takes it (what was written, without the unset keys)."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class Scenario(StrictModel):
    name: Name
    description: str = ""
    topology: str = "topologies/three-sites.yaml"
    bgp: BgpSettings | None = None
    probe: ProbeSettings = ProbeSettings()
    settle: DurationMs = 3000.0
    tail: DurationMs = 5000.0
    repeat: Annotated[int, Field(ge=1, le=1000)] = 1
    recover_timeout: DurationMs = 60000.0
    steps: Annotated[list[Step], Field(min_length=1)]
    expect: list[Expectation] = []


SCENARIO_FIELD_HINTS = {
    "fault": "one of: " + ", ".join(TARGET_KINDS),
    "daemon": "bgpd, bfdd, zebra, gobgpd or agent",
    "method": "'prepend' (AS-path prepend) or 'gshut' (RFC 8326 community); node-drain also "
              "'withdraw' (default: the cluster's drain policy)",
    "family": "'ipv4' or 'ipv6': the one address family the fault acts on (default: both)",
    "transit": "the transit whose uplink (from each border router of the site) is shut",
    "max_surge": "a number of pods (1) or a share of the replicas ('25%')",
    "max_unavailable": "a number of pods (0) or a share of the replicas ('25%')",
    "repeat": "1-1000 trials",
    "flows": "UDP flows (source ports) per client and service, 1-64 (default 16, probed in "
             "turn: `rotate`)",
    "rotate": "true (each tick probes one flow of each service, in turn) or false (every "
              "flow every tick)",
    "expect": "e.g. `- {fault: node-crash, outage_ms: {p95: \"<= 1500\"}, tcp_broken: 0}`",
    "outage_ms": "a condition (\"<= 1500\", \"== 0\") or {median|p95|min|max: condition}",
    "rate_derived_ms": "a condition (\"<= 1500\") or {median|p95|min|max: condition}",
    "lost_ms": "a condition (\"<= 1500\", \"== 0\") or {median|p95|min|max: condition}",
    "loss_windows": "a condition (\"<= 1\": the loss came in one stretch) or "
                    "{median|p95|min|max: condition}",
    "loss_ratio": "a condition on lost / probes (\"<= 0.001\") or "
                  "{median|p95|min|max: condition}",
    "detection_ms": "a condition (\"<= 1000\") or {median|p95|min|max: condition}",
    "tcp_broken": "a condition (0, \"<= 1\") or {median|p95|min|max: condition}",
    "rtt_after_ms": "a condition (\"<= 30\") or {median|p95|min|max: condition}",
}
__all__ = ["TARGET_KINDS", "Expectation", "FaultName", "Scenario", "Step", "TargetSelector"]
