"""Turn a run's raw recordings into the run directory's files and its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lab import pipeline
from lab.backend.names import node_dir
from lab.backend.state import LabState
from lab.measure.metrics import budgets
from lab.plan.model import LabPlan, Role

if TYPE_CHECKING:
    from lab.run.runner import Recording
    from lab.scenario.load import LoadedScenario

ROUTE_COLUMNS = ["trial", "t_ns", "router", "prefix", "action", "nexthops", "n_nexthops"]


def _trial_of(t_ns: int, bounds: list[tuple[int, int, int]]) -> int:
    for trial, start, end in bounds:
        if t_ns <= end:
            return trial if t_ns >= start or trial == 0 else trial - 1
    return bounds[-1][0] if bounds else 0


def _read_jsonl(path: Path, since_ns: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(row, dict) and int(row.get("t_ns", 0)) >= since_ns:
            rows.append(row)
    return rows


def agent_events(state: LabState, plan: LabPlan, since_ns: int) -> list[dict[str, Any]]:
    rows = []
    for node in plan.nodes_with_role(Role.K8S_NODE):
        for row in _read_jsonl(node_dir(state.directory, node.name) / "agent-events.jsonl",
                               since_ns):
            kind = row.pop("event", "agent")
            rows.append({**row, "source": "agent", "kind": kind, "node": node.name})
    return rows


def session_events(state: LabState, plan: LabPlan, clock: dict[str, int],
                   since_ns: int) -> list[dict[str, Any]]:
    from lab.measure.recorder import parse_frr_logs

    addresses: dict[str, str] = {}
    for session in plan.sessions:
        addresses[str(session.a_address)] = session.a
        addresses[str(session.b_address)] = session.b
    logs = {}
    for node in plan.nodes:
        shared_log = node_dir(state.directory, node.name) / "frr.log"
        if shared_log.exists():
            logs[node.name] = {"frr": shared_log}
    return parse_frr_logs(logs, addresses, (clock["realtime_ns"], clock["monotonic_ns"]),
                          since_ns)


def _probes(recording: Recording, plan: LabPlan) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """probes.parquet, and per prober and trial a ``prober``/``timing`` event: how well the
    prober kept its schedule (lab.run.instrument; an HTTP prober's has ``prober: http``)."""
    from lab.measure.probe.httprecords import (
        http_prober_timing,
        http_probes_frame,
        read_http_records,
    )
    from lab.measure.probe.records import read_prober_file
    from lab.measure.probe.services import instances
    from lab.measure.probe.udp import PROBE_COLUMNS, probes_frame
    from lab.run.instrument import prober_timing

    frames, timing = [], []
    pods = instances(plan)
    for trial, client, path in recording.prober_files:
        if not path.exists():
            continue
        records = read_prober_file(path)
        frames.append(probes_frame(records, client, trial, pods))
        end = int(records.ticks[:, 1].max()) if len(records.ticks) else records.header.start_ns
        timing.append({"t_ns": end, "trial": trial, "source": "prober", "kind": "timing",
                       "client": client, **prober_timing(records)})
    for trial, service, path in recording.http_files:
        if not path.exists():
            continue
        http = read_http_records(path)
        frames.append(http_probes_frame(http, trial, pods))
        end = max((o.send_ns for o in http.outcomes), default=http.header.start_ns)
        timing.append({"t_ns": end, "trial": trial, "source": "prober", "kind": "timing",
                       "prober": "http", "service": service, **http_prober_timing(http)})
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in PROBE_COLUMNS}), timing
    return pd.concat(frames, ignore_index=True), timing


def _routes(recording: Recording) -> pd.DataFrame:
    from lab.measure.recorder import load_routes

    if recording.routes_file is None or not recording.routes_file.exists():
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ROUTE_COLUMNS})
    routes = load_routes(recording.routes_file, 0)
    if not routes.empty and recording.trial_bounds:
        routes["trial"] = [_trial_of(int(t), recording.trial_bounds) for t in routes["t_ns"]]
        routes["trial"] = routes["trial"].astype("int16")
    return routes


def collect_results(loaded: LoadedScenario, state: LabState, recording: Recording,
                    complete: bool) -> dict[str, Any]:
    since = recording.clock["monotonic_ns"]
    events = list(recording.events)
    events += agent_events(state, loaded.plan, since)
    for path in recording.tcp_files:
        events += _read_jsonl(path, since)
    try:
        events += session_events(state, loaded.plan, recording.clock, since)
    except (OSError, ValueError) as exc:
        events.append({"t_ns": since, "source": "runner", "kind": "note",
                       "message": f"FRR logs could not be read: {exc}"})
    probes, timing = _probes(recording, loaded.plan)
    events += timing
    for row in events:
        row.setdefault("trial", _trial_of(int(row["t_ns"]), recording.trial_bounds))
    events.sort(key=lambda r: int(r["t_ns"]))
    routes = _routes(recording)
    run_dir = recording.run_dir
    run_dir.write_jsonl("events.jsonl", events)
    run_dir.write_parquet("probes.parquet", probes)
    run_dir.write_parquet("routes.parquet", routes)
    summary = pipeline.summarize(
        scenario=loaded.scenario.name, complete=complete, probes=probes, routes=routes,
        events=events, interval_ms=loaded.scenario.probe.interval,
        trial_bounds=recording.trial_bounds)
    _mark_suspect_trials(summary, events)
    if loaded.scenario.expect:
        summary["budgets"] = budgets.evaluate([e.as_dict() for e in loaded.scenario.expect],
                                              summary)
    run_dir.write_json("summary.json", summary)
    return summary


def _mark_suspect_trials(summary: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Trials in which a lab process died on its own, or the instrument lagged beyond its
    limits (lab.measure.metrics.instrument), get warnings and `valid: false`."""
    for trial in summary.get("trials", []):
        died = [e for e in events if e.get("trial") == trial.get("trial")
                and e.get("kind") == "daemon_died"]
        trial["warnings"] = [f"{e['daemon']} on {e['node']} (pid {e['pid']}) died outside "
                             "the scenario; its figures may show that, not the fault"
                             for e in died]
        trial["warnings"] += [f"the instrument lagged: {problem}" for problem in
                              (trial.get("instrument") or {}).get("problems", [])]
        trial["valid"] = not trial["warnings"]
