"""UDP probing of anycast services: start the C prober in a client namespace, load its records.

``start_udp_prober`` runs one prober process in a client (started by the caller's spawn: the
backend puts it in the client's namespace, tagged with the lab); ``load_udp_probes`` turns its
record file (see ``lab.measure.probe.records``) into the rows of ``probes.parquet``: one per
probe sent, lost ones with null receive time, RTT and identity. A target with ``dns`` is asked a
DNS query (``DnsQuery``) instead of the built-in server's echo. With ``rotate`` a tick probes
one flow per target, in turn, instead of every flow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from lab.backend.processes import Spawn
from lab.backend.state import ProcessRecord
from lab.errors import BackendError, ProbeError
from lab.measure.metrics.probes import DEFAULT_REPLY_TIMEOUT_NS
from lab.measure.probe.build import ensure_prober_built
from lab.measure.probe.dns import DnsQuery
from lab.measure.probe.records import IntArray, ProberFile, read_prober_file

DEFAULT_RT_PRIORITY = 5  # SCHED_FIFO, below the link emulator's 10: it carries the probes
MIN_INTERVAL_US = 10
MAX_FLOWS = 64
MAX_TARGETS = 16
DNS_MAX_WINDOW = 1 << 16  # DNS probes are told apart by their 16-bit message ID
PROBE_COLUMNS = ("trial", "client", "service", "family", "flow", "seq", "send_ns", "recv_ns",
                 "rtt_ms", "status", "site", "cluster", "node", "pod")
IDENTITY_KEYS = ("site", "cluster", "node", "pod")
Instances = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ProbeTarget:
    """One service a client probes: its name and anycast address (IPv4 or IPv6; a
    dual-stack service is two targets of one name, probed alike), and the DNS query it is
    asked (None: the built-in server's echo)."""

    service: str
    vip: str
    port: int
    dns: DnsQuery | None = None

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
    if len({(t.service, t.dns) for t in targets}) != len({t.service for t in targets}):
        raise ProbeError("the targets of one service must ask the same DNS query (or none)")
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
                rt_priority: int = DEFAULT_RT_PRIORITY, drain_ms: int | None = None,
                rotate: bool = False) -> list[str]:
    """The prober's command line (checked: ProbeError names the bad argument). ``rotate``:
    each tick probes one of the ``flows`` per target, in turn (tick seq: flow seq % flows)."""
    _check_targets(targets)
    if not 1 <= flows <= MAX_FLOWS:
        raise ProbeError(f"flows must be between 1 and {MAX_FLOWS}, not {flows}")
    micros = interval_us(interval_ms)
    argv = [str(binary), "--interval-us", str(micros), "--out", str(out), "--flows", str(flows)]
    if rotate:
        argv.append("--rotate")
    for target in targets:
        argv += ["--target", f"{target.service}={target.address}"]
    queries = {t.service: t.dns for t in targets if t.dns is not None}
    if queries and DEFAULT_REPLY_TIMEOUT_NS // (micros * 1000) + 2 >= DNS_MAX_WINDOW:
        raise ProbeError(f"DNS probes every {micros} us are too many to tell apart in the "
                         f"{DEFAULT_REPLY_TIMEOUT_NS // 10**9} s reply timeout")
    for service, query in queries.items():
        argv += ["--dns", f"{service}={query.spec}"]
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
                     binary: Path | None = None, drain_ms: int | None = None,
                     rotate: bool = False) -> ProcessRecord:
    """Start the prober of ``client`` with ``spawn`` (which runs it in the client), building
    it if needed. It writes ``out`` until SIGTERM (or ``duration_ms``); stop it with
    ``stop_pids``. ``rotate``: see ``prober_argv``."""
    argv = prober_argv(binary or ensure_prober_built(), targets, interval_ms, flows, out,
                       duration_ms=duration_ms, rt_priority=rt_priority, drain_ms=drain_ms,
                       rotate=rotate)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        return spawn(argv, log)
    except BackendError as exc:
        raise ProbeError(f"cannot start the prober of {client}: {exc}") from exc


def identity_columns(identities: dict[int, str],
                     instances: Instances | None) -> dict[str, npt.NDArray[np.object_]]:
    """Per identity id, the answering site/cluster/node/pod; the last element (id -1) is None.
    An identity is the built-in server's JSON object, or text that ``instances`` maps (a real
    server's NSID or CHAOS TXT); any other leaves them None."""
    size = max(identities, default=-1) + 2
    columns = {key: np.full(size, None, dtype=object) for key in IDENTITY_KEYS}
    for ident, text in identities.items():
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            decoded = (instances or {}).get(text)
            if decoded is None:
                continue
        for key in IDENTITY_KEYS:
            value = decoded.get(key)
            columns[key][ident] = value if isinstance(value, str) else None
    return columns


def identity_rows(ident: IntArray, identities: dict[int, str],
                  instances: Instances | None) -> dict[str, npt.NDArray[np.object_]]:
    """The site/cluster/node/pod columns of rows whose identity ids are ``ident`` (an id
    that is not in ``identities``, e.g. -1: None)."""
    who = identity_columns(identities, instances)
    none = len(who["site"]) - 1
    ident = np.where((ident < 0) | (ident >= none), none, ident)
    return {key: who[key][ident] for key in IDENTITY_KEYS}


def probes_frame(records: ProberFile, client: str, trial: int,
                 instances: Instances | None = None) -> pd.DataFrame:
    """The probes.parquet rows of one prober's records (sorted by target, flow, seq): one per
    probe sent, every flow at every tick or, rotating, each tick's flow only.

    ``status`` is a DNS target's answer RCODE (-1: malformed), null for echo targets and
    unanswered probes; a failed answer (an ``N`` record) leaves its probe lost.
    ``instances`` maps a real server's identity text to its site/cluster/node/pod."""
    ticks = records.ticks[np.argsort(records.ticks[:, 0], kind="stable")]
    seqs, tick_ns = ticks[:, 0], ticks[:, 1]
    n, n_targets = len(seqs), len(records.targets)
    keys = _sent_keys(seqs, records.header.flows, records.header.rotate)
    flow, pos = np.divmod(keys, max(n, 1))
    total = len(keys) * n_targets
    send = np.tile(tick_ns[pos], n_targets)
    recv = np.zeros(total, dtype=np.int64)
    lost = np.ones(total, dtype=bool)
    ident = np.full(total, -1, dtype=np.int64)
    status = np.zeros(total, dtype=np.int32)
    no_status = np.ones(total, dtype=bool)
    rows, failures, sent = _answer_rows(records.failures, records, seqs, tick_ns, keys)
    send[rows] = sent
    status[rows], no_status[rows] = failures[:, 5], False
    # a reply outranks a failed answer to the same probe
    rows, replies, sent = _answer_rows(records.replies, records, seqs, tick_ns, keys)
    send[rows] = sent
    recv[rows] = sent + replies[:, 4]
    lost[rows] = False
    ident[rows] = replies[:, 5]
    dns = rows[np.array([t.dns is not None for t in records.targets], dtype=bool)[replies[:, 0]]]
    status[dns], no_status[dns] = 0, False
    services = np.array([t.service for t in records.targets], dtype=object)
    families = np.array([t.family for t in records.targets], dtype=object)
    target_of_row = np.repeat(np.arange(n_targets), len(keys))
    who = identity_rows(ident, records.identities, instances)
    rtt = (recv - send) / 1e6
    rtt[lost] = np.nan
    frame = pd.DataFrame({
        "trial": np.full(total, trial, dtype=np.int16),
        "client": np.full(total, client, dtype=object),
        "service": services[target_of_row],
        "family": families[target_of_row],
        "flow": np.tile(flow.astype(np.int16), n_targets),
        "seq": np.tile(seqs[pos], n_targets),
        "send_ns": send,
        "recv_ns": pd.arrays.IntegerArray(recv, lost),
        "rtt_ms": rtt,
        "status": pd.arrays.IntegerArray(status, no_status),
        **who,
    })
    return frame[list(PROBE_COLUMNS)]


def _sent_keys(seqs: IntArray, flows: int, rotate: bool) -> IntArray:
    """The probes one target was sent, as flow * len(seqs) + tick position (``seqs`` sorted),
    ascending: the order of its rows. Every flow at every tick or, rotating, flow seq % flows
    at tick seq."""
    n = len(seqs)
    if not rotate:
        return np.arange(flows * n, dtype=np.int64)
    return np.sort((seqs % flows) * n + np.arange(n, dtype=np.int64))


def _answer_rows(answers: IntArray, records: ProberFile, seqs: IntArray, tick_ns: IntArray,
                 keys: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Row index of every answer (``R`` or ``N`` records: target, flow, seq, send offset
    first) that matches a sent probe (``keys``, see ``_sent_keys``; first answer per probe
    only), those answers and their send times."""
    n, n_targets, n_flows = len(seqs), len(records.targets), records.header.flows
    if len(keys) == 0 or len(answers) == 0:  # no probe sent (no tick) or none answered
        return np.zeros(0, dtype=np.int64), answers[:0], np.zeros(0, dtype=np.int64)
    pos = np.minimum(np.searchsorted(seqs, answers[:, 2]), n - 1)
    key = answers[:, 1] * n + pos
    at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    ok = ((answers[:, 0] >= 0) & (answers[:, 0] < n_targets) & (answers[:, 1] >= 0)
          & (answers[:, 1] < n_flows) & (seqs[pos] == answers[:, 2]) & (keys[at] == key))
    answers, pos, at = answers[ok], pos[ok], at[ok]
    rows = answers[:, 0] * len(keys) + at
    rows, first = np.unique(rows, return_index=True)
    return rows, answers[first], tick_ns[pos[first]] + answers[first, 3]


def load_udp_probes(path: Path, client: str, trial: int,
                    instances: Instances | None = None) -> pd.DataFrame:
    """probes.parquet rows from one prober's record file: every probe sent, lost ones with
    null ``recv_ns``/``rtt_ms``/identity (see ``probes_frame``). ProbeError if the file is not
    a prober's."""
    return probes_frame(read_prober_file(path), client, trial, instances)
