"""Convergence figures per event, client and service, computed from a run's raw files.

Definitions are docs/run-format.md's (RFC 6412 / RFC 7747 terms), measured in each action's
window ``[t_ns, end_ns)`` (see :mod:`analysis.actions`):

- **loss-derived outage**: lost probes x probe interval;
- **rate-derived outage** (``outage_ms``): send instant of the first answered probe after the
  last lost probe of the window, minus the action instant (0 when nothing was lost; the window
  end, with ``recovered`` False, when nothing was answered after the last loss);
- **site before/after**: the answering site most often seen in the second before the action
  and in the second before the window ends; **flip**: the send instant of the first probe
  answered by another site than the site before;
- **RTT before/after**: median RTT over the same two seconds;
- **TCP flows broken**: ``flow_broken`` events of the client's TCP flows to the service in the
  window (``tcp_flows`` says how many flows it runs; 0: none, nothing could break).

A client sends one probe stream per flow (source port), and each flow is hashed on its own
path. Per flow every figure is exact; per client and service the outage figures are those of
the worst flow (``lost`` is that flow's count, ``lost_total`` the sum over flows) and
``flows_hit`` says how many flows lost anything. Every figure has the resolution of the probe
interval (``resolution_ms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd

from analysis.actions import FaultEvent
from analysis.run import NS_PER_MS, NS_PER_S, Run

FLOW_KEYS = ["client", "service", "flow"]
CLIENT_KEYS = ["client", "service"]
STEADY_S = 1.0  # the "second before" of site and RTT before/after


def _mode(frame: pd.DataFrame, keys: list[str], column: str = "site") -> pd.Series:
    """The most frequent value of ``column`` among answered probes, per key (ties: the
    first in category order)."""
    answered = frame[~frame["lost"]]
    if answered.empty:
        return pd.Series(dtype="object", name=column)
    counts = answered.groupby([*keys, column], observed=True).size().rename("n").reset_index()
    counts = counts.sort_values([*keys, "n"], ascending=[True] * len(keys) + [False],
                                kind="stable")
    return counts.drop_duplicates(keys).set_index(keys)[column].astype("object")


@dataclass(frozen=True)
class Window:
    """The probes an action is measured on: the second before it, its window, and the last
    second of its window."""

    before: pd.DataFrame
    inside: pd.DataFrame
    tail: pd.DataFrame

    @classmethod
    def of(cls, run: Run, action: FaultEvent) -> Window:
        steady = round(STEADY_S * NS_PER_S)
        probes = run.trial_probes(action.trial, action.t_ns - steady, action.end_ns)
        inside = probes[probes["send_ns"] >= action.t_ns]
        return cls(before=probes[probes["send_ns"] < action.t_ns], inside=inside,
                   tail=inside[inside["send_ns"] >= action.end_ns - steady])


def _outage(inside: pd.DataFrame, keys: list[str], t_ns: int, end_ns: int) -> pd.DataFrame:
    """Per key: lost probes, rate-derived outage (ms) and whether it recovered."""
    grouped = inside.groupby(keys, observed=True)
    out = pd.DataFrame({"sent": grouped.size(), "lost": grouped["lost"].sum().astype("int64")})
    last_lost = inside[inside["lost"]].groupby(keys, observed=True)["send_ns"].max()
    answered = inside.loc[~inside["lost"], [*keys, "send_ns"]]
    answered = answered.join(last_lost.rename("last_lost"), on=keys)
    after = answered[answered["send_ns"] > answered["last_lost"]]
    recovered_ns = after.groupby(keys, observed=True)["send_ns"].min()
    out = out.join(last_lost.rename("last_lost_ns")).join(recovered_ns.rename("recovered_ns"))
    out["recovered"] = (out["lost"] == 0) | out["recovered_ns"].notna()
    until = out["recovered_ns"].fillna(end_ns)
    out["outage_ms"] = np.where(out["lost"] > 0, (until - t_ns) / NS_PER_MS, 0.0)
    return out


def _steady(window: Window, keys: list[str], out: pd.DataFrame) -> pd.DataFrame:
    out["site_before"] = _mode(window.before, keys)
    out["site_after"] = _mode(window.tail, keys)
    out["rtt_before_ms"] = window.before.groupby(keys, observed=True)["rtt_ms"].median()
    out["rtt_after_ms"] = window.tail.groupby(keys, observed=True)["rtt_ms"].median()
    return out


def flow_table(run: Run, action: FaultEvent, window: Window | None = None) -> pd.DataFrame:
    """One row per client, service and flow for one action's window."""
    window = window or Window.of(run, action)
    out = _outage(window.inside, FLOW_KEYS, action.t_ns, action.end_ns)
    out["loss_derived_ms"] = out["lost"] * run.interval_ms
    out = _steady(window, FLOW_KEYS, out)
    out["node_before"] = _mode(window.before, FLOW_KEYS, "node")
    out["node_after"] = _mode(window.tail, FLOW_KEYS, "node")
    return out.reset_index()


def _client_probe_rows(run: Run, action: FaultEvent) -> pd.DataFrame:
    window = Window.of(run, action)
    flows = _outage(window.inside, FLOW_KEYS, action.t_ns, action.end_ns)
    flows["loss_derived_ms"] = flows["lost"] * run.interval_ms
    flows = flows.reset_index()
    if flows.empty:
        return pd.DataFrame(columns=CLIENT_KEYS)
    worst = flows.sort_values(["outage_ms", "lost"], ascending=False, kind="stable")
    worst = worst.drop_duplicates(CLIENT_KEYS).set_index(CLIENT_KEYS)
    grouped = flows.groupby(CLIENT_KEYS, observed=True)
    out = pd.DataFrame({
        "flows": grouped.size(), "flows_hit": grouped["lost"].agg(lambda s: int((s > 0).sum())),
        "lost": worst["lost"], "lost_total": grouped["lost"].sum(),
        "loss_derived_ms": worst["loss_derived_ms"], "outage_ms": worst["outage_ms"],
        "recovered": grouped["recovered"].all()})
    out = _steady(window, CLIENT_KEYS, out)
    out["flip_ns"] = _flip(window.inside, out["site_before"])
    return out.reset_index()


def _flip(inside: pd.DataFrame, site_before: pd.Series) -> pd.Series:
    answered = inside.loc[~inside["lost"], [*CLIENT_KEYS, "send_ns", "site"]]
    if answered.empty or site_before.empty:
        return pd.Series(dtype="Int64")
    joined = answered.join(site_before.rename("site_before"), on=CLIENT_KEYS)
    moved = joined[joined["site"].astype("object") != joined["site_before"]]
    return moved.groupby(CLIENT_KEYS, observed=True)["send_ns"].min().astype("Int64")


def _tcp_broken(run: Run, action: FaultEvent) -> pd.Series:
    ev = run.events
    if "client" not in ev.columns or "service" not in ev.columns:
        return pd.Series(dtype="int64")
    broken = ev[(ev["source"] == "tcp") & (ev["kind"] == "flow_broken")
                & (ev["trial"] == action.trial) & (ev["t_ns"] >= action.t_ns)
                & (ev["t_ns"] < action.end_ns)]
    return broken.groupby(CLIENT_KEYS).size()


def _tcp_lanes(run: Run, trial: int | None = None) -> pd.DataFrame:
    """The client/services with TCP flows, and how many flows each (in a trial, or in any)."""
    ev = run.events
    if not {"client", "service", "flow"} <= set(ev.columns):
        return pd.DataFrame({"client": [], "service": [], "tcp_flows": []})
    tcp = ev[(ev["source"] == "tcp") & ((ev["trial"] == trial) if trial is not None else True)]
    counts = tcp.dropna(subset=CLIENT_KEYS).groupby(CLIENT_KEYS)["flow"].nunique()
    return counts.rename("tcp_flows").reset_index()


_CACHE: WeakKeyDictionary[Run, dict[FaultEvent, pd.DataFrame]] = WeakKeyDictionary()


def action_client_table(run: Run, action: FaultEvent) -> pd.DataFrame:
    """One row per client and service for one action (probe figures and TCP flows).
    Computed once per run and action (runs are immutable); callers get a copy."""
    cached = _CACHE.setdefault(run, {})
    if action not in cached:
        cached[action] = _action_client_table(run, action)
    return cached[action].copy()


def _action_client_table(run: Run, action: FaultEvent) -> pd.DataFrame:
    rows = _client_probe_rows(run, action)
    lanes = pd.concat([rows[CLIENT_KEYS].astype("object"), _tcp_lanes(run)[CLIENT_KEYS]])
    lanes = lanes.drop_duplicates().reset_index(drop=True)
    rows = lanes.merge(rows.astype({"client": "object", "service": "object"}),
                       on=CLIENT_KEYS, how="left")
    flows = _tcp_lanes(run, action.trial).set_index(CLIENT_KEYS)["tcp_flows"]
    rows["tcp_flows"] = [int(flows.get((c, s), 0)) for c, s in
                         zip(rows["client"], rows["service"], strict=True)]
    broken = _tcp_broken(run, action)
    rows["tcp_broken"] = [int(broken.get((c, s), 0)) for c, s in
                          zip(rows["client"], rows["service"], strict=True)]
    rows["resolution_ms"] = run.interval_ms
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
    key = [client_order.get(c, len(client_order)) * 1000 + service_order.get(s, 999)
           for c, s in zip(rows["client"], rows["service"], strict=True)]
    return rows.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


CLIENT_COLUMNS = ["run", "trial", "step", "phase", "fault", "target", "client", "service",
                  "flows", "flows_hit", "lost", "lost_total", "loss_derived_ms", "outage_ms",
                  "recovered", "resolution_ms", "site_before", "site_after", "flip_ns",
                  "flip_ms", "rtt_before_ms", "rtt_after_ms", "tcp_flows", "tcp_broken"]


def client_table(run: Run, *, phases: Sequence[str] = ("fault", "undo"),
                 trial: int | None = None) -> pd.DataFrame:
    """Per action (fault and/or undo), client and service: outages, sites, flip, RTT and TCP
    flows broken, for every trial (or one)."""
    frames = [action_client_table(run, a) for a in run.actions
              if a.kind in phases and (trial is None or a.trial == trial)]
    if not frames:
        return pd.DataFrame(columns=CLIENT_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    return table.reindex(columns=CLIENT_COLUMNS)


def detection(run: Run, action: FaultEvent) -> tuple[float | None, str | None]:
    """The first BFD or BGP session down in the window, in ms after the action."""
    ev = run.events
    downs = ev[(ev["trial"] == action.trial) & (ev["t_ns"] >= action.t_ns)
               & (ev["t_ns"] < action.end_ns) & ev["kind"].isin(["bfd_down", "session_down"])]
    if downs.empty:
        return None, None
    first = downs.iloc[0]
    return (int(first["t_ns"]) - action.t_ns) / NS_PER_MS, str(first["source"])


def fib_changes(run: Run, action: FaultEvent) -> pd.DataFrame:
    """The FIB changes in an action's window (every router, every service prefix)."""
    r = run.routes
    return r[(r["t_ns"] >= action.t_ns) & (r["t_ns"] < action.end_ns)]


def event_table(run: Run) -> pd.DataFrame:
    """One row per injector action of every trial: when, detection, control-plane
    convergence (first and last FIB change), and the worst data-plane figures."""
    rows = []
    for action in run.actions:
        detect_ms, source = detection(run, action)
        changes = fib_changes(run, action)
        rel = (changes["t_ns"] - action.t_ns) / NS_PER_MS
        clients = action_client_table(run, action)
        rows.append({
            "run": run.label, "trial": action.trial, "step": action.step, "phase": action.kind,
            "fault": action.fault, "target": action.target,
            "t_s": (action.t_ns - run.origin_ns(action.trial)) / NS_PER_S,
            "window_s": (action.end_ns - action.t_ns) / NS_PER_S,
            "detection_ms": detect_ms, "detection_source": source,
            "first_fib_ms": float(rel.min()) if len(rel) else None,
            "last_fib_ms": float(rel.max()) if len(rel) else None,
            "routers_changed": int(changes["router"].nunique()),
            "clients_hit": int((clients["lost"].fillna(0) > 0).sum()),
            "worst_outage_ms": float(clients["outage_ms"].max()) if clients["outage_ms"].notna(
            ).any() else None,
            "tcp_broken": int(clients["tcp_broken"].sum())})
    return pd.DataFrame(rows)


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
    step, fault, client and service."""
    run_list = [runs] if isinstance(runs, Run) else list(runs)
    data = labelled_client_table(run_list, phase=phase, labels=labels)
    data = data[data[metric].notna()]
    keys = ["run", "step", "fault", "client", "service"]
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


__all__ = ["CLIENT_COLUMNS", "action_client_table", "aggregate_table", "client_table",
           "detection", "event_table", "fib_changes", "flow_table", "labelled_client_table",
           "run_labels"]
