"""The figures of summary.json: per event of a trial, and aggregated over trials.

Pure functions of the recorded data (events.jsonl as a list of dicts, probes.parquet and
routes.parquet as DataFrames); the terms and their precise definitions are those of
docs/run-format.md (RFC 6412 / RFC 7747). Windows are in ``lab.measure.metrics.windows``,
the probe figures in ``lab.measure.metrics.probes``; this module adds detection, control-plane
convergence, the per-trial assembly and the aggregate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lab.errors import MetricsError
from lab.measure.metrics.instrument import instrument_section
from lab.measure.metrics.probes import (
    DEFAULT_REPLY_TIMEOUT_NS,
    ProbeStreams,
    client_metrics,
    ns_to_ms,
    probe_streams,
)
from lab.measure.metrics.windows import (
    Event,
    EventWindow,
    event_int,
    event_windows,
    is_event,
)

# 2: ``outage_ms`` is the longest loss window; before, it was the rate-derived figure (now
# ``rate_derived_ms``). Summaries without the field are version 1. 3: a window also charges the
# losses in flight at its instant, which version 2 charged to no window.
METRICS_VERSION = 3
DETECTION_KINDS = {("bfd", "bfd_down"), ("bgp", "session_down")}
FIB_ACTIONS = ("add", "del")


def _touches(event: Event, target: str) -> bool:
    """A session event touches a target when its router or peer is the target node or one
    end of the target link (links are written ``a--b``)."""
    nodes = set(target.split("--"))
    return event.get("router") in nodes or event.get("peer") in nodes


def detection(events: Sequence[Event], window: EventWindow, *,
              prefer_target: bool = True) -> tuple[float | None, str | None]:
    """(ms from the fault instant to the first BFD or BGP session down in the window, its
    source "bfd" or "bgp"), or (None, None). With ``prefer_target``, session events touching
    the target win when there are any; otherwise any session counts."""
    downs = [e for e in events
             if e.get("trial") == window.trial
             and (e.get("source"), e.get("kind")) in DETECTION_KINDS
             and window.t_ns <= event_int(e, "t_ns") < window.end_ns]
    if prefer_target:
        touching = [e for e in downs if _touches(e, window.target)]
        downs = touching or downs
    if not downs:
        return None, None
    first = min(downs, key=lambda e: event_int(e, "t_ns"))
    return ns_to_ms(event_int(first, "t_ns") - window.t_ns), str(first.get("source"))


def fib_changes(routes: pd.DataFrame, window: EventWindow,
                prefixes: Collection[str] | None = None) -> pd.DataFrame:
    """The FIB changes (``add``/``del``; ``present`` rows are the initial dump) of service
    prefixes (of these, when given) in the window."""
    in_window = ((routes["trial"] == window.trial) & routes["action"].isin(FIB_ACTIONS)
                 & (routes["t_ns"] >= window.t_ns) & (routes["t_ns"] < window.end_ns))
    if prefixes is not None:
        in_window &= routes["prefix"].isin(list(prefixes))
    return routes.loc[in_window]


def control_plane(routes: pd.DataFrame, window: EventWindow,
                  prefixes: Collection[str] | None = None) -> dict[str, Any]:
    """First and last FIB change of a service prefix in the window, network-wide and per
    router, in ms from the instant."""
    rows = fib_changes(routes, window, prefixes)[["router", "t_ns"]]
    if rows.empty:
        return {"first_fib_change_ms": None, "last_fib_change_ms": None, "routers": {}}
    bounds = rows.groupby("router", sort=True)["t_ns"].agg(["min", "max"])
    routers = {str(router): {"first_ms": ns_to_ms(int(row["min"]) - window.t_ns),
                             "last_ms": ns_to_ms(int(row["max"]) - window.t_ns)}
               for router, row in bounds.iterrows()}
    return {"first_fib_change_ms": ns_to_ms(int(rows["t_ns"].min()) - window.t_ns),
            "last_fib_change_ms": ns_to_ms(int(rows["t_ns"].max()) - window.t_ns),
            "routers": routers}


def trial_end_ns(events: Sequence[Event], probes: pd.DataFrame, trial: int) -> int:
    """The runner's ``trial_end`` instant; for an interrupted trial without one, just after
    its last probe or event."""
    for event in events:
        if is_event(event, trial, "runner", ("trial_end",)):
            return event_int(event, "t_ns")
    sent = probes.loc[probes["trial"] == trial, "send_ns"]
    instants = [event_int(e, "t_ns") for e in events if e.get("trial") == trial]
    if not sent.empty:
        instants.append(int(sent.max()))
    if not instants:
        raise MetricsError(f"trial {trial} has neither events nor probes")
    return max(instants) + 1


@dataclass(frozen=True)
class _Trial:
    """What every window of one trial is measured against."""

    events: Sequence[Event]
    streams: ProbeStreams
    routes: pd.DataFrame
    tcp: list[Event]
    interval_ms: float
    reply_timeout_ns: int
    prefixes: Collection[str] | None = field(default=None)

    def clients(self, window: EventWindow) -> list[dict[str, Any]]:
        return client_metrics(self.streams, window, self.interval_ms, tcp_events=self.tcp,
                              reply_timeout_ns=self.reply_timeout_ns)


def _event_summary(window: EventWindow, data: _Trial) -> dict[str, Any]:
    detection_ms, source = detection(data.events, window)
    undo = window.reversion
    reversion: dict[str, Any] | None = None
    if undo is not None and not undo.at_trial_end:
        reversion = {"t_ns": undo.t_ns,
                     "control_plane": control_plane(data.routes, undo, data.prefixes),
                     "clients": data.clients(undo)}
    return {
        "step": window.step, "fault": window.fault, "target": window.target,
        "t_ns": window.t_ns, "undo_t_ns": undo.t_ns if undo is not None else None,
        "detection_ms": detection_ms, "detection_source": source,
        "control_plane": control_plane(data.routes, window, data.prefixes),
        "clients": data.clients(window), "reversion": reversion,
    }


def summarize_trial(trial: int, events: Sequence[Event], probes: pd.DataFrame,
                    routes: pd.DataFrame, *, interval_ms: float, end_ns: int | None = None,
                    complete: bool | None = None,
                    reply_timeout_ns: int = DEFAULT_REPLY_TIMEOUT_NS,
                    prefixes: Collection[str] | None = None) -> dict[str, Any]:
    """One element of summary.json's ``trials``. ``events``, ``probes`` and ``routes`` may
    hold every trial of the run; ``end_ns`` defaults to ``trial_end_ns`` and ``complete`` to
    whether the runner recorded the trial's end."""
    own = [e for e in events if e.get("trial") == trial]
    recorded_end = any(is_event(e, trial, "runner", ("trial_end",)) for e in own)
    end = end_ns if end_ns is not None else trial_end_ns(own, probes, trial)
    data = _Trial(events=own, streams=probe_streams(probes, trial),
                  routes=routes.loc[routes["trial"] == trial],
                  tcp=[e for e in own if is_event(e, trial, "tcp", ("flow_connected",
                                                                    "flow_broken"))],
                  interval_ms=interval_ms, reply_timeout_ns=reply_timeout_ns,
                  prefixes=prefixes)
    return {"trial": trial, "complete": recorded_end if complete is None else complete,
            "events": [_event_summary(w, data) for w in event_windows(own, trial, end)],
            "instrument": instrument_section(own, trial, probes)}


def summarize_run(*, scenario: str, complete: bool, probes: pd.DataFrame, routes: pd.DataFrame,
                  events: Sequence[Event], interval_ms: float,
                  trial_bounds: Sequence[tuple[int, int, int]],
                  reply_timeout_ns: int = DEFAULT_REPLY_TIMEOUT_NS) -> dict[str, Any]:
    """The whole summary.json. ``trial_bounds`` holds (trial, start_ns, end_ns) per trial run;
    the trials run one after another, so when the run is incomplete its last trial is the
    interrupted one and is marked incomplete (and left out of the aggregate)."""
    trials = [summarize_trial(trial, events, probes, routes, interval_ms=interval_ms,
                              end_ns=end, complete=complete or index < len(trial_bounds) - 1,
                              reply_timeout_ns=reply_timeout_ns)
              for index, (trial, _start, end) in enumerate(trial_bounds)]
    return {"scenario": scenario, "complete": complete, "interval_ms": interval_ms,
            "metrics_version": METRICS_VERSION, "trials": trials, "aggregate": aggregate(trials)}


def describe(values: Sequence[float]) -> dict[str, float] | None:
    """median, p95, iqr (p75 - p25), min, max (linear interpolation); None without values."""
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    p25, p50, p75, p95 = (float(q) for q in np.percentile(array, [25, 50, 75, 95]))
    return {"median": round(p50, 6), "p95": round(p95, 6), "iqr": round(p75 - p25, 6),
            "min": round(float(array.min()), 6), "max": round(float(array.max()), 6)}


AggregateKey = tuple[int, str, str, str, str]  # step, fault, client, service, family
_PER_CLIENT = ("outage_ms", "rate_derived_ms", "loss_derived_ms", "loss_windows", "loss_ratio",
               "tcp_broken")
_SAMPLED = (*_PER_CLIENT, "detection_ms", "reversion_outage_ms")


def _samples(trials: Sequence[Mapping[str, Any]],
             include_incomplete: bool) -> dict[AggregateKey, dict[str, list[Any]]]:
    samples: dict[AggregateKey, dict[str, list[Any]]] = {}
    for trial in trials:
        if trial.get("complete") is False and not include_incomplete:
            continue
        for event in trial["events"]:
            undone = {client_key(c): c["outage_ms"]
                      for c in (event.get("reversion") or {}).get("clients", [])}
            for entry in event["clients"]:
                pair = client_key(entry)
                key = (event["step"], event["fault"], *pair)
                lists = samples.setdefault(key, {name: [] for name in
                                                 (*_SAMPLED, "recovered")})
                for name in (*_PER_CLIENT, "recovered"):
                    lists[name].append(entry.get(name))
                lists["detection_ms"].append(event.get("detection_ms"))
                lists["reversion_outage_ms"].append(undone.get(pair))
    return samples


def client_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    """(client, service, family) of a client row; rows written before families were
    recorded are IPv4's."""
    return str(entry["client"]), str(entry["service"]), str(entry.get("family", "ipv4"))


def aggregate(trials: Sequence[Mapping[str, Any]], *,
              include_incomplete: bool = False) -> list[dict[str, Any]]:
    """summary.json's ``aggregate``: one row per (step, fault, client, service, family) over
    the trials (incomplete trials are left out unless asked). ``n`` counts the measured events
    (a link-flap step has several per trial); each figure's statistics skip nulls, and
    ``n_detected`` and ``unrecovered`` count the events with a detection and those whose
    outage did not end within its window (its outage_ms is then a lower bound)."""
    rows: list[dict[str, Any]] = []
    for (step, fault, client, service, family), lists in sorted(
            _samples(trials, include_incomplete).items()):
        row: dict[str, Any] = {"step": step, "fault": fault, "client": client,
                               "service": service, "family": family,
                               "n": len(lists["outage_ms"]),
                               "n_detected": sum(v is not None for v in lists["detection_ms"]),
                               "unrecovered": sum(v is False for v in lists["recovered"])}
        for name in _SAMPLED:
            row[name] = describe([float(v) for v in lists[name] if v is not None])
        rows.append(row)
    return rows


__all__ = ["DEFAULT_REPLY_TIMEOUT_NS", "METRICS_VERSION", "EventWindow", "ProbeStreams",
           "aggregate",
           "client_key", "client_metrics", "control_plane", "describe", "detection",
           "event_windows", "fib_changes", "probe_streams", "summarize_run", "summarize_trial",
           "trial_end_ns"]
