"""The scenario file as typed data: probe settings and a timeline of faults.

Shape and ranges here (pydantic, ``extra="forbid"``); targets are checked against the lab's
plan in ``lab.scenario.load``, which also turns the steps into a schedule of instants.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lab.topology.model import BgpSettings, DurationMs, Name, Percent, RateBps, StrictModel

FaultName = Literal[
    "link-down", "link-blackhole", "link-impair", "link-flap",
    "node-crash", "node-stop", "daemon-kill", "daemon-restart",
    "bgp-session-shutdown", "pod-kill", "pod-unready", "service-withdraw",
    "site-isolate", "site-drain", "wan-latency", "transit-partition",
]

# What each fault's `target` names.
TARGET_KINDS: dict[str, str] = {
    "link-down": "link", "link-blackhole": "link", "link-impair": "link", "link-flap": "link",
    "node-crash": "node", "node-stop": "node", "daemon-kill": "node", "daemon-restart": "node",
    "bgp-session-shutdown": "link", "pod-kill": "pod", "pod-unready": "pod",
    "service-withdraw": "cluster", "site-isolate": "site", "site-drain": "site",
    "wan-latency": "link", "transit-partition": "link",
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
    method: Literal["prepend", "gshut"] | None = None
    prepend: Annotated[int, Field(ge=1, le=10)] | None = None
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
    flows: Annotated[int, Field(ge=1, le=64)] = 1
    tcp_flows: Annotated[int, Field(ge=0, le=64)] = 1


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


SCENARIO_FIELD_HINTS = {
    "fault": "one of: " + ", ".join(TARGET_KINDS),
    "daemon": "bgpd, bfdd, zebra, gobgpd or agent",
    "method": "'prepend' (AS-path prepend towards the WAN) or 'gshut' (RFC 8326 community)",
    "repeat": "1-1000 trials",
    "flows": "UDP flows (source ports) per client and service, 1-64",
}
__all__ = ["TARGET_KINDS", "FaultName", "Scenario", "Step", "TargetSelector"]
