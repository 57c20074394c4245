"""Reading the HTTP prober's record file (format 1, written by ``lab.measure.probe.httpprobe``,
whose docstring describes it) into the rows of ``probes.parquet``.

``load_http_probes`` gives one row per probe made, like ``load_udp_probes``: ``status`` is the
HTTP status code (null for ``connect`` probes and for probes without a response); a probe is
answered when its response has a 2xx or 3xx code (or, ``connect``, when the handshake
completed); any other response leaves it lost (null ``recv_ns``, ``rtt_ms`` and identity) with
its status. The identity text (the identity header's value) is mapped through ``instances``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab.errors import ProbeError
from lab.measure.probe.httpprobe import COUNTERS, FORMAT, REASONS
from lab.measure.probe.records import IntArray
from lab.measure.probe.udp import PROBE_COLUMNS, Instances, identity_rows


@dataclass(frozen=True)
class HttpHeader:
    mode: str
    keepalive: bool
    interval_ns: int
    timeout_ns: int
    start_ns: int
    trial: int | None


@dataclass(frozen=True)
class HttpFlow:
    key: int
    client: str
    service: str
    vip: str
    port: int
    flow: int

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.vip else "ipv4"


@dataclass(frozen=True)
class HttpOutcome:
    """One probe's record: ``recv_ns`` None when lost (then ``reason`` says why)."""

    key: int
    seq: int
    send_ns: int
    recv_ns: int | None
    status: int | None
    ident: int = -1
    reason: str | None = None


@dataclass(frozen=True)
class HttpRecords:
    header: HttpHeader
    flows: dict[int, HttpFlow]
    outcomes: list[HttpOutcome] = field(default_factory=list)
    identities: dict[int, str] = field(default_factory=dict)
    skipped_slots: int = 0
    counters: dict[str, int] | None = None  # COUNTERS, when the prober exited cleanly
    stalls: tuple[tuple[int, int], ...] = ()  # (T_NS, SLOTS) of each ``K`` record


def _number(text: str) -> int | None:
    return None if text == "-" else int(text)


def _record(line: str, records: dict[str, list[list[str]]], identities: dict[int, str]) -> None:
    kind, _, rest = line.partition(" ")
    if kind == "I":
        ident, _, text = rest.partition(" ")
        identities[int(ident)] = text
        return
    fields = rest.split()
    sizes = {"H": 7, "F": 6, "A": 6, "L": 5, "K": 2}
    if kind in sizes and len(fields) != sizes[kind]:
        raise ValueError(f"{sizes[kind]} fields expected")
    if kind == "L" and fields[3] not in REASONS:
        raise ValueError(f"unknown reason {fields[3]!r}")
    records.setdefault(kind, []).append(fields)


def read_http_records(path: Path) -> HttpRecords:
    """Parse an HTTP prober's record file; ProbeError if it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProbeError(f"cannot read HTTP probe records {path}: "
                         f"{exc.strerror or exc}") from exc
    text = data[:data.rfind(b"\n") + 1].decode("ascii", errors="replace")
    records: dict[str, list[list[str]]] = {}
    identities: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            _record(line, records, identities)
        except (ValueError, IndexError) as exc:
            raise ProbeError(f"{path}:{number}: malformed record {line[:80]!r}: {exc}") \
                from exc
    heads = records.get("H")
    if not heads:
        raise ProbeError(f"{path}: not an HTTP probe record file (no header)")
    try:
        head = heads[0]
        if int(head[0]) != FORMAT:
            raise ProbeError(f"{path}: record format {head[0]}, this reader knows {FORMAT}")
        header = HttpHeader(head[1], head[2] == "1", int(head[3]), int(head[4]), int(head[5]),
                            _number(head[6]))
        flows = {int(f[0]): HttpFlow(int(f[0]), f[1], f[2], f[3], int(f[4]), int(f[5]))
                 for f in records.get("F", [])}
        outcomes = [HttpOutcome(int(a[0]), int(a[1]), int(a[2]), int(a[3]), _number(a[4]),
                                int(a[5])) for a in records.get("A", [])]
        outcomes += [HttpOutcome(int(lost[0]), int(lost[1]), int(lost[2]), None,
                                 _number(lost[4]), reason=lost[3])
                     for lost in records.get("L", [])]
        stalls = tuple((int(k[0]), int(k[1])) for k in records.get("K", []))
        skipped = sum(slots for _t, slots in stalls)
        counters = None
        if "X" in records:
            pairs = [item.split("=", 1) for item in records["X"][-1][1:]]
            counters = {name: int(count) for name, count in pairs if name in COUNTERS}
    except ValueError as exc:
        raise ProbeError(f"{path}: malformed records: {exc}") from exc
    unknown = {o.key for o in outcomes} - set(flows)
    if unknown:
        raise ProbeError(f"{path}: probes of flows without an F record: {sorted(unknown)}")
    return HttpRecords(header, flows, outcomes, identities, skipped, counters, stalls)


def answered(status: int | None) -> bool:
    """Whether a response with ``status`` answers the probe (None: a handshake)."""
    return status is None or 200 <= status <= 399


def http_probes_frame(records: HttpRecords, trial: int,
                      instances: Instances | None = None) -> pd.DataFrame:
    """The probes.parquet rows of one HTTP prober's records (sorted by flow, seq). A slot
    whose probe was not made because the previous request was still unanswered (``busy``)
    is no row, as a slot the UDP prober skipped: the request that keeps the connection busy
    is the probe that answers, or is lost, for that time."""
    outcomes = sorted((o for o in records.outcomes if o.reason != "busy"),
                      key=lambda o: (o.key, o.seq))
    n = len(outcomes)
    flows = [records.flows[o.key] for o in outcomes]
    send = np.array([o.send_ns for o in outcomes], dtype=np.int64)
    lost = np.array([o.recv_ns is None or not answered(o.status) for o in outcomes], dtype=bool)
    recv = np.array([o.recv_ns or 0 for o in outcomes], dtype=np.int64)
    recv[lost] = 0
    no_status = np.array([o.status is None for o in outcomes], dtype=bool)
    status = np.array([o.status or 0 for o in outcomes], dtype=np.int32)
    ident: IntArray = np.array([o.ident for o in outcomes], dtype=np.int64)
    ident[lost] = -1
    rtt = (recv - send) / 1e6
    rtt[lost] = np.nan
    frame = pd.DataFrame({
        "trial": np.full(n, trial, dtype=np.int16),
        "client": np.array([f.client for f in flows], dtype=object),
        "service": np.array([f.service for f in flows], dtype=object),
        "family": np.array([f.family for f in flows], dtype=object),
        "flow": np.array([f.flow for f in flows], dtype=np.int16),
        "seq": np.array([o.seq for o in outcomes], dtype=np.int64),
        "send_ns": send,
        "recv_ns": pd.arrays.IntegerArray(recv, lost),
        "rtt_ms": rtt,
        "status": pd.arrays.IntegerArray(status, no_status),
        **identity_rows(ident, records.identities, instances),
    })
    return frame[list(PROBE_COLUMNS)]


# The prober's selector wakes with millisecond resolution (lab.measure.probe.httpprobe): a
# probe sent up to a millisecond after its slot is on time
HTTP_LATE_NS = 2_000_000


def http_prober_timing(records: HttpRecords) -> dict[str, Any]:
    """How well one HTTP prober kept its schedule, as ``lab.run.instrument.prober_timing``
    says it of a UDP prober: ``ticks`` (slots at which its flows probed), ``late_2ms`` (probes
    sent more than 2 ms after their slot), slots skipped, the longest stall and when it
    ended."""
    interval, start = records.header.interval_ns, records.header.start_ns
    per_flow: dict[int, int] = {}
    late = 0
    for outcome in records.outcomes:
        per_flow[outcome.key] = max(per_flow.get(outcome.key, 0), outcome.seq + 1)
        if interval > 0 and (outcome.send_ns - start) % interval > HTTP_LATE_NS:
            late += 1
    longest = max(records.stalls, key=lambda stall: stall[1], default=None)
    return {"ticks": max(per_flow.values(), default=0), "late_2ms": late,
            "skipped_slots": records.skipped_slots,
            "longest_stall_ms": round((longest[1] + 1) * interval / 1e6, 3) if longest else 0.0,
            "longest_stall_at_ns": longest[0] if longest else None}


def load_http_probes(path: Path, trial: int, instances: Instances | None = None) -> pd.DataFrame:
    """probes.parquet rows from one HTTP prober's record file: every probe made, lost ones
    (and non-2xx/3xx responses) with null ``recv_ns``/``rtt_ms``/identity. ProbeError if the
    file is not an HTTP prober's."""
    return http_probes_frame(read_http_records(path), trial, instances)
