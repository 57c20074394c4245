"""The containerlab backend beside the netns backend: the reference lab's up and down times
and memory per router, rounds interleaved (netns, containerlab, netns, ...) so both see the
same machine.

    sudo .venv/bin/python bench/bench_clab.py [--repeats 5]

Prints JSON: ``clab_up_s``, ``clab_down_s``, ``clab_rss_mb_per_router`` (every process of a
router's container: FRR's daemons and the container's idle shell), the netns figures of the
same run and ``clab_up_ratio`` (containerlab / netns medians). The images and containerlab
are set up before the first round (not timed).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lab  # noqa: E402

from lab.backend import labs  # noqa: E402
from lab.backend.containerlab.tools import ensure_tools  # noqa: E402

REFERENCE = REPO / "topologies" / "three-sites.yaml"


def measure(topology: Path, repeats: int) -> dict[str, Any]:
    ensure_tools(lambda message: print(message, file=sys.stderr))
    rounds: dict[str, list[dict[str, Any]]] = {"netns": [], "containerlab": []}
    names = {b: f"bcl-{b[:4]}-{secrets.token_hex(2)}" for b in rounds}
    try:
        for _ in range(repeats):
            for backend, done in rounds.items():
                done.append(bench_lab.one_round(topology, names[backend], backend))
    finally:
        for name in names.values():
            labs.down(name, force=True)

    def median(backend: str, key: str, digits: int) -> float:
        return round(statistics.median(float(r[key]) for r in rounds[backend]), digits)

    return {
        "topology": topology.name, "repeats": repeats,
        "clab_up_s": median("containerlab", "up_s", 2),
        "clab_down_s": median("containerlab", "down_s", 2),
        "clab_rss_mb_per_router": median("containerlab", "rss_mb_per_router", 1),
        "clab_pss_mb_per_router": median("containerlab", "pss_mb_per_router", 1),
        "netns_up_s": median("netns", "up_s", 2),
        "netns_down_s": median("netns", "down_s", 2),
        "netns_rss_mb_per_router": median("netns", "rss_mb_per_router", 1),
        "clab_up_ratio": round(median("containerlab", "up_s", 3)
                               / median("netns", "up_s", 3), 2),
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default=str(REFERENCE))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(Path(args.topology), args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
