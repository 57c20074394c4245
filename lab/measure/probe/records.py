"""Reading the UDP prober's record file (format 1, written by ``csrc/prober.c``).

One record per line, a type letter and space-separated fields (all integers but the names):

======  =============================================  ==========================================
letter  fields                                          meaning
======  =============================================  ==========================================
``P``   1 NONCE INTERVAL_NS FLOWS LATE_NS START_NS      header: format, run nonce, timing
``T``   TARGET SERVICE IP PORT                          a target (index from 0)
``F``   TARGET FLOW LOCAL_PORT                          a flow socket's source port
``S``   SEQ T_NS                                        tick SEQ: one probe per flow from T_NS
``E``   TARGET FLOW SEQ ERRNO                           that probe's send failed
``K``   T_NS SLOTS                                      SLOTS slots skipped (never sent)
``I``   ID IDENTITY                                     the server identity (JSON text) of ID
``R``   TARGET FLOW SEQ SEND_OFF_NS RTT_NS ID           first reply in time to that probe
``X``   T_NS TICKS SENT ERRORS REPLIES DUPS LATE BAD    counters at exit
        SKIPPED
======  =============================================  ==========================================

Every tick sends one probe per (target, flow) with the same SEQ; seq counts sent ticks without
gaps, so a skipped slot (prober stalled) is no row at all while a probe without an ``R`` is
lost. A probe's send time is its tick's T_NS + SEND_OFF_NS (the exact stamp it carried; for a
lost probe the tick's T_NS, at most a few microseconds early), its receive time send + RTT_NS.
A failed send (``E``) counts as lost: the attempt was made at its slot. An unfinished last line
(a killed writer) is ignored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from lab.errors import ProbeError

FORMAT = 1
IntArray = npt.NDArray[np.int64]
REPLY_COLUMNS = ("target", "flow", "seq", "send_off_ns", "rtt_ns", "ident")
STAT_COLUMNS = ("t_ns", "ticks", "sent", "errors", "replies", "dups", "late", "bad", "skipped")
_NUMERIC = {b"S": 2, b"E": 4, b"K": 2, b"R": 6, b"X": 9}


@dataclass(frozen=True)
class FileTarget:
    index: int
    service: str
    ip: str
    port: int

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
            for kind in (*_NUMERIC, b"P", b"T", b"F", b"I")}


def _text_lines(blob: bytes) -> list[bytes]:
    """Text records without their letter and space."""
    return [line[2:] for line in blob.split(b"\n") if line]


def _header(lines: list[bytes], path: Path) -> ProberHeader:
    if not lines:
        raise ProbeError(f"{path}: not a prober record file (no header)")
    fields = lines[0].split()
    if len(fields) != 6 or not all(f.lstrip(b"-").isdigit() for f in fields):
        raise ProbeError(f"{path}: malformed header {lines[0]!r}")
    values = [int(f) for f in fields]
    if values[0] != FORMAT:
        raise ProbeError(f"{path}: record format {values[0]}, this reader knows {FORMAT}")
    return ProberHeader(*values[1:])


def _targets(lines: list[bytes], path: Path) -> tuple[FileTarget, ...]:
    targets = []
    for line in lines:
        fields = line.decode(errors="replace").split()
        if len(fields) != 4 or not fields[0].isdigit() or not fields[3].isdigit():
            raise ProbeError(f"{path}: malformed target record {line!r}")
        targets.append(FileTarget(int(fields[0]), fields[1], fields[2], int(fields[3])))
    if [t.index for t in targets] != list(range(len(targets))):
        raise ProbeError(f"{path}: target records out of order")
    return tuple(targets)


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
    stats = _numeric(groups[b"X"], 9, path, "X")
    return ProberFile(
        header=header,
        targets=_targets(_text_lines(groups[b"T"]), path),
        ports={(int(t), int(f)): int(p) for t, f, p in flow_ports},
        ticks=_numeric(groups[b"S"], 2, path, "S"),
        replies=_numeric(groups[b"R"], 6, path, "R"),
        errors=_numeric(groups[b"E"], 4, path, "E"),
        skips=_numeric(groups[b"K"], 2, path, "K"),
        identities=_identities(_text_lines(groups[b"I"])),
        stats=dict(zip(STAT_COLUMNS, (int(v) for v in stats[-1]), strict=True))
        if len(stats) else None,
    )
