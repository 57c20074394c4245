"""summary.json for scripts/make_sample_run.py: the contract's figures (docs/run-format.md)
computed from the fabricated records with plain numpy, independently of ``analysis/`` (the
tests compare the two)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NS_MS = 1_000_000
NS_S = 1_000_000_000


def flow_metrics(send: np.ndarray, lost: np.ndarray, t_ns: int, interval_ms: float) -> tuple[
        int, float]:
    """(lost probes, rate-derived outage ms) of one flow in a window starting at t_ns."""
    n_lost = int(lost.sum())
    if n_lost == 0:
        return 0, 0.0
    last = int(np.flatnonzero(lost)[-1])
    recovered = send[last + 1] if last + 1 < len(send) else send[last] + interval_ms * NS_MS
    return n_lost, round((int(recovered) - t_ns) / NS_MS, 3)


def _mode(values: np.ndarray) -> str | None:
    values = values[values != None]  # noqa: E711 - object array of names and None
    if len(values) == 0:
        return None
    names, counts = np.unique(values.astype(str), return_counts=True)
    return str(names[np.argmax(counts)])


def client_metrics(lanes: dict[tuple[str, str, int], dict[str, np.ndarray]], client: str,
                   service: str, t_ns: int, end_ns: int, interval_ms: float,
                   tcp_broken: int) -> dict[str, Any]:
    """The contract's per-client figures for one window [t_ns, end_ns); with several flows
    the outage is the worst flow's and `lost` counts that flow's lost probes."""
    row: dict[str, Any] = {"client": client, "service": service}
    flows = [v for (c, s, _), v in sorted(lanes.items()) if c == client and s == service]
    if not flows:
        return {**row, "tcp_broken": tcp_broken}
    worst = (0, 0.0)
    before, after, inside = [], [], []
    for lane in flows:
        send = lane["send_ns"]
        win = (send >= t_ns) & (send < end_ns)
        n_lost, outage = flow_metrics(send[win], lane["lost"][win], t_ns, interval_ms)
        worst = max(worst, (n_lost, outage), key=lambda x: (x[1], x[0]))
        before.append((send >= t_ns - NS_S) & (send < t_ns))
        after.append((send >= end_ns - NS_S) & (send < end_ns))
        inside.append(win)
    site = np.concatenate([lane["site"] for lane in flows])
    rtt = np.concatenate([lane["rtt_ms"] for lane in flows])
    send_all = np.concatenate([lane["send_ns"] for lane in flows])
    b, a, w = (np.concatenate(m) for m in (before, after, inside))
    site_before, site_after = _mode(site[b]), _mode(site[a])
    moved = w & (site != None) & (site != site_before)  # noqa: E711
    flip = int(send_all[moved].min()) if moved.any() else None
    return {**row, "outage_ms": worst[1], "loss_derived_ms": round(worst[0] * interval_ms, 3),
            "lost": worst[0], "resolution_ms": interval_ms, "site_before": site_before,
            "site_after": site_after, "flip_ns": flip,
            "rtt_before_ms": round(float(np.nanmedian(rtt[b])), 3),
            "rtt_after_ms": round(float(np.nanmedian(rtt[a])), 3), "tcp_broken": tcp_broken}


def window_events(events: list[dict[str, Any]], trial: int, end_ns: int) -> list[
        tuple[dict[str, Any], int, dict[str, Any] | None, int]]:
    """(fault, its window end, undo, the undo's window end) for each fault of a trial."""
    actions = sorted((e for e in events if e["trial"] == trial and e["source"] == "injector"),
                     key=lambda e: e["t_ns"])
    ends = [next((b["t_ns"] for b in actions if b["t_ns"] > a["t_ns"]), end_ns)
            for a in actions]
    out = []
    for i, action in enumerate(actions):
        if action["kind"] != "fault":
            continue
        undo = next(((b, ends[j]) for j, b in enumerate(actions)
                     if j > i and b["kind"] == "undo" and b["step"] == action["step"]), None)
        out.append((action, ends[i], undo[0] if undo else None, undo[1] if undo else end_ns))
    return out


def control_plane(routes: pa.Table, trial: int, t_ns: int, end_ns: int) -> dict[str, Any]:
    frame = routes.to_pandas()
    frame = frame[(frame["trial"] == trial) & (frame["t_ns"] >= t_ns) & (frame["t_ns"] < end_ns)]
    if frame.empty:
        return {"first_fib_change_ms": None, "last_fib_change_ms": None, "routers": {}}
    rel = (frame["t_ns"] - t_ns) / NS_MS
    routers = {str(r): {"first_ms": round(float(g.min()), 3), "last_ms": round(float(g.max()), 3)}
               for r, g in rel.groupby(frame["router"])}
    return {"first_fib_change_ms": round(float(rel.min()), 3),
            "last_fib_change_ms": round(float(rel.max()), 3), "routers": routers}


def detection(events: list[dict[str, Any]], trial: int, t_ns: int,
              end_ns: int) -> tuple[float | None, str | None]:
    downs = [e for e in events if e["trial"] == trial and t_ns <= e["t_ns"] < end_ns
             and e["kind"] in ("bfd_down", "session_down")]
    if not downs:
        return None, None
    first = min(downs, key=lambda e: e["t_ns"])
    return round((first["t_ns"] - t_ns) / NS_MS, 3), str(first["source"])


def lanes_of(probes: pa.Table, trial: int) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
    frame = probes.filter(pc.equal(probes["trial"], trial)).to_pandas()
    lanes = {}
    for (client, service, flow), g in frame.groupby(["client", "service", "flow"]):
        g = g.sort_values("send_ns")
        lanes[(str(client), str(service), int(flow))] = {
            "send_ns": g["send_ns"].to_numpy(), "lost": g["rtt_ms"].isna().to_numpy(),
            "site": g["site"].to_numpy(dtype=object), "rtt_ms": g["rtt_ms"].to_numpy()}
    return lanes


@dataclass(frozen=True)
class Shape:
    """What the summary needs to know about the run besides its records."""

    scenario: str
    interval_ms: float
    clients: tuple[str, ...]
    services: tuple[str, ...]
    trial_ends: tuple[int, ...]  # end instant of each trial, by trial index


def window_rows(lanes: dict[tuple[str, str, int], dict[str, np.ndarray]],
                events: list[dict[str, Any]], shape: Shape, t: int,
                stop: int) -> list[dict[str, Any]]:
    broken = [e for e in events if e["kind"] == "flow_broken" and t <= e["t_ns"] < stop]
    return [client_metrics(lanes, c, s, t, stop, shape.interval_ms,
                           sum(1 for e in broken if (e["client"], e["service"]) == (c, s)))
            for c in shape.clients for s in shape.services]


def summarize(shape: Shape, events: list[dict[str, Any]], probes: pa.Table,
              routes: pa.Table) -> dict[str, Any]:
    """summary.json for a fabricated run (docs/run-format.md)."""
    trials = []
    for trial, trial_end in enumerate(shape.trial_ends):
        lanes = lanes_of(probes, trial)
        entries = []
        for fault, end, undo, undo_end in window_events(events, trial, trial_end):
            detect_ms, source = detection(events, trial, fault["t_ns"], end)
            entries.append({
                "step": fault["step"], "fault": fault["fault"], "target": fault["target"],
                "t_ns": fault["t_ns"], "undo_t_ns": undo["t_ns"] if undo else None,
                "detection_ms": detect_ms, "detection_source": source,
                "control_plane": control_plane(routes, trial, fault["t_ns"], end),
                "clients": window_rows(lanes, events, shape, fault["t_ns"], end),
                "reversion": {"clients": window_rows(lanes, events, shape, undo["t_ns"],
                                                     undo_end) if undo else []}})
        trials.append({"trial": trial, "complete": True, "events": entries})
    return {"scenario": shape.scenario, "complete": True, "interval_ms": shape.interval_ms,
            "trials": trials, "aggregate": aggregate(trials)}


def aggregate(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[int, str, str, str], list[float]] = {}
    for trial in trials:
        for entry in trial["events"]:
            for row in entry["clients"]:
                if row.get("outage_ms") is not None:
                    key = (entry["step"], entry["fault"], row["client"], row["service"])
                    groups.setdefault(key, []).append(row["outage_ms"])
    out = []
    for (step, fault, client, service), values in groups.items():
        arr = np.array(values)
        q1, q3 = np.percentile(arr, [25, 75])
        stats = {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)),
                 "iqr": float(q3 - q1), "min": float(arr.min()), "max": float(arr.max())}
        out.append({"step": step, "fault": fault, "client": client, "service": service,
                    "n": len(values), "outage_ms": {k: round(v, 3) for k, v in stats.items()}})
    return out
