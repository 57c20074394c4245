"""Reading the UDP prober's record file (formats 1 and 2, written by ``csrc/prober.c``).

One record per line, a type letter and space-separated fields (all integers but the names):

======  =============================================  ==========================================
letter  fields                                          meaning
======  =============================================  ==========================================
``P``   1 NONCE INTERVAL_NS FLOWS LATE_NS START_NS      header: format, run nonce, timing
``P``   2 NONCE INTERVAL_NS FLOWS LATE_NS START_NS      ... format 2: ROTATE 1, flows in turn
        ROTATE
``T``   TARGET SERVICE IP PORT                          a target (index from 0)
``D``   TARGET QTYPE IDENTITY NAME                      that target is asked a DNS query
``F``   TARGET FLOW LOCAL_PORT                          a flow socket's source port
``S``   SEQ T_NS                                        tick SEQ: one probe per flow (rotating:
                                                        per target) from T_NS
``E``   TARGET FLOW SEQ ERRNO                           that probe's send failed
``K``   T_NS SLOTS                                      SLOTS slots skipped (never sent)
``I``   ID IDENTITY                                     the server identity of ID (JSON text;
                                                        a DNS target's: NSID or TXT, see below)
``R``   TARGET FLOW SEQ SEND_OFF_NS RTT_NS ID           first reply in time to that probe
``N``   TARGET FLOW SEQ SEND_OFF_NS RTT_NS RCODE ID     ... when it is a failed DNS answer
``X``   T_NS TICKS SENT ERRORS REPLIES DUPS LATE BAD    counters at exit (FAILED: failed answers,
        SKIPPED [FAILED]                                only when a target is DNS)
======  =============================================  ==========================================

Every tick sends one probe per (target, flow) with the same SEQ; seq counts sent ticks without
gaps, so a skipped slot (prober stalled) is no row at all while a probe without an ``R`` is
lost. A rotating prober (format 2, ROTATE 1) sends on one flow per target in turn instead: tick
SEQ on flow SEQ % FLOWS of every target, so each flow's seqs are FLOWS apart; its other records
are format 1's. A prober without rotation writes format 1. A probe's send time is its tick's
T_NS + SEND_OFF_NS (its exact send stamp; for an unanswered probe the tick's T_NS, at most a
few microseconds early), its receive time send + RTT_NS.
A failed send (``E``) counts as lost: the attempt was made at its slot. An unfinished last line
(a killed writer) is ignored.

DNS targets (``D``; IDENTITY ``nsid``, ``chaos`` or ``none``, see ``DnsQuery``): a NOERROR
answer with at least one answer record is an ``R``; any other first answer in time is an ``N``,
with its RCODE (extended bits included; -1: the answer is malformed beyond its question) and
the identity it carried, if any. An identity that is not printable ASCII is written as ``0x``
and its bytes in hex. ``D``, ``N`` and FAILED came with DNS targets, in format 1: a file without
them is read as before.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from lab.errors import ProbeError
from lab.measure.probe.dns import DnsQuery, Identity

FORMATS = {1: 6, 2: 7}  # format -> header fields (format 2 adds ROTATE)
IntArray = npt.NDArray[np.int64]
REPLY_COLUMNS = ("target", "flow", "seq", "send_off_ns", "rtt_ns", "ident")
FAILURE_COLUMNS = ("target", "flow", "seq", "send_off_ns", "rtt_ns", "rcode", "ident")
STAT_COLUMNS = ("t_ns", "ticks", "sent", "errors", "replies", "dups", "late", "bad", "skipped",
                "failed")
_NUMERIC = {b"S": 2, b"E": 4, b"K": 2, b"R": 6, b"N": 7}


@dataclass(frozen=True)
class FileTarget:
    index: int
    service: str
    ip: str
    port: int
    dns: DnsQuery | None = None

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.ip else "ipv4"


@dataclass(frozen=True)
class ProberHeader:
    nonce: int
    interval_ns: int
    flows: int
    late_ns: int
    start_ns: int
    rotate: bool = False  # one flow per target and tick, in turn (format 2)


def _empty(columns: int) -> IntArray:
    return np.zeros((0, columns), dtype=np.int64)


@dataclass(frozen=True)
class ProberFile:
    """Everything one prober wrote, as arrays (one row per record)."""

    header: ProberHeader
    targets: tuple[FileTarget, ...]
    ports: dict[tuple[int, int], int]  # (target, flow) -> local UDP port
    ticks: IntArray = field(default_factory=lambda: _empty(2))  # seq, t_ns
    replies: IntArray = field(default_factory=lambda: _empty(6))  # REPLY_COLUMNS
    failures: IntArray = field(default_factory=lambda: _empty(7))  # FAILURE_COLUMNS
    errors: IntArray = field(default_factory=lambda: _empty(4))  # target, flow, seq, errno
    skips: IntArray = field(default_factory=lambda: _empty(2))  # t_ns, slots
    identities: dict[int, str] = field(default_factory=dict)
    stats: dict[str, int] | None = None  # STAT_COLUMNS, when the prober exited cleanly

    @property
    def skipped_slots(self) -> int:
        return int(self.skips[:, 1].sum())


def _numeric(blob: bytes, columns: int, path: Path, kind: str) -> IntArray:
    """Parse integer records (whole lines, letter first) into an (n, columns) array."""
    if not blob:
        return _empty(columns)
    try:
        names = [f"c{i}" for i in range(columns)]
        frame = pd.read_csv(io.BytesIO(blob), sep=" ", header=None, names=["kind", *names],
                            usecols=names, dtype=dict.fromkeys(names, np.int64), engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise ProbeError(f"{path}: malformed {kind!r} records: {exc}") from exc
    return frame.to_numpy(dtype=np.int64)


def _split(data: bytes) -> dict[bytes, bytes]:
    """The complete lines of each type letter, concatenated (vectorised: no loop per line)."""
    end = data.rfind(b"\n")
    buf = np.frombuffer(data, dtype=np.uint8, count=end + 1)
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], newlines[:-1] + 1)) if len(newlines) else newlines
    lengths = newlines + 1 - starts
    kinds = buf[starts]
    return {kind: buf[np.repeat(kinds == kind[0], lengths)].tobytes()
            for kind in (*_NUMERIC, b"P", b"T", b"D", b"F", b"I", b"X")}


def _text_lines(blob: bytes) -> list[bytes]:
    """Text records without their letter and space."""
    return [line[2:] for line in blob.split(b"\n") if line]


def _header(lines: list[bytes], path: Path) -> ProberHeader:
    if not lines:
        raise ProbeError(f"{path}: not a prober record file (no header)")
    fields = lines[0].split()
    malformed = f"{path}: malformed header {lines[0]!r}"
    if not fields or not all(f.lstrip(b"-").isdigit() for f in fields):
        raise ProbeError(malformed)
    values = [int(f) for f in fields]
    if values[0] not in FORMATS:
        known = ", ".join(map(str, FORMATS))
        raise ProbeError(f"{path}: record format {values[0]}, this reader knows {known}")
    rotate = values[6:] == [1]
    if len(values) != FORMATS[values[0]] or values[6:] not in ([], [0], [1]) \
            or (rotate and values[3] < 1):  # rotating needs a flow to rotate over
        raise ProbeError(malformed)
    nonce, interval_ns, flows, late_ns, start_ns = values[1:6]
    return ProberHeader(nonce, interval_ns, flows, late_ns, start_ns, rotate)


def _queries(lines: list[bytes], path: Path) -> dict[int, DnsQuery]:
    queries = {}
    for line in lines:
        fields = line.decode(errors="replace").split()
        try:
            if len(fields) != 4 or not fields[0].isdigit() or not fields[1].isdigit():
                raise ProbeError("not TARGET QTYPE IDENTITY NAME")
            identity = cast(Identity, fields[2])
            queries[int(fields[0])] = DnsQuery(fields[3], int(fields[1]), identity)
        except ProbeError as exc:
            raise ProbeError(f"{path}: malformed DNS record {line!r}: {exc}") from exc
    return queries


def _targets(lines: list[bytes], dns_lines: list[bytes], path: Path) -> tuple[FileTarget, ...]:
    queries = _queries(dns_lines, path)
    targets = []
    for line in lines:
        fields = line.decode(errors="replace").split()
        if len(fields) != 4 or not fields[0].isdigit() or not fields[3].isdigit():
            raise ProbeError(f"{path}: malformed target record {line!r}")
        index = int(fields[0])
        targets.append(FileTarget(index, fields[1], fields[2], int(fields[3]),
                                  queries.pop(index, None)))
    if [t.index for t in targets] != list(range(len(targets))):
        raise ProbeError(f"{path}: target records out of order")
    if queries:
        raise ProbeError(f"{path}: DNS records of no target: {sorted(queries)}")
    return tuple(targets)


def _stats(lines: list[bytes], path: Path) -> dict[str, int] | None:
    """The last ``X`` record; FAILED (absent when no target is DNS) is then 0."""
    if not lines:
        return None
    fields = lines[-1].split()
    if len(fields) not in (len(STAT_COLUMNS) - 1, len(STAT_COLUMNS)) \
            or not all(f.isdigit() for f in fields):
        raise ProbeError(f"{path}: malformed 'X' record {lines[-1]!r}")
    return dict(zip(STAT_COLUMNS, [*map(int, fields), 0][:len(STAT_COLUMNS)], strict=True))


def _identities(lines: list[bytes]) -> dict[int, str]:
    found = {}
    for line in lines:
        key, _, text = line.partition(b" ")
        if key.isdigit():
            found[int(key)] = text.decode(errors="replace")
    return found


def read_prober_file(path: Path) -> ProberFile:
    """Parse a prober's record file; ProbeError if it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProbeError(f"cannot read prober records {path}: {exc.strerror or exc}") from exc
    groups = _split(data)
    header = _header(_text_lines(groups[b"P"]), path)
    flow_ports = _numeric(groups[b"F"], 3, path, "F")
    return ProberFile(
        header=header,
        targets=_targets(_text_lines(groups[b"T"]), _text_lines(groups[b"D"]), path),
        ports={(int(t), int(f)): int(p) for t, f, p in flow_ports},
        ticks=_numeric(groups[b"S"], 2, path, "S"),
        replies=_numeric(groups[b"R"], 6, path, "R"),
        failures=_numeric(groups[b"N"], 7, path, "N"),
        errors=_numeric(groups[b"E"], 4, path, "E"),
        skips=_numeric(groups[b"K"], 2, path, "K"),
        identities=_identities(_text_lines(groups[b"I"])),
        stats=_stats(_text_lines(groups[b"X"]), path),
    )
