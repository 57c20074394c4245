"""Benchmark of the UDP prober: highest sustainable rate and CPU use, printed as JSON.

Needs root; builds its own world of namespaces (prefix ``albench-``): N clients behind one
router that spreads the VIP over 2 servers (ECMP), each server a real ``lab.apps.server``
(Python) answering 1-2 UDP services. One C prober per client probes every service at the rate under
test for ``--seconds``; the first ``--warmup`` seconds are left out ("steady state").

- ``prober_max_hz``: highest per-client probe rate (probes per second per service and flow)
  whose worst client lost < 0.1 % of its probes, trying ``--rates`` in ascending order;
- ``runs``: per rate, loss (worst client and overall), RTT median/p99, slots skipped by the
  probers, CPU of the probers (sum over clients and per prober, 1.0 = one core) and of the
  servers, and the time ``load_udp_probes`` took for all clients' records;
- ``prober_cpu_at_1khz``: the 1 kHz run's prober CPU (sum and per prober);
- ``tcpflows``: CPU of the one TCP flows process keeping ``--tcp-flows`` flows per client
  (a line every 50 ms each), and its events (all ``flow_connected``, nothing broken).

Usage: python bench/bench_prober.py [--clients 6] [--services 2] [--flows 1] [--seconds 10]
       [--warmup 1] [--rates 1000,2000,3000,5000,10000]
       [--tcp-flows 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from lab.backend.processes import stop_pids
from lab.backend.state import ProcessRecord
from lab.measure.probe.build import ensure_prober_built
from lab.measure.probe.tcpflows import start_tcp_flows
from lab.measure.probe.tcpspec import TcpFlowSpec, TcpFlowsSpec, write_tcp_flows_spec
from lab.measure.probe.udp import ProbeTarget, load_udp_probes, start_udp_prober
from tests.integration.probeworld import SERVICES, ProbeWorld, probe_world

LOSS_LIMIT = 0.001


def cpu_seconds(pid: int) -> float:
    """Time on CPU, exact (schedstat; /proc/PID/stat's tick samples miss short wake-ups)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def prober_log_notes(logs: list[Path]) -> list[str]:
    notes = set()
    for log in logs:
        if log.exists():
            notes.update(line.strip() for line in log.read_text().splitlines() if line.strip())
    return sorted(notes)


def run_rate(world: ProbeWorld, workdir: Path, rate: int, args: argparse.Namespace,
             binary: Path) -> dict[str, Any]:
    """Probe at ``rate`` per client for ``args.seconds``; loss, RTT and CPU figures."""
    targets = [ProbeTarget(str(s["name"]), world.vip, int(s["port"]))
               for s in SERVICES if s["protocol"] == "udp"][:args.services]
    interval_ms = round(1e6 / rate) / 1000  # whole microseconds
    outs = [workdir / f"r{rate}-c{i}.txt" for i in range(len(world.clients))]
    logs = [workdir / f"r{rate}-c{i}.log" for i in range(len(world.clients))]
    records: list[ProcessRecord] = []
    servers = [r.pid for r in world.processes.values()]
    try:
        for i, client in enumerate(world.clients):
            records.append(start_udp_prober(world.spawn_in(client, f"c{i}", "prober"), f"c{i}",
                                            targets, interval_ms, args.flows, outs[i], logs[i],
                                            binary=binary))
        time.sleep(args.warmup)
        cpu0 = [cpu_seconds(r.pid) for r in records]
        srv0 = [cpu_seconds(p) for p in servers]
        t0 = time.monotonic()
        time.sleep(args.seconds - args.warmup)
        elapsed = time.monotonic() - t0
        cpu = [(cpu_seconds(r.pid) - c) / elapsed for r, c in zip(records, cpu0, strict=True)]
        srv = sum(cpu_seconds(p) - c for p, c in zip(servers, srv0, strict=True)) / elapsed
        start_ns = time.monotonic_ns() - int((args.seconds - args.warmup) * 1e9)
    finally:
        stop_pids([r.pid for r in records], grace_s=3.0)
    t_load = time.monotonic()
    frames = [load_udp_probes(out, f"c{i}", 0) for i, out in enumerate(outs)]
    load_s = time.monotonic() - t_load
    probes = pd.concat(frames, ignore_index=True)
    steady = probes[probes["send_ns"] >= start_ns]
    # The last probes before SIGTERM may still be in flight: leave out the final 100 ms.
    steady = steady[steady["send_ns"] <= steady["send_ns"].max() - 100_000_000]
    lost = steady["recv_ns"].isna()
    per_client = lost.groupby(steady["client"]).mean()
    rtt = steady["rtt_ms"].dropna()
    skipped = sum(int(line.split()[2]) for out in outs for line in out.read_text().splitlines()
                  if line.startswith("K "))
    return {
        "rate_hz": rate, "probes": len(steady), "pps_total": round(len(steady) / elapsed),
        "loss_worst_client": round(float(per_client.max()), 6),
        "loss_overall": round(float(lost.mean()), 6), "lost": int(lost.sum()),
        "rtt_median_ms": round(float(rtt.median()), 4),
        "rtt_p99_ms": round(float(rtt.quantile(0.99)), 4),
        "skipped_slots": skipped,
        "prober_cpu_sum": round(sum(cpu), 4), "prober_cpu_max": round(max(cpu), 4),
        "server_cpu_sum": round(srv, 4),
        "load_s": round(load_s, 3), "rows_loaded": sum(len(f) for f in frames),
        "prober_log": prober_log_notes(logs),
    }


def run_tcp_flows(world: ProbeWorld, workdir: Path, per_client: int,
                  seconds: float) -> dict[str, Any]:
    """CPU of the TCP flows process for ``per_client`` flows per client, over ``seconds``."""
    events = workdir / "tcp-events.jsonl"
    flows = tuple(TcpFlowSpec(f"c{i}", ns, "web", world.vip, 80, k)
                  for i, ns in enumerate(world.clients) for k in range(per_client))
    spec = write_tcp_flows_spec(TcpFlowsSpec(lab=world.lab, flows=flows, events=events),
                                workdir / "tcp.json")
    record = start_tcp_flows(world.spawn_outside("tcpflows"), spec, workdir / "tcp.log")
    try:
        time.sleep(1.0)
        cpu0, t0 = cpu_seconds(record.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (cpu_seconds(record.pid) - cpu0) / (time.monotonic() - t0)
    finally:
        stop_pids([record.pid], grace_s=3.0)
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    return {"flows": len(flows), "message_interval_ms": 50, "cpu": round(cpu, 4),
            "connected": kinds.count("flow_connected"), "broken": kinds.count("flow_broken")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--services", type=int, default=2, choices=(1, 2))
    parser.add_argument("--flows", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rates", default="1000,2000,3000,5000,10000")
    parser.add_argument("--tcp-flows", type=int, default=4, help="per client; 0: skip")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_prober needs root (network namespaces)", file=sys.stderr)
        return 2
    rates = sorted(int(r) for r in args.rates.split(","))
    binary = ensure_prober_built()
    runs = []
    with tempfile.TemporaryDirectory(prefix="albench-prober-") as tmp, \
            probe_world(Path(tmp), clients=args.clients, servers=2, prefix="albench") as world:
        for rate in rates:
            result = run_rate(world, Path(tmp), rate, args, binary)
            runs.append(result)
            if result["loss_worst_client"] >= LOSS_LIMIT:
                break
        tcp = run_tcp_flows(world, Path(tmp), args.tcp_flows, args.seconds) \
            if args.tcp_flows else None
    passing = [r["rate_hz"] for r in runs if r["loss_worst_client"] < LOSS_LIMIT]
    at_1k = next((r for r in runs if r["rate_hz"] == 1000), None)
    report = {
        "prober_max_hz": max(passing, default=0),
        "prober_cpu_at_1khz": None if at_1k is None else {
            "sum_over_clients": at_1k["prober_cpu_sum"], "per_prober_max": at_1k["prober_cpu_max"],
            "servers": at_1k["server_cpu_sum"]},
        "tcpflows": tcp,
        "clients": args.clients, "services": args.services, "flows": args.flows,
        "seconds": args.seconds, "warmup_s": args.warmup, "loss_limit": LOSS_LIMIT,
        "cores": os.cpu_count(), "kernel": platform.release(), "runs": runs,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
