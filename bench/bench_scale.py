"""A generated lab with hundreds of BGP speakers: time to ready and memory per router.

    sudo .venv/bin/python bench/bench_scale.py [--sites 8 --leafs 8 --nodes 32] [--timeout 600]
                                               [--bfd-interval 300 | --no-bfd] [--merge-memory]

Generates the topology with `anylab generate` (8 x 8 x 32 gives 344 speakers: 8 transits,
16 spines, 64 leafs, 256 cluster nodes; 8 x 8 x 114 gives 1,000), brings it up once (it loads
the machine heavily, so it runs once, not N times), measures memory while it is ready, then
takes it down.

Figures: ``scale_speakers``, ``scale_up_s`` (until ready, or until the timeout: then
``scale_ready`` is false and ``scale_not_ready`` says what was missing), ``scale_down_s``,
``rss_mb_per_router`` / ``pss_mb_per_router`` (median over FRR routers, i.e. transits, spines
and leafs, of the sum of their daemons zebra + bgpd + bfdd + staticd), the same per cluster
node (gobgpd + bfdd + agent) and per pod (its server), and per speaker (all of the lab's
processes, pods included, divided by the speakers). PSS (/proc/PID/smaps_rollup) splits shared
pages among the processes mapping them, so it is the fairer figure when hundreds of daemons
share FRR's libraries. Also kept: every progress message with its instant (``timeline``), the
kernel's neighbour table before and at the end (one ARP table for all namespaces: its
``gc_thresh3`` limit stops big labs), and when the lab is not ready, what the node agents
report (pods ready, VIPs, errors).

Labs install permanent neighbour entries (lab/backend/netns/netspec.py), which that limit does not
count; a lab built before that change filled the shared table and stalled. The lab still
loads the machine heavily: do not run it beside other lab work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lab import cpu_seconds, memory_by_node, pss_mb, rss_mb  # noqa: E402

from lab.backend import labs  # noqa: E402
from lab.backend.ready import ReadyReport  # noqa: E402
from lab.plan.model import LabPlan, Role  # noqa: E402
from lab.proc import run  # noqa: E402

GOAL_UP_S = 180.0
GOAL_MB_PER_ROUTER = 15.0  # PSS
GOAL_MB_PER_SPEAKER = 12.0  # PSS
# a merging lab's memory is taken after ksmd has scanned everything this many more times
# (a page merges on its second look), or after MERGE_LIMIT_S
MERGE_SCANS = 2
MERGE_LIMIT_S = 600.0


def generate(folder: Path, sites: int, leafs: int, nodes: int,
             bfd_interval_ms: int | None = 300) -> Path:
    """The topology, as `anylab generate` writes it (``bfd_interval_ms`` None: BFD off)."""
    out = folder / f"scale-{sites}x{leafs}x{nodes}.yaml"
    bfd = ["--no-bfd"] if bfd_interval_ms is None else ["--bfd-interval",
                                                        f"{bfd_interval_ms}ms"]
    run([sys.executable, "-m", "lab.cli", "generate", "--sites", str(sites), "--leafs",
         str(leafs), "--nodes", str(nodes), *bfd, "-o", str(out)], timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    return out


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_figures(result: labs.UpResult) -> dict[str, Any]:
    plan: LabPlan = result.plan
    routers = [n.name for n in plan.nodes if n.runs_frr and n.role != Role.K8S_NODE]
    nodes = [n.name for n in plan.nodes_with_role(Role.K8S_NODE)]
    pods = [p.name for n in plan.nodes_with_role(Role.K8S_NODE) for p in n.pods]
    speakers = len([n for n in plan.nodes if n.role != Role.CLIENT])
    figures: dict[str, Any] = {"scale_speakers": speakers, "scale_routers": len(routers),
                               "scale_cluster_nodes": len(nodes),
                               "scale_processes": len(result.state.processes)}
    for label, measure in (("rss", rss_mb), ("pss", pss_mb)):
        per_node = memory_by_node(result.state, measure)
        total = sum(per_node.values())
        figures[f"{label}_mb_per_router"] = round(statistics.median(
            per_node[r] for r in routers), 1)
        figures[f"{label}_mb_per_cluster_node"] = round(statistics.median(
            per_node[n] for n in nodes), 1)
        if pods:
            figures[f"{label}_mb_per_pod"] = round(statistics.median(
                per_node.get(p, 0.0) for p in pods), 2)
        figures[f"{label}_mb_per_speaker"] = round(total / speakers, 1)
        figures[f"{label}_mb_total"] = round(total)
    return figures


def agent_diagnostics(directory: Path, plan: LabPlan) -> dict[str, Any]:
    """What the node agents say (status.json, agent-events.jsonl): pods ready, VIPs
    announced, event kinds and the most frequent errors."""
    nodes = plan.nodes_with_role(Role.K8S_NODE)
    all_ready, announcing = 0, Counter[str]()
    kinds, errors = Counter[str](), Counter[str]()
    for node in nodes:
        folder = directory / "nodes" / node.name
        try:
            status = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        pods = status.get("pods", {})
        all_ready += bool(pods) and all(v == "ready" for v in pods.values())
        announcing.update(status.get("announced", []))
        try:
            lines = (folder / "agent-events.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                kinds[str(row.get("event"))] += 1
                if row.get("event") == "error":
                    errors[f"{row.get('action')}: {str(row.get('message'))[:160]}"] += 1
    return {"cluster_nodes": len(nodes), "nodes_with_all_pods_ready": all_ready,
            "nodes_announcing_per_vip": dict(announcing), "agent_event_kinds": dict(kinds),
            "agent_errors_top": errors.most_common(8)}


def neighbour_table() -> dict[str, int]:
    """The kernel's ARP table, shared by every namespace: its size now, its hard limit
    (gc_thresh3, settable only in the host namespace) and how often it was full since boot."""
    rows = [line.split() for line in Path("/proc/net/stat/arp_cache").read_text().splitlines()]
    header, values = rows[0], [[int(v, 16) for v in row] for row in rows[1:]]
    column = {name: i for i, name in enumerate(header)}
    limit = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read_text()
    return {"entries": values[0][column["entries"]], "gc_thresh3": int(limit),
            "table_fulls": sum(v[column["table_fulls"]] for v in values)}


def not_ready_figures(report: ReadyReport) -> dict[str, Any]:
    return {"scale_not_ready": report.explain()[:2000],
            "sessions_not_established": len(report.sessions_down),
            "node_services_not_announced": len(report.not_announcing),
            "dead_processes": len(report.dead)}


def ksmd_cpu_s() -> float:
    """CPU-seconds the kernel's same-page merging thread has used since boot."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "ksmd":
                return cpu_seconds(int(comm.parent.name))
    return 0.0


def wait_for_merging(scans: int = MERGE_SCANS, limit_s: float = MERGE_LIMIT_S
                     ) -> dict[str, Any]:
    """Wait until ksmd has scanned everything ``scans`` more times (a page merges on its
    second look), at most ``limit_s``; what it took."""
    ksm = Path("/sys/kernel/mm/ksm")
    first = int((ksm / "full_scans").read_text())
    started, cpu = time.monotonic(), ksmd_cpu_s()
    while (int((ksm / "full_scans").read_text()) < first + scans
           and time.monotonic() - started < limit_s):
        time.sleep(1.0)
    waited = time.monotonic() - started
    return {"merge_wait_s": round(waited, 1),
            "ksmd_core_share": round((ksmd_cpu_s() - cpu) / max(waited, 1e-9), 3),
            "ksm_pages_sharing": int((ksm / "pages_sharing").read_text()),
            "ksm_pages_shared": int((ksm / "pages_shared").read_text())}


def measure(sites: int, leafs: int, nodes: int, timeout_s: float,
            name: str | None = None, bfd_interval_ms: int | None = 300,
            merge_memory: bool = False) -> dict[str, Any]:
    """``merge_memory``: the lab merges its like pages (``anylab up --merge-memory``); its
    memory is measured once ksmd has scanned everything twice more after ready."""
    name = name or f"bsc-{secrets.token_hex(3)}"
    timeline: list[tuple[float, str]] = []  # every new progress message, with its instant
    figures: dict[str, Any] = {"lab": name, "timeout_s": timeout_s,
                               "bfd_interval_ms": bfd_interval_ms,
                               "merge_memory": merge_memory,
                               "mem_available_mb_before": round(mem_available_mb()),
                               "neighbour_table_before": neighbour_table()}

    def progress(message: str) -> None:
        if not timeline or timeline[-1][1] != message:
            timeline.append((round(time.monotonic() - started, 2), message))

    with tempfile.TemporaryDirectory(prefix="anylab-scale-") as folder:
        topology = generate(Path(folder), sites, leafs, nodes, bfd_interval_ms)
        try:
            started = time.monotonic()
            result = labs.up(topology, name, progress, timeout_s=timeout_s,
                             merge_memory=merge_memory)
            figures["scale_up_s"] = round(time.monotonic() - started, 1)
            figures["scale_ready"] = result.report.ready
            if not result.report.ready:
                figures.update(not_ready_figures(result.report))
                figures["agents"] = agent_diagnostics(result.state.directory, result.plan)
            figures["timeline"] = timeline
            figures["neighbour_table_ready"] = neighbour_table()
            figures["mem_available_mb_ready"] = round(mem_available_mb())
            figures["load_avg_ready"] = [round(x, 2) for x in os.getloadavg()]
            if merge_memory:
                figures.update(wait_for_merging())
            figures.update(memory_figures(result))
            started = time.monotonic()
            labs.down(name)
            figures["scale_down_s"] = round(time.monotonic() - started, 1)
        finally:
            labs.down(name, force=True)
    figures["goals"] = {"scale_up_s": GOAL_UP_S, "pss_mb_per_router": GOAL_MB_PER_ROUTER,
                        "pss_mb_per_speaker": GOAL_MB_PER_SPEAKER}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--leafs", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for the lab to be ready")
    bfd = parser.add_mutually_exclusive_group()
    bfd.add_argument("--bfd-interval", type=int, default=300, metavar="MS")
    bfd.add_argument("--no-bfd", action="store_true")
    parser.add_argument("--merge-memory", action="store_true",
                        help="as `anylab up --merge-memory`; memory measured once merged")
    args = parser.parse_args()
    print(json.dumps(measure(args.sites, args.leafs, args.nodes, args.timeout,
                             bfd_interval_ms=None if args.no_bfd else args.bfd_interval,
                             merge_memory=args.merge_memory), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
