"""Lab up/down figures: medians over repeats, stage times, memory per router.

    sudo .venv/bin/python bench/bench_lab.py [--topology FILE] [--repeats 5]

Prints JSON (and writes it with --out). Each repeat brings the lab up until ready, records
when each stage began, the memory of the processes, then takes it down. Run it on a quiet
machine: the figures are wall-clock times on two shared cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import labs  # noqa: E402
from lab.backend.processes import is_alive  # noqa: E402
from lab.backend.state import LabState  # noqa: E402


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory_by_node(state: LabState) -> dict[str, float]:
    per_node: dict[str, float] = defaultdict(float)
    for record in state.processes:
        if is_alive(record):
            per_node[record.node] += rss_mb(record.pid)
    return per_node


def one_round(topology: Path, name: str) -> dict[str, object]:
    marks: list[tuple[str, float]] = []
    started = time.monotonic()

    def progress(message: str) -> None:
        stage = message.split(":")[0]
        if not marks or marks[-1][0] != stage:
            marks.append((stage, time.monotonic() - started))

    result = labs.up(topology, name, progress, timeout_s=180)
    up_s = time.monotonic() - started
    if not result.report.ready:
        labs.down(name, force=True)
        raise SystemExit(f"lab not ready: {result.report.explain()}")
    memory = memory_by_node(result.state)
    routers = [n.name for n in result.plan.nodes if n.runs_frr and n.role.value != "k8s-node"]
    started = time.monotonic()
    labs.down(name)
    down_s = time.monotonic() - started
    return {"up_s": up_s, "down_s": down_s, "stages": marks,
            "rss_mb_per_router": statistics.median(memory[r] for r in routers),
            "rss_mb_total": sum(memory.values()), "processes": len(result.state.processes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default=str(REPO / "topologies" / "three-sites.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="bench-up")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    rounds = [one_round(Path(args.topology), args.name) for _ in range(args.repeats)]
    figures = {
        "topology": Path(args.topology).name, "repeats": args.repeats,
        "lab_up_s": round(statistics.median(r["up_s"] for r in rounds), 2),  # type: ignore[misc]
        "lab_down_s": round(statistics.median(r["down_s"] for r in rounds), 2),  # type: ignore[misc]
        "rss_mb_per_router": round(statistics.median(
            r["rss_mb_per_router"] for r in rounds), 1),  # type: ignore[misc]
        "rss_mb_total": round(statistics.median(r["rss_mb_total"] for r in rounds), 0),  # type: ignore[misc]
        "processes": rounds[0]["processes"],
        "rounds": rounds,
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
