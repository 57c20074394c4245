"""Another backend beside the netns backend: the reference lab's up and down times and memory
per router, rounds interleaved (netns, other, netns, ...) so both see the same machine.

    sudo .venv/bin/python bench/bench_backends.py containerlab [--repeats 5]
    sudo .venv/bin/python bench/bench_backends.py mininet [--repeats 5]

Prints JSON with the figures under the other backend's prefix: ``clab_`` for containerlab
(``clab_up_s``, ``clab_down_s``, ``clab_rss_mb_per_router``: every process of a router's
container, FRR's daemons and the container's idle shell; ``clab_pss_mb_per_router``,
``clab_up_ratio``), ``mininet_backend_`` for Mininet (``mininet_backend_up_s``, ``_down_s``,
``_rss_mb_per_router``: FRR's daemons, as on netns; ``_up_ratio``), beside the netns figures
of the same run. Each ratio is other / netns medians. The backend's tools are set up before
the first round (not timed).
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

REFERENCE = REPO / "topologies" / "three-sites.yaml"
PREFIXES = {"containerlab": "clab", "mininet": "mininet_backend"}


def ensure_tools(backend: str) -> None:
    def say(message: str) -> None:
        print(message, file=sys.stderr)

    if backend == "containerlab":
        from lab.backend.containerlab.tools import ensure_tools as containerlab_tools

        containerlab_tools(say)
    else:
        from lab.backend.mininet.tools import ensure_tools as mininet_tools

        mininet_tools(say)


def measure(topology: Path, repeats: int, other: str) -> dict[str, Any]:
    ensure_tools(other)
    rounds: dict[str, list[dict[str, Any]]] = {"netns": [], other: []}
    names = {b: f"bbk-{b[:4]}-{secrets.token_hex(2)}" for b in rounds}
    try:
        for _ in range(repeats):
            for backend, done in rounds.items():
                done.append(bench_lab.one_round(topology, names[backend], backend))
    finally:
        for name in names.values():
            labs.down(name, force=True)

    def median(backend: str, key: str, digits: int) -> float:
        return round(statistics.median(float(r[key]) for r in rounds[backend]), digits)

    prefix = PREFIXES[other]
    return {
        "topology": topology.name, "repeats": repeats,
        f"{prefix}_up_s": median(other, "up_s", 2),
        f"{prefix}_down_s": median(other, "down_s", 2),
        f"{prefix}_rss_mb_per_router": median(other, "rss_mb_per_router", 1),
        f"{prefix}_pss_mb_per_router": median(other, "pss_mb_per_router", 1),
        "netns_up_s": median("netns", "up_s", 2),
        "netns_down_s": median("netns", "down_s", 2),
        "netns_rss_mb_per_router": median("netns", "rss_mb_per_router", 1),
        f"{prefix}_up_ratio": round(median(other, "up_s", 3) / median("netns", "up_s", 3), 2),
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backend", choices=sorted(PREFIXES))
    parser.add_argument("--topology", default=str(REFERENCE))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(Path(args.topology), args.repeats, args.backend), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
