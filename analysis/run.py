"""Loading a run directory (docs/run-format.md) into a typed :class:`Run`.

Everything in ``analysis`` starts here: the five files are read, checked against the contract
and turned into pandas DataFrames with stable dtypes (names as categoricals in the order the
run declares them, instants as int64 nanoseconds, ``recv_ns`` as nullable Int64, a ``lost``
column). Problems with the files raise :class:`RunError`, never a bare ``KeyError``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.actions import FaultEvent, build_actions
from lab.errors import LabError, MetricsError
from lab.measure.metrics.summary import trial_end_ns

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
SUPPORTED_FORMAT = 1
RUN_FILES = ("run.json", "events.jsonl", "probes.parquet", "routes.parquet", "summary.json")
# Files an interrupted run may lack (the runner writes them last); run.json and probes are
# always needed.
OPTIONAL_WHEN_INCOMPLETE = ("events.jsonl", "routes.parquet", "summary.json")
PROBE_COLUMNS = ("trial", "client", "service", "flow", "seq", "send_ns", "recv_ns", "rtt_ms",
                 "site", "cluster", "node", "pod")
# "family" (ipv4, ipv6) came with dual-stack labs: a run recorded before has IPv4 only;
# "status" (a DNS answer's RCODE) with DNS probes: null before
FAMILIES = ("ipv4", "ipv6")
PROBE_NAMES = ("client", "service", "site", "cluster", "node", "pod")
ROUTE_COLUMNS = ("trial", "t_ns", "router", "prefix", "action", "nexthops", "n_nexthops")
EVENT_KEYS = ("t_ns", "trial", "source", "kind")


class RunError(LabError):
    """A run directory cannot be read: missing, incomplete when completeness was required,
    or a file that does not follow docs/run-format.md. The message names the file."""


@dataclass(frozen=True, eq=False)
class Run:
    """One run directory, loaded. ``probes``, ``routes`` and ``events`` are DataFrames;
    ``meta`` is run.json and ``summary`` summary.json (``{}`` when an incomplete run has none).
    """

    path: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    probes: pd.DataFrame
    routes: pd.DataFrame
    events: pd.DataFrame
    missing_files: tuple[str, ...] = field(default=())
    records: tuple[dict[str, Any], ...] = field(default=(), repr=False)  # events.jsonl as is

    # ------------------------------------------------------------------ identity
    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def scenario(self) -> str:
        return str(self.meta.get("scenario", {}).get("name", ""))

    @property
    def description(self) -> str:
        return str(self.meta.get("scenario", {}).get("description", "") or "")

    @property
    def label(self) -> str:
        """A short name for legends: the scenario name, else the run id."""
        return self.scenario or self.run_id

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", False))

    @property
    def interrupted(self) -> bool:
        return bool(self.meta.get("interrupted", False))

    # ------------------------------------------------------------------ dimensions
    @property
    def interval_ms(self) -> float:
        probe = self.meta.get("probe", {})
        return float(probe.get("interval_ms") or self.summary.get("interval_ms") or 1.0)

    @property
    def interval_ns(self) -> int:
        return round(self.interval_ms * NS_PER_MS)

    @property
    def clients(self) -> list[str]:
        return [str(c) for c in self.probes["client"].cat.categories]

    @property
    def services(self) -> list[str]:
        return [str(s) for s in self.probes["service"].cat.categories]

    @property
    def families(self) -> list[str]:
        """The address families probed (IPv4 first)."""
        return [str(f) for f in self.probes["family"].cat.categories
                if (self.probes["family"] == f).any()]

    @property
    def sites(self) -> list[str]:
        """Every site of the lab (from the topology), sorted, plus any seen in the probes."""
        return [str(s) for s in self.probes["site"].cat.categories]

    @cached_property
    def node_sites(self) -> dict[str, str]:
        """Node -> site, as seen in the answers."""
        answered = self.probes[~self.probes["lost"]]
        pairs = answered.groupby("node", observed=True)["site"].first()
        return {str(node): str(site) for node, site in pairs.items()}

    @property
    def trials(self) -> list[int]:
        seen = set(self.probes["trial"].unique()) | set(self.events["trial"].unique())
        declared = int(self.meta.get("trials") or 0)
        return sorted({int(t) for t in seen} | set(range(declared if seen else 0)))

    @property
    def service_prefixes(self) -> dict[str, str]:
        """Prefix (``192.0.2.53/32``, ``2001:db8:53::53/128``) -> service name, from the
        topology document."""
        document = self.meta.get("topology", {}).get("document") or {}
        prefixes = {}
        for service in document.get("services", []):
            if not isinstance(service, Mapping) or "name" not in service:
                continue
            for key in ("vip", "vip6"):
                if service.get(key):
                    prefixes[str(ipaddress.ip_network(service[key]))] = str(service["name"])
        return prefixes

    # ------------------------------------------------------------------ events and time
    @cached_property
    def actions(self) -> list[FaultEvent]:
        """Every injector action (faults and undos) of every trial, in time order, each with
        its measurement window ``[t_ns, end_ns)``."""
        return build_actions(self.records, {t: self.trial_bounds(t)[1] for t in self.trials})

    @property
    def fault_events(self) -> list[FaultEvent]:
        """The faults (not the undos) of every trial; ``event.undo`` is the matching undo."""
        return [a for a in self.actions if a.kind == "fault"]

    def trial_actions(self, trial: int) -> list[FaultEvent]:
        return [a for a in self.actions if a.trial == trial]

    def trial_bounds(self, trial: int) -> tuple[int, int]:
        """``(start_ns, end_ns)`` of a trial: the runner's trial_start event (else its first
        probe or event), and the trial end as summary.json takes it (the runner's trial_end,
        else just after the last probe or event: ``lab.measure.metrics.summary``)."""
        ev = self.events[self.events["trial"] == trial]
        starts = ev.loc[(ev["source"] == "runner") & (ev["kind"] == "trial_start"), "t_ns"]
        sends = self.probes.loc[self.probes["trial"] == trial, "send_ns"]
        try:
            end = trial_end_ns([e for e in self.records if e.get("trial") == trial],
                               self.probes, trial)
        except MetricsError as exc:
            raise RunError(f"{self.path}: {exc}") from exc
        firsts = [int(x) for x in (starts.min() if len(starts) else None,
                                   sends.min() if len(sends) else None,
                                   ev["t_ns"].min() if len(ev) else None) if x is not None]
        return (firsts[0] if firsts else end - 1), end

    def origin_ns(self, trial: int = 0) -> int:
        """The zero of a trial's time axis: its start."""
        return self.trial_bounds(trial)[0]

    def seconds(self, t_ns: Any, trial: int = 0, origin: FaultEvent | int | None = None) -> Any:
        """Seconds from the trial start (or from an event, or from an instant in ns) to
        ``t_ns`` (a number, array or Series)."""
        zero = (origin.t_ns if isinstance(origin, FaultEvent)
                else origin if origin is not None else self.origin_ns(trial))
        return (t_ns - zero) / NS_PER_S

    def wall_time(self, t_ns: int) -> datetime:
        """The realtime (UTC) of a monotonic instant, from run.json's clock pair."""
        clock = self.meta.get("clock") or {}
        mono, real = clock.get("monotonic_ns"), clock.get("realtime_ns")
        if not isinstance(mono, int) or not isinstance(real, int):
            raise RunError(f"{self.path / 'run.json'}: no clock pair to convert instants")
        return datetime.fromtimestamp((t_ns - mono + real) / NS_PER_S, UTC)

    def trial_probes(self, trial: int, start_ns: int | None = None,
                     end_ns: int | None = None) -> pd.DataFrame:
        """The probes of one trial sent in ``[start_ns, end_ns)``."""
        p = self.probes
        mask = p["trial"] == trial
        if start_ns is not None:
            mask &= p["send_ns"] >= start_ns
        if end_ns is not None:
            mask &= p["send_ns"] < end_ns
        return p[mask]


# ---------------------------------------------------------------------------- loading

def load_run(path: str | Path, *, require_complete: bool = False) -> Run:
    """Read one run directory. Raises :class:`RunError` when the directory or a needed file
    is missing, a file is malformed, or ``require_complete`` is set and the run is not
    complete. An incomplete run loads quietly: check ``run.complete``."""
    root = Path(path)
    if not root.is_dir():
        raise RunError(f"{root}: no such run directory")
    meta = _read_json_object(root / "run.json")
    _check_meta(root, meta)
    complete = bool(meta.get("complete", False))
    if require_complete and not complete:
        raise RunError(f"{root}: the run is incomplete (run.json has complete=false"
                       f"{', interrupted' if meta.get('interrupted') else ''})")
    missing = tuple(name for name in RUN_FILES if not (root / name).is_file())
    needed = [m for m in missing if complete or m not in OPTIONAL_WHEN_INCOMPLETE]
    if needed:
        raise RunError(f"{root}: missing {', '.join(needed)} (see docs/run-format.md)")
    probe_meta = meta.get("probe") or {}
    sites = _topology_sites(meta)
    probes = read_probes(root / "probes.parquet", probe_meta.get("clients", []),
                         probe_meta.get("services", []), sites)
    records = (read_event_records(root / "events.jsonl") if "events.jsonl" not in missing
               else [])
    events = events_frame(records)
    routes = read_routes(root / "routes.parquet") if "routes.parquet" not in missing else (
        _empty_routes())
    summary = _read_json_object(root / "summary.json") if "summary.json" not in missing else {}
    return Run(root, meta, summary, probes, routes, events, missing, tuple(records))


def load_runs(paths: Iterable[str | Path], *, require_complete: bool = False) -> list[Run]:
    """Read several run directories, in the given order."""
    return [load_run(p, require_complete=require_complete) for p in paths]


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"{path}: missing (see docs/run-format.md)") from exc
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _check_meta(root: Path, meta: Mapping[str, Any]) -> None:
    where = root / "run.json"
    version = meta.get("format")
    if version != SUPPORTED_FORMAT:
        raise RunError(f"{where}: format {version!r} is not supported (this analysis reads "
                       f"format {SUPPORTED_FORMAT})")
    for key, kind in (("probe", dict), ("scenario", dict)):
        if not isinstance(meta.get(key), kind):
            raise RunError(f"{where}: {key!r} must be an object")
    interval = meta["probe"].get("interval_ms")
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        raise RunError(f"{where}: probe.interval_ms must be a positive number, "
                       f"found {interval!r}")


def _topology_sites(meta: Mapping[str, Any]) -> list[str]:
    document = (meta.get("topology") or {}).get("document") or {}
    sites = document.get("sites", []) if isinstance(document, Mapping) else []
    return sorted(str(s["name"]) for s in sites if isinstance(s, Mapping) and "name" in s)


def _read_table(path: Path, columns: Sequence[str], optional: Sequence[str] = ()) -> pa.Table:
    """The table's ``columns`` (all required) and those of ``optional`` it has."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise RunError(f"{path}: not a readable Parquet file: {exc}") from exc
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise RunError(f"{path}: missing column{'s' if len(absent) > 1 else ''} "
                       f"{', '.join(absent)} (see docs/run-format.md)")
    return table.select([*columns, *(c for c in optional if c in table.column_names)])


def _ordered_categories(values: pd.Series, declared: Iterable[str],
                        sort: bool = False) -> pd.Series:
    """A categorical whose categories are the declared names first (in order), then any
    other name found, so plots and tables keep the run's order."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("object").astype("category")
    seen = [str(v) for v in values.cat.categories]
    values = values.cat.rename_categories(seen) if seen != list(values.cat.categories) else values
    order = list(dict.fromkeys([*map(str, declared), *seen]))
    return values.cat.set_categories(sorted(order) if sort else order)


def read_probes(path: Path, clients: Iterable[str] = (), services: Iterable[str] = (),
                sites: Iterable[str] = ()) -> pd.DataFrame:
    """probes.parquet as a DataFrame sorted by trial, client, service, family, flow and send
    time."""
    table = _read_table(path, PROBE_COLUMNS, optional=("family", "status"))
    try:
        frame: pd.DataFrame = table.to_pandas(strings_to_categorical=True)
        frame["recv_ns"] = table.column("recv_ns").cast(pa.int64()).to_pandas(
            types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        frame = frame.astype({"trial": "int16", "flow": "int16", "seq": "int64",
                              "send_ns": "int64", "rtt_ms": "float64"})
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise RunError(f"{path}: a column has the wrong type: {exc}") from exc
    frame["client"] = _ordered_categories(frame["client"], clients)
    frame["service"] = _ordered_categories(frame["service"], services)
    family = frame.pop("family").astype(object) if "family" in frame else "ipv4"
    frame.insert(list(frame.columns).index("service") + 1, "family",
                 pd.Series(family, index=frame.index).astype(pd.CategoricalDtype(list(FAMILIES))))
    status = (frame.pop("status") if "status" in frame
              else pd.Series(pd.NA, index=frame.index, dtype="Int32"))
    try:
        frame.insert(list(frame.columns).index("rtt_ms") + 1, "status", status.astype("Int32"))
    except (ValueError, TypeError) as exc:
        raise RunError(f"{path}: a column has the wrong type: {exc}") from exc
    frame["site"] = _ordered_categories(frame["site"], sites, sort=True)
    for name in ("cluster", "node", "pod"):
        frame[name] = _ordered_categories(frame[name], (), sort=True)
    frame["lost"] = frame["rtt_ms"].isna().to_numpy()
    frame = frame.sort_values(["trial", "client", "service", "family", "flow", "send_ns"],
                              kind="stable")
    return frame.reset_index(drop=True)


def read_routes(path: Path) -> pd.DataFrame:
    table = _read_table(path, ROUTE_COLUMNS)
    try:
        frame: pd.DataFrame = table.to_pandas()
        frame = frame.astype({"trial": "int16", "t_ns": "int64", "n_nexthops": "int16"})
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise RunError(f"{path}: a column has the wrong type: {exc}") from exc
    for name in ("router", "prefix", "action", "nexthops"):
        frame[name] = frame[name].fillna("").astype(str)
    return frame.sort_values("t_ns", kind="stable").reset_index(drop=True)


def read_event_records(path: Path) -> list[dict[str, Any]]:
    """events.jsonl's objects, checked, in file order."""
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: cannot be read: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        records.append(_parse_event(path, number, line))
    return records


def read_events(path: Path) -> pd.DataFrame:
    """events.jsonl as a DataFrame (see ``events_frame``)."""
    return events_frame(read_event_records(path))


def events_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Events as a DataFrame: the common keys as columns, every other key too (NaN where an
    event lacks it), sorted by time."""
    if not records:
        return _empty_events()
    frame = pd.DataFrame.from_records(list(records))
    frame = frame.astype({"t_ns": "int64", "trial": "int16"})
    return frame.sort_values("t_ns", kind="stable").reset_index(drop=True)


def _parse_event(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}:{number}: malformed JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise RunError(f"{path}:{number}: an event must be a JSON object")
    for key in EVENT_KEYS:
        value = record.get(key)
        expected = str if key in ("source", "kind") else int
        if not isinstance(value, expected) or isinstance(value, bool):
            raise RunError(f"{path}:{number}: {key!r} must be "
                           f"{'a string' if expected is str else 'an integer'}, "
                           f"found {value!r}")
    return record


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({"t_ns": pd.Series(dtype="int64"), "trial": pd.Series(dtype="int16"),
                         "source": pd.Series(dtype="object"),
                         "kind": pd.Series(dtype="object")})


def _empty_routes() -> pd.DataFrame:
    kinds = {"trial": "int16", "t_ns": "int64", "n_nexthops": "int16"}
    return pd.DataFrame({c: pd.Series(dtype=kinds.get(c, "object")) for c in ROUTE_COLUMNS})


__all__ = ["NS_PER_MS", "NS_PER_S", "Run", "RunError", "events_frame", "load_run",
           "load_runs", "read_event_records", "read_events", "read_probes", "read_routes"]
