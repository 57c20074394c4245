"""Self-monitoring: what the machine and the lab's own parts did while a trial was measured.

The lab emulates delay in a userspace process, answers probes with userspace servers and
probes with userspace probers, all on a shared machine: when they fall behind, the probes show
loss and delay that no router caused. So every trial records, from its start to its end:

- **host**: CPU time of all cores by state (``/proc/stat``: busy and steal shares), the
  CPU pressure (``/proc/pressure/cpu`` "some": the share of time in which a runnable task
  waited for a CPU), and the kernel's receive backlog (``/proc/net/softnet_stat``: packets
  dropped because the backlog was full, and softirq rounds cut short for lack of time; the
  emulator's frames and every veth hop pass through it);
- **emulator**: frames the link emulator forwarded, sent later than due (by more than 0.5, 2
  and 10 ms), and lost because it fell behind (kernel socket overruns);
- **sockets**: UDP datagrams dropped for lack of socket buffer (``RcvbufErrors`` of
  ``/proc/PID/net/snmp`` and ``snmp6``) in the clients (the probers) and the pods (the
  services' servers; a fault that freezes a pod fills its buffer on purpose).

The deltas go into events.jsonl as one ``runner``/``instrument`` event per trial; the
probers' own timing comes from their record files (``prober_timing``), and
``lab.measure.metrics.instrument`` judges all of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab.backend.state import ProcessRecord
from lab.errors import LabError
from lab.impair import ImpairmentDriver
from lab.measure.probe.records import ProberFile

EMULATOR_COUNTERS = ("forwarded", "late_500us", "late_2ms", "late_10ms", "dropped_overrun",
                     "dropped_error")
PROC = Path("/proc")


@dataclass(frozen=True)
class Snapshot:
    """Cumulative counters at one instant."""

    cpu: tuple[int, int, int]  # busy, steal, total jiffies of all cores
    cpu_pressure_us: int | None  # /proc/pressure/cpu "some" total; None without PSI
    softnet: tuple[int, int]  # backlog drops, time squeezes (all CPUs)
    emulator: dict[str, int] | None  # EMULATOR_COUNTERS summed over links; None: no emulator
    # per process kind ("server": pods, "prober": clients), per namespace (node)
    rcvbuf_errors: dict[str, dict[str, int]] = field(default_factory=dict)


def _cpu_jiffies(proc: Path = PROC) -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of all cores: busy is user, nice, system, irq and
    softirq; idle and iowait are not busy; guest time is already in user."""
    fields = [int(v) for v in (proc / "stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


def _softnet(proc: Path = PROC) -> tuple[int, int]:
    """(packets dropped for a full backlog, softirq rounds out of budget or time), summed
    over CPUs: columns 2 and 3 of /proc/net/softnet_stat (hexadecimal)."""
    dropped = squeezed = 0
    with contextlib.suppress(OSError):
        for line in (proc / "net" / "softnet_stat").read_text().splitlines():
            columns = line.split()
            if len(columns) >= 3:
                dropped += int(columns[1], 16)
                squeezed += int(columns[2], 16)
    return dropped, squeezed


def _cpu_pressure_us(proc: Path = PROC) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (proc / "pressure" / "cpu").read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1])
    return None


def udp_rcvbuf_errors(pid: int, proc: Path = PROC) -> int | None:
    """UDP datagrams (IPv4 and IPv6) dropped for lack of receive buffer in the network
    namespace of ``pid``; None when the process is gone."""
    try:
        snmp = (proc / str(pid) / "net" / "snmp").read_text().splitlines()
        snmp6 = (proc / str(pid) / "net" / "snmp6").read_text().splitlines()
    except OSError:
        return None
    total = 0
    udp = [line.split()[1:] for line in snmp if line.startswith("Udp:")]
    if len(udp) == 2 and "RcvbufErrors" in udp[0]:
        total += int(udp[1][udp[0].index("RcvbufErrors")])
    for line in snmp6:
        name, _, value = line.partition(" ")
        if name == "Udp6RcvbufErrors":
            total += int(value.strip() or 0)
    return total


def emulator_counters(driver: ImpairmentDriver) -> dict[str, int] | None:
    """EMULATOR_COUNTERS summed over both directions of every emulated link; None when the
    lab's links are not emulated in userspace."""
    if driver.kind != "userspace":
        return None
    totals = dict.fromkeys(EMULATOR_COUNTERS, 0)
    for link_id in driver.link_ids():
        status = driver.get(link_id)
        for direction in (status.a_to_b, status.b_to_a):
            for name in EMULATOR_COUNTERS:
                totals[name] += int(getattr(direction.counters, name))
    return totals


def snapshot(driver: ImpairmentDriver | None, processes: Iterable[ProcessRecord]) -> Snapshot:
    """The counters now. ``processes``: one per namespace whose UDP drops count (a server
    per pod, a prober per client)."""
    emulator = None
    if driver is not None:
        with contextlib.suppress(LabError, OSError):
            emulator = emulator_counters(driver)
    drops: dict[str, dict[str, int]] = {}
    for record in processes:
        of_kind = drops.setdefault(record.kind, {})
        if record.node not in of_kind and (count := udp_rcvbuf_errors(record.pid)) is not None:
            of_kind[record.node] = count
    return Snapshot(_cpu_jiffies(), _cpu_pressure_us(), _softnet(), emulator, drops)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole > 0 else None


def trial_fields(start: Snapshot, end: Snapshot, elapsed_ns: int) -> dict[str, Any]:
    """The ``instrument`` event of a trial: what changed from ``start`` to ``end``."""
    busy, steal, total = (b - a for a, b in zip(start.cpu, end.cpu, strict=True))
    pressure = None
    if start.cpu_pressure_us is not None and end.cpu_pressure_us is not None and elapsed_ns:
        pressure = round((end.cpu_pressure_us - start.cpu_pressure_us) * 1000 / elapsed_ns, 4)
    fields: dict[str, Any] = {
        "host": {"cpu_busy": _share(busy, total), "cpu_steal": _share(steal, total),
                 "cpu_pressure": pressure,
                 "backlog_drops": end.softnet[0] - start.softnet[0],
                 "softirq_squeezes": end.softnet[1] - start.softnet[1]},
        "emulator": None}
    if start.emulator is not None and end.emulator is not None:
        fields["emulator"] = {name: end.emulator[name] - start.emulator.get(name, 0)
                              for name in EMULATOR_COUNTERS}
    for kind, label in (("prober", "client_rcvbuf_errors"), ("server", "pod_rcvbuf_errors")):
        before, after = start.rcvbuf_errors.get(kind, {}), end.rcvbuf_errors.get(kind, {})
        fields[label] = {node: count - before[node] for node, count in sorted(after.items())
                         if node in before and count > before[node]}
    return fields


def prober_timing(records: ProberFile) -> dict[str, Any]:
    """How well one prober kept its schedule: ticks sent, ticks that began more than 0.5 ms
    after their slot, slots skipped (stalls longer than an interval), the longest stall and
    when it ended (on the run's clock)."""
    interval, start = records.header.interval_ns, records.header.start_ns
    late = (records.ticks[:, 1] - start) % interval if interval > 0 else np.zeros(0)
    skips = records.skips[:, 1] if len(records.skips) else np.zeros(0, dtype=np.int64)
    return {"ticks": len(records.ticks), "late_500us": int((late > 500_000).sum()),
            "skipped_slots": int(skips.sum()),
            "longest_stall_ms": round(float(skips.max() + 1) * interval / 1e6, 3)
            if len(skips) else 0.0,
            "longest_stall_at_ns": int(records.skips[int(skips.argmax()), 0])
            if len(skips) else None}


def namespace_processes(processes: Iterable[ProcessRecord],
                        kinds: Collection[str]) -> list[ProcessRecord]:
    """One process per node among ``processes`` of the given kinds."""
    chosen: dict[str, ProcessRecord] = {}
    for record in processes:
        if record.kind in kinds:
            chosen.setdefault(record.node, record)
    return list(chosen.values())


__all__ = ["EMULATOR_COUNTERS", "Snapshot", "emulator_counters", "namespace_processes",
           "prober_timing", "snapshot", "trial_fields", "udp_rcvbuf_errors"]
