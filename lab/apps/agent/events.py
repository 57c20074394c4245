"""The agent's records: an append-only JSON-lines event log and an atomically replaced status.

Every event carries ``t_ns`` (CLOCK_MONOTONIC, one clock for every process of a lab since all
namespaces share the kernel), the node and the event name; commands also carry ``done_ns``, the
instant the command returned. Event names: agent_start, agent_stop, pod_ready, pod_unready,
nft_apply, conntrack_flush, announce, withdraw, drain, undrain, endpoints_changed, pod_list,
error.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from lab.atomicfile import write_atomic

EVENT_NAMES = ("agent_start", "agent_stop", "pod_ready", "pod_unready", "nft_apply",
               "conntrack_flush", "announce", "withdraw", "drain", "undrain",
               "endpoints_changed", "pod_list", "error")


def event_record(t_ns: int, node: str, event: str, details: Mapping[str, object]) -> dict[str,
                                                                                          object]:
    if event not in EVENT_NAMES:
        raise ValueError(f"unknown event {event!r}")
    reserved = {"t_ns", "node", "event"}.intersection(details)
    if reserved:
        raise ValueError(f"details may not override {', '.join(sorted(reserved))}")
    return {"t_ns": t_ns, "node": node, "event": event, **details}


def event_line(record: Mapping[str, object]) -> str:
    """One compact JSON line; addresses and paths are written as strings."""
    return json.dumps(record, separators=(",", ":"), default=str) + "\n"


class EventLog:
    """Appends one line per event with a single write (O_APPEND), so lines never interleave."""

    def __init__(self, path: Path, node: str,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.node = node
        self.clock = clock
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: str, t_ns: int | None = None, **details: object) -> dict[str, object]:
        record = event_record(self.clock() if t_ns is None else t_ns, self.node, event, details)
        os.write(self._fd, event_line(record).encode())
        return record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_json_atomic(path: Path, document: Mapping[str, object]) -> None:
    """Replace ``path`` in one rename, so readers see the old or the new file, never half
    (rewritten at every change, on a tmpfs: not flushed to disk)."""
    write_atomic(path, json.dumps(document, indent=1, default=str) + "\n", durable=False)


def read_events(path: Path) -> list[dict[str, object]]:
    """The events of a log (used by tests and by the measurement code's readers)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
