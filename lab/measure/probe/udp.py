"""UDP probing of anycast services: start the C prober in a client namespace, load its records.

``start_udp_prober`` runs one prober process in a client (started by the caller's spawn: the
backend puts it in the client's namespace, tagged with the lab); ``load_udp_probes`` turns its
record file (see ``lab.measure.probe.records``) into the rows of ``probes.parquet``: one per
probe sent, lost ones with null receive time, RTT and identity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from lab.backend.processes import Spawn
from lab.backend.state import ProcessRecord
from lab.errors import BackendError, ProbeError
from lab.measure.probe.build import ensure_prober_built
from lab.measure.probe.records import ProberFile, read_prober_file

DEFAULT_RT_PRIORITY = 5  # SCHED_FIFO, below the link emulator's 10: it carries the probes
MIN_INTERVAL_US = 10
MAX_FLOWS = 64
MAX_TARGETS = 16
PROBE_COLUMNS = ("trial", "client", "service", "family", "flow", "seq", "send_ns", "recv_ns",
                 "rtt_ms", "site", "cluster", "node", "pod")
IDENTITY_KEYS = ("site", "cluster", "node", "pod")


@dataclass(frozen=True)
class ProbeTarget:
    """One service a client probes: its name and anycast address (IPv4 or IPv6; a
    dual-stack service is two targets of one name)."""

    service: str
    vip: str
    port: int

    @property
    def address(self) -> str:
        """The target as the prober takes it: IP:PORT, [IPv6]:PORT."""
        return f"[{self.vip}]:{self.port}" if ":" in self.vip else f"{self.vip}:{self.port}"


def _check_targets(targets: Sequence[ProbeTarget]) -> None:
    if not 1 <= len(targets) <= MAX_TARGETS:
        raise ProbeError(f"a prober needs 1 to {MAX_TARGETS} targets, not {len(targets)}")
    keys = [(t.service, ":" in t.vip) for t in targets]
    if len(set(keys)) != len(keys):
        names = sorted(t.service for t in targets)
        raise ProbeError(f"services probed twice in one family: {', '.join(names)}")
    for target in targets:
        if not target.service or any(c.isspace() or c == "=" for c in target.service) \
                or len(target.service) > 63:
            raise ProbeError(f"service name {target.service!r} must be 1-63 characters "
                             "without blanks or '='")
        try:
            ip_address(target.vip)
        except ValueError as exc:
            raise ProbeError(f"{target.service}: {target.vip!r} is not an IP address") from exc
        if not 1 <= target.port <= 65535:
            raise ProbeError(f"{target.service}: port {target.port} out of range")


def interval_us(interval_ms: float) -> int:
    """The probe interval in whole microseconds (what the prober takes)."""
    micros = round(interval_ms * 1000) if math.isfinite(interval_ms) else 0
    if abs(micros - interval_ms * 1000) > 1e-6 or micros < MIN_INTERVAL_US:
        raise ProbeError(f"probe interval {interval_ms} ms must be a whole number of "
                         f"microseconds, at least {MIN_INTERVAL_US} us")
    return micros


def prober_argv(binary: Path, targets: Sequence[ProbeTarget], interval_ms: float, flows: int,
                out: Path, *, duration_ms: int | None = None,
                rt_priority: int = DEFAULT_RT_PRIORITY, drain_ms: int | None = None) -> list[str]:
    """The prober's command line (checked: ProbeError names the bad argument)."""
    _check_targets(targets)
    if not 1 <= flows <= MAX_FLOWS:
        raise ProbeError(f"flows must be between 1 and {MAX_FLOWS}, not {flows}")
    argv = [str(binary), "--interval-us", str(interval_us(interval_ms)), "--out", str(out),
            "--flows", str(flows)]
    for target in targets:
        argv += ["--target", f"{target.service}={target.address}"]
    if duration_ms is not None:
        if duration_ms <= 0:
            raise ProbeError(f"duration must be positive, not {duration_ms} ms")
        argv += ["--duration-ms", str(duration_ms)]
    if drain_ms is not None:
        argv += ["--drain-ms", str(drain_ms)]
    if rt_priority > 0:
        argv += ["--rt-priority", str(rt_priority)]
    return argv


def start_udp_prober(spawn: Spawn, client: str, targets: list[ProbeTarget],
                     interval_ms: float, flows: int, out: Path, log: Path, *,
                     duration_ms: int | None = None, rt_priority: int = DEFAULT_RT_PRIORITY,
                     binary: Path | None = None, drain_ms: int | None = None) -> ProcessRecord:
    """Start the prober of ``client`` with ``spawn`` (which runs it in the client), building
    it if needed. It writes ``out`` until SIGTERM (or ``duration_ms``); stop it with
    ``stop_pids``."""
    argv = prober_argv(binary or ensure_prober_built(), targets, interval_ms, flows, out,
                       duration_ms=duration_ms, rt_priority=rt_priority, drain_ms=drain_ms)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        return spawn(argv, log)
    except BackendError as exc:
        raise ProbeError(f"cannot start the prober of {client}: {exc}") from exc


def _identity_columns(identities: dict[int, str]) -> dict[str, npt.NDArray[np.object_]]:
    """Per identity id, the answering site/cluster/node/pod; the last element (id -1) is None."""
    size = max(identities, default=-1) + 2
    columns = {key: np.full(size, None, dtype=object) for key in IDENTITY_KEYS}
    for ident, text in identities.items():
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(decoded, dict):
            continue
        for key in IDENTITY_KEYS:
            value = decoded.get(key)
            columns[key][ident] = value if isinstance(value, str) else None
    return columns


def probes_frame(records: ProberFile, client: str, trial: int) -> pd.DataFrame:
    """The probes.parquet rows of one prober's records (sorted by service, flow, seq)."""
    ticks = records.ticks[np.argsort(records.ticks[:, 0], kind="stable")]
    seqs, tick_ns = ticks[:, 0], ticks[:, 1]
    n, n_targets, n_flows = len(seqs), len(records.targets), records.header.flows
    total = n * n_targets * n_flows
    send = np.tile(tick_ns, n_targets * n_flows)
    recv = np.zeros(total, dtype=np.int64)
    lost = np.ones(total, dtype=bool)
    ident = np.full(total, -1, dtype=np.int64)
    rows, replies = _reply_rows(records, seqs, n)
    if len(rows):
        pos = np.searchsorted(seqs, replies[:, 2])
        send[rows] = tick_ns[pos] + replies[:, 3]
        recv[rows] = send[rows] + replies[:, 4]
        lost[rows] = False
        ident[rows] = replies[:, 5]
    services = np.array([t.service for t in records.targets], dtype=object)
    families = np.array([t.family for t in records.targets], dtype=object)
    target_of_row = np.repeat(np.arange(n_targets), n_flows * n)
    who = _identity_columns(records.identities)
    ident[(ident < 0) | (ident >= len(who["site"]) - 1)] = len(who["site"]) - 1
    rtt = (recv - send) / 1e6
    rtt[lost] = np.nan
    frame = pd.DataFrame({
        "trial": np.full(total, trial, dtype=np.int16),
        "client": np.full(total, client, dtype=object),
        "service": services[target_of_row],
        "family": families[target_of_row],
        "flow": np.tile(np.repeat(np.arange(n_flows, dtype=np.int16), n), n_targets),
        "seq": np.tile(seqs, n_targets * n_flows),
        "send_ns": send,
        "recv_ns": pd.arrays.IntegerArray(recv, lost),
        "rtt_ms": rtt,
        **{key: who[key][ident] for key in IDENTITY_KEYS},
    })
    return frame[list(PROBE_COLUMNS)]


def _reply_rows(records: ProberFile, seqs: npt.NDArray[np.int64],
                n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row index of every reply that matches a sent probe (first reply per probe only)."""
    replies = records.replies
    n_targets, n_flows = len(records.targets), records.header.flows
    if n == 0 or len(replies) == 0:
        return np.zeros(0, dtype=np.int64), replies
    pos = np.minimum(np.searchsorted(seqs, replies[:, 2]), n - 1)
    ok = ((replies[:, 0] >= 0) & (replies[:, 0] < n_targets) & (replies[:, 1] >= 0)
          & (replies[:, 1] < n_flows) & (seqs[pos] == replies[:, 2]))
    replies, pos = replies[ok], pos[ok]
    rows = (replies[:, 0] * n_flows + replies[:, 1]) * n + pos
    rows, first = np.unique(rows, return_index=True)
    return rows, replies[first]


def load_udp_probes(path: Path, client: str, trial: int) -> pd.DataFrame:
    """probes.parquet rows from one prober's record file: every probe sent, lost ones with
    null ``recv_ns``/``rtt_ms``/identity. ProbeError if the file is not a prober's."""
    return probes_frame(read_prober_file(path), client, trial)
