"""Convergence figures per event, client, service and family, for tables, plots and reports.

Every figure is computed by ``lab.measure.metrics`` (the code that writes summary.json), on
the windows of ``analysis.actions``, so a table here and summary.json give the same value for
the same run; this module only arranges them in DataFrames. The definitions (docs/run-format.md,
RFC 6412 / RFC 7747 terms):

- **outage** (``outage_ms``): the longest loss window of the flow, a run of consecutive
  charged lost probes from the first one's send instant to the next answered probe's (the
  window's end, with ``recovered`` False, when nothing was answered after it); 0 when nothing
  was lost. ``loss_windows`` counts the runs, ``loss_ratio`` is lost / judged probes;
  **loss-derived outage**: charged lost probes x probe interval; **rate-derived outage**
  (``rate_derived_ms``): send instant of the first answered probe after the last charged loss
  of the window, minus the action instant (the window's length when nothing was answered
  after the last loss). Sporadic loss is a high ratio and many one-probe windows, a short
  outage and a long rate-derived figure. Not charged: probes
  sent in the last reply timeout (2 s) before the flow's probes end, and a trailing run of
  losses that began less than one round trip before the next action (that action's);
- **site (node) before/after**: the answering site (node) seen most often in the second
  before the action and in the last second of its window, ties to the one seen last;
  **flip**: the send instant of the first probe answered by another site;
- **RTT before/after**: median RTT over the same two seconds;
- **detection**: the first BFD or BGP session down in the window among sessions touching
  the target (else any session);
- **TCP flows broken**: ``flow_broken`` events of the client's TCP flows to the service in
  the window (``tcp_flows`` says how many flows it runs);
- **collateral** (``lab.measure.metrics.collateral``): ``on_target`` flows were answered by
  the failed element before the action (null when the target answers no probe); of the
  others, ``collateral_flows_hit`` lost probes (``collateral_lost`` in all, the longest loss
  window ``collateral_longest_ms``) and ``collateral_tcp_broken`` TCP flows broke.

A client sends one probe stream per flow (source port) and family, each hashed on its own
path. Per flow every figure is exact; per client, service and family (a dual-stack service's
IPv4 and IPv6 VIPs are measured apart) the figures are those of the worst flow
(largest outage, then most lost), ``lost_total`` sums the flows and ``flows_hit`` counts the
flows that lost anything. Every figure has the resolution of the probe interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd

from analysis.actions import FaultEvent
from analysis.run import NS_PER_MS, NS_PER_S, Run
from lab.measure.metrics.instrument import instrument_section
from lab.measure.metrics.probes import ProbeStreams, client_metrics, flow_figures, probe_streams
from lab.measure.metrics.summary import control_plane
from lab.measure.metrics.summary import detection as first_detection
from lab.measure.metrics.summary import fib_changes as fib_changes_in

CLIENT_KEYS = ["client", "service", "family"]
FLOW_COLUMNS = ["client", "service", "family", "flow", "probes", "lost", "loss_derived_ms",
                "outage_ms", "rate_derived_ms", "loss_windows", "loss_ratio", "recovered",
                "site_before", "site_after", "flip_ns", "rtt_before_ms", "rtt_after_ms",
                "node_before", "node_after", "pod_before", "pod_after", "first_loss_ns",
                "last_loss_ns"]
# every frame of a client table has these dtypes, so that tables concatenate cleanly
CLIENT_DTYPES = {"client": "object", "service": "object", "family": "object",
                 "flows": "int64", "flows_hit": "int64",
                 "lost": "int64", "lost_total": "int64", "loss_derived_ms": "float64",
                 "outage_ms": "float64", "rate_derived_ms": "float64",
                 "loss_windows": "int64", "loss_ratio": "float64", "resolution_ms": "float64",
                 "recovered": "object",
                 "site_before": "object",
                 "site_after": "object", "flip_ns": "Int64", "rtt_before_ms": "float64",
                 "rtt_after_ms": "float64", "tcp_broken": "int64",
                 "on_target": "Int64", "collateral_flows_hit": "int64",
                 "collateral_lost": "int64", "collateral_longest_ms": "float64",
                 "collateral_tcp_broken": "int64"}
# lab.measure.metrics.collateral's figures, as client-table columns
COLLATERAL_COLUMNS = {"collateral_flows_hit": "flows_with_loss", "collateral_lost": "lost",
                      "collateral_longest_ms": "longest_ms",
                      "collateral_tcp_broken": "tcp_broken"}
_STREAMS: WeakKeyDictionary[Run, dict[int, ProbeStreams]] = WeakKeyDictionary()


def _streams(run: Run, trial: int) -> ProbeStreams:
    """The probes of one trial as per-flow streams, split once per run and trial."""
    cached = _STREAMS.setdefault(run, {})
    if trial not in cached:
        cached[trial] = probe_streams(run.probes, trial)
    return cached[trial]


def _trial_records(run: Run, trial: int) -> list[Mapping[str, Any]]:
    return [e for e in run.records if e.get("trial") == trial]


def flow_table(run: Run, action: FaultEvent) -> pd.DataFrame:
    """One row per client, service, family and flow for one action's window."""
    streams = _streams(run, action.trial)
    rows = [{"client": f.client, "service": f.service, "family": f.family,
             **flow_figures(f, streams.sites, action.window, run.interval_ms,
                            nodes=streams.nodes, pods=streams.pods)} for f in streams.flows]
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)


_ENTRY_FIGURES = ("loss_derived_ms", "outage_ms", "rate_derived_ms", "loss_windows",
                  "loss_ratio", "resolution_ms", "recovered", "site_before", "site_after",
                  "flip_ns", "rtt_before_ms", "rtt_after_ms", "tcp_broken")


def _client_probe_rows(run: Run, action: FaultEvent) -> pd.DataFrame:
    entries = client_metrics(_streams(run, action.trial), action.window, run.interval_ms,
                             tcp_events=_trial_records(run, action.trial))
    rows = []
    for entry in entries:
        flows = entry.get("flows") or ([entry] if entry.get("probes") else [])
        collateral = entry["collateral"]
        rows.append({
            "client": entry["client"], "service": entry["service"],
            "family": entry["family"], "flows": len(flows),
            "flows_hit": sum(f["lost"] > 0 for f in flows), "lost": entry["lost"],
            "lost_total": sum(f["lost"] for f in flows),
            **{key: entry[key] for key in _ENTRY_FIGURES},
            "on_target": collateral["flows_on_target"] if collateral["target_answers"]
            else None,
            **{column: collateral[key] for column, key in COLLATERAL_COLUMNS.items()}})
    frame = pd.DataFrame(rows, columns=[*CLIENT_KEYS, "flows", "flows_hit", "lost", "lost_total",
                                        *_ENTRY_FIGURES, "on_target", *COLLATERAL_COLUMNS])
    return frame.astype(CLIENT_DTYPES)


def _tcp_lanes(run: Run, trial: int | None = None) -> pd.DataFrame:
    """The client/service/families with TCP flows, and how many flows each (in a trial, or in
    any)."""
    ev = run.events
    if not {"client", "service", "flow"} <= set(ev.columns):
        return pd.DataFrame({"client": [], "service": [], "family": [], "tcp_flows": []})
    tcp = ev[(ev["source"] == "tcp") & ((ev["trial"] == trial) if trial is not None else True)]
    tcp = tcp.assign(family=tcp["family"].fillna("ipv4") if "family" in tcp else "ipv4")
    counts = tcp.dropna(subset=CLIENT_KEYS).groupby(CLIENT_KEYS)["flow"].nunique()
    return counts.rename("tcp_flows").reset_index()


_CACHE: WeakKeyDictionary[Run, dict[FaultEvent, pd.DataFrame]] = WeakKeyDictionary()


def action_client_table(run: Run, action: FaultEvent) -> pd.DataFrame:
    """One row per client, service and family for one action (probe figures and TCP flows).
    Computed once per run and action (runs are immutable); callers get a copy."""
    cached = _CACHE.setdefault(run, {})
    if action not in cached:
        cached[action] = _action_client_table(run, action)
    return cached[action].copy()


def _action_client_table(run: Run, action: FaultEvent) -> pd.DataFrame:
    rows = _client_probe_rows(run, action)
    flows = _tcp_lanes(run, action.trial).set_index(CLIENT_KEYS)["tcp_flows"]
    rows["tcp_flows"] = [int(flows.get((c, s, f), 0)) for c, s, f in
                         zip(rows["client"], rows["service"], rows["family"], strict=True)]
    rows["flip_ms"] = (rows["flip_ns"] - action.t_ns) / NS_PER_MS if len(rows) else []
    rows.insert(0, "target", action.target)
    rows.insert(0, "fault", action.fault)
    rows.insert(0, "phase", action.kind)
    rows.insert(0, "step", action.step)
    rows.insert(0, "trial", action.trial)
    rows.insert(0, "run", run.label)
    return _order_clients(run, rows)


def _order_clients(run: Run, rows: pd.DataFrame) -> pd.DataFrame:
    client_order = {c: i for i, c in enumerate(run.clients)}
    service_order = {s: i for i, s in enumerate(run.services)}
    key = [(client_order.get(c, len(client_order)) * 1000 + service_order.get(s, 999)) * 2
           + (f == "ipv6") for c, s, f in
           zip(rows["client"], rows["service"], rows["family"], strict=True)]
    return rows.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


CLIENT_COLUMNS = ["run", "trial", "step", "phase", "fault", "target", "client", "service",
                  "family", "flows", "flows_hit", "lost", "lost_total", "loss_derived_ms",
                  "outage_ms", "rate_derived_ms", "loss_windows", "loss_ratio", "recovered",
                  "resolution_ms", "site_before", "site_after", "flip_ns", "flip_ms",
                  "rtt_before_ms", "rtt_after_ms", "tcp_flows", "tcp_broken", "on_target",
                  *COLLATERAL_COLUMNS]


def client_table(run: Run, *, phases: Sequence[str] = ("fault", "undo"),
                 trial: int | None = None) -> pd.DataFrame:
    """Per action (fault and/or undo), client, service and family: outages, sites, flip, RTT
    and TCP flows broken, for every trial (or one)."""
    frames = [action_client_table(run, a) for a in run.actions
              if a.kind in phases and (trial is None or a.trial == trial)]
    if not frames:
        return pd.DataFrame(columns=CLIENT_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    return table.reindex(columns=CLIENT_COLUMNS)


def detection(run: Run, action: FaultEvent) -> tuple[float | None, str | None]:
    """The first BFD or BGP session down in the window (sessions touching the target first),
    in ms after the action, and its source."""
    return first_detection(_trial_records(run, action.trial), action.window)


def fib_changes(run: Run, action: FaultEvent) -> pd.DataFrame:
    """The FIB changes (add/del) of the service prefixes in an action's window."""
    return fib_changes_in(run.routes, action.window)


def event_table(run: Run) -> pd.DataFrame:
    """One row per injector action of every trial: when, detection, control-plane
    convergence (first and last FIB change), and the worst data-plane figures."""
    rows = []
    for action in run.actions:
        detect_ms, source = detection(run, action)
        plane = control_plane(run.routes, action.window)
        clients = action_client_table(run, action)
        rows.append({
            "run": run.label, "trial": action.trial, "step": action.step, "phase": action.kind,
            "fault": action.fault, "target": action.target,
            "t_s": (action.t_ns - run.origin_ns(action.trial)) / NS_PER_S,
            "window_s": (action.end_ns - action.t_ns) / NS_PER_S,
            "detection_ms": detect_ms, "detection_source": source,
            "first_fib_ms": plane["first_fib_change_ms"],
            "last_fib_ms": plane["last_fib_change_ms"],
            "routers_changed": len(plane["routers"]),
            "clients_hit": int((clients["lost"].fillna(0) > 0).sum()),
            "worst_outage_ms": float(clients["outage_ms"].max()) if clients["outage_ms"].notna(
            ).any() else None,
            "tcp_broken": int(clients["tcp_broken"].sum())})
    return pd.DataFrame(rows)


def instrument_table(run: Run) -> pd.DataFrame:
    """One row per trial: how well the lab's own parts kept time (summary.json's
    ``instrument``, computed by ``lab.measure.metrics.instrument``); empty for runs recorded
    without it."""
    rows = []
    for trial in run.trials:
        section = instrument_section(run.records, trial, run.probes)
        if section is None:
            continue
        host = section["host"] or {}
        emulator = section["emulator"] or {}
        probers = section["probers"] or {}
        delay = section["delay"] or {}
        rows.append({
            "trial": trial, "cpu_busy": host.get("cpu_busy"),
            "cpu_steal": host.get("cpu_steal"), "cpu_pressure": host.get("cpu_pressure"),
            "backlog_drops": host.get("backlog_drops"),
            "frames": emulator.get("forwarded"), "late_500us": emulator.get("late_500us"),
            "late_2ms": emulator.get("late_2ms"), "late_10ms": emulator.get("late_10ms"),
            "overruns": emulator.get("dropped_overrun"), "ticks": probers.get("ticks"),
            "late_ticks": probers.get("late_500us"),
            "skipped_slots": probers.get("skipped_slots"),
            "longest_stall_ms": probers.get("longest_stall_ms"),
            "client_drops": sum(section["client_rcvbuf_errors"].values()),
            "pod_drops": sum(section["pod_rcvbuf_errors"].values()),
            "early_flaps": len(section.get("sessions_down_before_fault") or []),
            "delay_error_ms": delay.get("median_error_ms"),
            "delay_max_error_ms": delay.get("max_abs_error_ms"),
            "problems": "; ".join(section["problems"]) or "none"})
    return pd.DataFrame(rows, columns=INSTRUMENT_COLUMNS)


INSTRUMENT_COLUMNS = ["trial", "cpu_busy", "cpu_steal", "cpu_pressure", "backlog_drops",
                      "frames", "late_500us",
                      "late_2ms", "late_10ms", "overruns", "ticks", "late_ticks",
                      "skipped_slots", "longest_stall_ms", "client_drops", "pod_drops",
                      "early_flaps", "delay_error_ms", "delay_max_error_ms", "problems"]


def _stats(values: pd.Series) -> pd.Series:
    q1, q3 = values.quantile(0.25), values.quantile(0.75)
    return pd.Series({"n": int(values.count()), "median": values.median(),
                      "p95": values.quantile(0.95), "iqr": q3 - q1, "min": values.min(),
                      "max": values.max()})


def labelled_client_table(runs: Sequence[Run], *, phase: str = "fault",
                          labels: Sequence[str] | None = None) -> pd.DataFrame:
    """The client tables of several runs for one kind of action, ``run`` set to each run's
    label (``labels``, or :func:`run_labels`)."""
    names = list(labels) if labels is not None else run_labels(runs)
    if len(names) != len(runs):
        raise ValueError(f"{len(names)} labels for {len(runs)} runs")
    frames = []
    for run, name in zip(runs, names, strict=True):
        table = client_table(run, phases=(phase,))
        table["run"] = name
        frames.append(table)
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=CLIENT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def aggregate_table(runs: Run | Sequence[Run], *, metric: str = "outage_ms",
                    phase: str = "fault", labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Over trials: n, median, p95, IQR, min and max of a per-client figure, per run (label),
    step, fault, client, service and family."""
    run_list = [runs] if isinstance(runs, Run) else list(runs)
    data = labelled_client_table(run_list, phase=phase, labels=labels)
    data = data[data[metric].notna()]
    keys = ["run", "step", "fault", "client", "service", "family"]
    if data.empty:
        return pd.DataFrame(columns=[*keys, "n", "median", "p95", "iqr", "min", "max"])
    values = data[metric].astype(float).groupby([data[k] for k in keys], sort=False)
    out = values.apply(_stats).unstack().reset_index()
    out["n"] = out["n"].astype(int)
    out.columns.name = None
    return out


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Legend labels: scenario names, made unique with the run id where they repeat."""
    labels = [r.label for r in runs]
    return [f"{label} ({r.run_id})" if labels.count(label) > 1 else label
            for label, r in zip(labels, runs, strict=True)]


__all__ = ["CLIENT_COLUMNS", "INSTRUMENT_COLUMNS", "action_client_table", "aggregate_table",
           "client_table", "detection", "event_table", "fib_changes", "flow_table",
           "instrument_table", "labelled_client_table", "run_labels"]
