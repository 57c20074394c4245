"""Reliability: many up/down cycles of one lab, under three conditions in turn.

    sudo .venv/bin/python bench/bench_cycles.py [--cycles 50] [--topology FILE]

The cycles are split into three equal runs: the machine as it is (``quiet``), a second lab
going up and down beside it (``second-lab``), and the other core kept busy by a spinning
process (``busy-core``). Each cycle is ``labs.up`` until ready, then ``labs.down``; a cycle that
is not ready keeps its evidence directory (lab.backend.evidence) and counts as failed. Prints
JSON: cycles run and failed (overall and per condition), seconds per cycle (median), up and
down medians, and each failure with its explanation and evidence directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.backend import labs  # noqa: E402

MINI = REPO / "topologies" / "two-sites-mini.yaml"
CONDITIONS = ("quiet", "second-lab", "busy-core")
READY_TIMEOUT_S = 90.0
# a second lab's life, as a user at another terminal would live it: up, a pause, down
SECOND_LAB_LOOP = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from lab.backend import labs
topology, name, stop = Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
while not stop.exists():
    try:
        labs.up(topology, name, lambda _m: None, timeout_s=90)
        time.sleep(1.0)
    finally:
        labs.down(name, force=True)
"""


@contextlib.contextmanager
def condition(kind: str, topology: Path, scratch: Path) -> Iterator[None]:
    """The load of one condition, running while the body runs; ended by the PID started."""
    if kind == "quiet":
        yield
        return
    stop = scratch / f"stop-{kind}"
    if kind == "second-lab":
        argv = [sys.executable, "-c", SECOND_LAB_LOOP, str(REPO), str(topology),
                f"bcy2-{secrets.token_hex(3)}", str(stop)]
    else:
        argv = [sys.executable, "-c", "while True: pass"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        stop.touch()
        if kind == "busy-core":
            proc.kill()
        try:
            proc.wait(timeout=120)  # the second lab finishes its cycle and goes down
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


def one_cycle(topology: Path, name: str) -> dict[str, Any]:
    started = time.monotonic()
    result = labs.up(topology, name, lambda _m: None, timeout_s=READY_TIMEOUT_S)
    up_s = time.monotonic() - started
    down_started = time.monotonic()
    report = labs.down(name, force=True)
    cycle: dict[str, Any] = {"ready": result.report.ready, "up_s": round(up_s, 2),
             "down_s": round(time.monotonic() - down_started, 2),
             "cycle_s": round(time.monotonic() - started, 2)}
    if not result.report.ready:
        cycle["explain"] = result.report.explain()
        cycle["evidence"] = str(result.report.evidence)
    if report.leftovers:
        cycle["leftovers"] = report.leftovers
    return cycle


def measure(cycles: int, topology: Path = MINI, name: str | None = None) -> dict[str, Any]:
    name = name or f"bcy-{secrets.token_hex(3)}"
    per_condition = [cycles // len(CONDITIONS) + (i < cycles % len(CONDITIONS))
                     for i in range(len(CONDITIONS))]
    rounds: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="anylab-cycles-") as scratch:
            for kind, count in zip(CONDITIONS, per_condition, strict=True):
                with condition(kind, topology, Path(scratch)):
                    for _ in range(count):
                        rounds.append({"condition": kind, **one_cycle(topology, name)})
    finally:
        labs.down(name, force=True)
    failed = [r for r in rounds if not r["ready"] or r.get("leftovers")]
    ready = [r for r in rounds if r["ready"]]

    def median(key: str) -> float | None:
        return round(statistics.median(r[key] for r in ready), 2) if ready else None

    return {
        "topology": topology.name, "cycles_run": len(rounds), "cycles_failed": len(failed),
        "per_condition": {kind: {"run": sum(r["condition"] == kind for r in rounds),
                                 "failed": sum(r["condition"] == kind for r in failed)}
                          for kind in CONDITIONS},
        "cycle_s": median("cycle_s"), "up_s": median("up_s"), "down_s": median("down_s"),
        "failures": failed, "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--topology", default=str(MINI))
    args = parser.parse_args()
    print(json.dumps(measure(args.cycles, Path(args.topology)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
