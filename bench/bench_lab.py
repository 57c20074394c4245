"""Lab up/down figures: medians over repeats, stage times, memory per router.

    sudo .venv/bin/python bench/bench_lab.py [--topology FILE] [--repeats 5] [--no-loaded]

Prints JSON (and writes it with --out). Each repeat brings the lab up until ready (its
delays calibrated, as `anylab up` does), records when each stage began, the memory of the
processes, then takes it down. Each repeat also has a loaded round, side by side with the
quiet one (their order alternates): the same while another process keeps one of the two
cores busy (``lab_up_loaded_s``). Run it on an otherwise quiet machine: the figures are
wall-clock times on two shared cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.backend import DEFAULT_BACKEND, backend_named, labs  # noqa: E402
from lab.backend.processes import is_alive, stat_fields  # noqa: E402
from lab.backend.state import LabState  # noqa: E402


def _kb_field_mb(path: Path, key: str) -> float:
    """A ``Key:   N kB`` line of a /proc file, in MB (0 when the process is gone)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    return _kb_field_mb(Path(f"/proc/{pid}/status"), "VmRSS:")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used; 0 when it is gone."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (FRR's libraries, Python) split among the
    processes that map them, so summing it over a lab does not count them N times."""
    return _kb_field_mb(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")


def node_pids(state: LabState) -> dict[str, set[int]]:
    """The live processes of each node: those the lab recorded, and on the containerlab
    backend every process of the node's container (its idle shell too)."""
    per_node: dict[str, set[int]] = defaultdict(set)
    for record in state.processes:
        if is_alive(record):
            per_node[record.node].add(record.pid)
    if state.backend == "containerlab":
        from lab.backend.containerlab.backend import container_pids

        for node in list(per_node):
            per_node[node] |= container_pids(state.lab, node)
    return per_node


def memory_by_node(state: LabState, measure: Callable[[int], float] = rss_mb
                   ) -> dict[str, float]:
    return {node: sum(measure(pid) for pid in pids) for node, pids in node_pids(state).items()}


def one_round(topology: Path, name: str, backend: str = DEFAULT_BACKEND) -> dict[str, Any]:
    marks: list[tuple[str, float]] = []
    started = time.monotonic()

    def progress(message: str) -> None:
        stage = message.split(":")[0]
        if not marks or marks[-1][0] != stage:
            marks.append((stage, time.monotonic() - started))

    result = labs.up(topology, name, progress, timeout_s=180, backend=backend_named(backend))
    up_s = time.monotonic() - started
    if not result.report.ready:
        labs.down(name, force=True)
        raise SystemExit(f"lab not ready: {result.report.explain()}")
    memory = memory_by_node(result.state)
    proportional = memory_by_node(result.state, pss_mb)
    routers = [n.name for n in result.plan.nodes if n.runs_frr and n.role.value != "k8s-node"]
    started = time.monotonic()
    labs.down(name)
    down_s = time.monotonic() - started
    return {"up_s": up_s, "down_s": down_s, "stages": marks,
            "rss_mb_per_router": statistics.median(memory[r] for r in routers),
            "pss_mb_per_router": statistics.median(proportional[r] for r in routers),
            "rss_mb_total": sum(memory.values()), "pss_mb_total": sum(proportional.values()),
            "processes": len(result.state.processes)}


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """Another process spinning on one core for the duration (ended by its PID)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # it is spinning before the round starts
        yield
    finally:
        spinner.kill()
        spinner.wait()


def _median(rounds: list[dict[str, Any]], key: str, digits: int) -> float:
    return round(statistics.median(float(r[key]) for r in rounds), digits)


def measure(topology: Path, repeats: int, name: str, loaded: bool = True) -> dict[str, Any]:
    """Medians over ``repeats`` up/down rounds of lab ``name`` (removed even on failure),
    and as many with a busy core beside them (``loaded``), interleaved."""
    rounds: list[dict[str, Any]] = []
    busy: list[dict[str, Any]] = []
    try:
        for repeat in range(repeats):
            kinds = (False, True) if loaded else (False,)
            for with_busy_core in kinds if repeat % 2 == 0 else reversed(kinds):
                if with_busy_core:
                    with busy_core():
                        busy.append(one_round(topology, name))
                else:
                    rounds.append(one_round(topology, name))
    finally:
        labs.down(name, force=True)
    loaded_figures = {"lab_up_loaded_s": _median(busy, "up_s", 2),
                      "loaded_rounds": busy} if busy else {}
    return {
        **loaded_figures,
        "topology": topology.name, "repeats": repeats,
        "lab_up_s": _median(rounds, "up_s", 2), "lab_down_s": _median(rounds, "down_s", 2),
        "rss_mb_per_router": _median(rounds, "rss_mb_per_router", 1),
        "pss_mb_per_router": _median(rounds, "pss_mb_per_router", 1),
        "rss_mb_total": _median(rounds, "rss_mb_total", 0),
        "pss_mb_total": _median(rounds, "pss_mb_total", 0),
        "processes": rounds[0]["processes"],
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default=str(REPO / "topologies" / "three-sites.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="bench-up")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--no-loaded", action="store_true",
                        help="skip the rounds with a busy core")
    args = parser.parse_args()
    figures = measure(Path(args.topology), args.repeats, args.name, not args.no_loaded)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
