"""The caller's side of the FIB recorder: start it, wait until it listens, read what it wrote.

The recorder runs in the caller's namespace and opens one socket inside each router
namespace itself (see ``lab.measure.recorder.netlink``); it changes nothing anywhere.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.backend.processes import Spawn, is_alive
from lab.backend.state import ProcessRecord
from lab.errors import RecorderError
from lab.measure.recorder.spec import RecorderSpec

if TYPE_CHECKING:
    import pandas as pd

RECORDER_KIND = "recorder"
# routes.parquet (docs/run-format.md): column -> dtype
ROUTE_COLUMNS: dict[str, str] = {
    "trial": "int16",
    "t_ns": "int64",
    "router": "string",
    "prefix": "string",
    "action": "string",
    "nexthops": "string",
    "n_nexthops": "int16",
}


def recorder_argv(spec_path: Path) -> list[str]:
    return [sys.executable, "-m", "lab.measure.recorder", "--spec", str(spec_path)]


def start_recorder(spawn: Spawn, spec_path: Path, log: Path) -> ProcessRecord:
    """Start the recorder process for the spec at ``spec_path`` with ``spawn``, outside every
    node (it enters the routers' namespaces itself). A ready file left by an earlier run is
    removed first, so ``wait_ready`` waits for this one."""
    Path(RecorderSpec.load(spec_path).ready).unlink(missing_ok=True)
    return spawn(recorder_argv(spec_path), log)


def wait_ready(path: Path, timeout: float, record: ProcessRecord | None = None,
               log: Path | None = None) -> None:
    """Wait until the recorder has subscribed every socket and written the present routes
    (it touches ``path``). With ``record``, fail at once if the process dies."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if record is not None and not is_alive(record):
            raise RecorderError(f"recorder (pid {record.pid}) exited before it was ready"
                                f"{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise RecorderError(f"recorder not ready after {timeout:g} s ({path} missing)"
                                f"{_log_tail(log)}")
        time.sleep(0.01)


def _log_tail(log: Path | None, lines: int = 5) -> str:
    if log is None:
        return ""
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ": " + " | ".join(tail) if tail else ""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The recorder's JSON lines; a last line cut short (killed mid-write) is left out."""
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            if number == len(lines):
                break
            raise RecorderError(f"{path}:{number}: not a JSON line: {exc}") from exc
        rows.append(row)
    return rows


def routes_frame(rows: list[dict[str, Any]], trial: int) -> pd.DataFrame:
    """Rows as a routes.parquet table: next hops comma-joined and sorted, empty on ``del``."""
    import pandas as pd

    records = []
    for row in rows:
        hops = [] if row["action"] == "del" else list(row.get("nexthops") or [])
        records.append((trial, int(row["t_ns"]), row["router"], row["prefix"], row["action"],
                        ",".join(hops), len(hops)))
    frame = pd.DataFrame.from_records(records, columns=list(ROUTE_COLUMNS))
    frame = frame.astype(ROUTE_COLUMNS)
    return frame.sort_values("t_ns", kind="stable").reset_index(drop=True)


def load_routes(path: Path, trial: int, start_ns: int | None = None,
                end_ns: int | None = None) -> pd.DataFrame:
    """The recorder output at ``path`` as a routes.parquet table for ``trial``, optionally
    only rows with ``start_ns <= t_ns < end_ns``. ``present`` rows (the routes found at start
    or after a netlink overrun) are kept: they give the state before the first change."""
    rows = read_rows(path)
    if start_ns is not None:
        rows = [r for r in rows if r["t_ns"] >= start_ns]
    if end_ns is not None:
        rows = [r for r in rows if r["t_ns"] < end_ns]
    return routes_frame(rows, trial)
