"""The dual-stack reference lab beside the IPv4 one: up and down times, memory, and the outage
of a silent node crash and of a carrier loss per family.

    sudo .venv/bin/python bench/bench_dual.py [--repeats 5] [--trials 5] [--runs DIR]

Up/down rounds alternate the two labs (topologies/three-sites.yaml, three-sites-dual.yaml), so
both see the same machine: ``dual_up_s``, ``dual_down_s``, ``dual_pss_mb_per_router``,
``dual_sessions`` and ``dual_up_ratio`` (dual / IPv4 medians, with ``v4_up_s`` of the same
run). Then, on one dual lab, the node serving us-c1's IPv4 DNS probes crashes silently (BFD
300 ms x 3), and its link to the leaf loses carrier, ``trials`` times each. us-c1 probes with 16
flows per family (every 5 ms), so flows of both families hash onto that node; the figure of a
family is, per trial, the outage of its worst flow (the flows on the node), median over the
trials: ``dual_bfd_outage_ms_ipv4``/``_ipv6``, ``dual_carrier_outage_ms_ipv4``/``_ipv6``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lab  # noqa: E402

from lab.backend import labs  # noqa: E402
from lab.run.runner import RunOptions, run_scenario  # noqa: E402

V4 = REPO / "topologies" / "three-sites.yaml"
DUAL = REPO / "topologies" / "three-sites-dual.yaml"
FAULTS = {"bfd": ("node-crash", "8s"), "carrier": ("link-down", "6s")}
SCENARIO = """\
name: bench-dual-{kind}
description: {fault} of the node serving us-c1 (IPv4 DNS flow 0), both families probed
topology: {topology}
probe: {{interval: 5ms, services: [dns], clients: [us-c1], flows: 16, tcp_flows: 0}}
settle: 3s
tail: 4s
steps:
  - fault: {fault}
    target: {{serving: {{client: us-c1, service: dns}}}}
    duration: {duration}
"""


def up_rounds(repeats: int) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {"v4": [], "dual": []}
    names = {kind: f"bdu-{kind}-{secrets.token_hex(2)}" for kind in rounds}
    topologies = {"v4": V4, "dual": DUAL}
    try:
        for _ in range(repeats):
            for kind, done in rounds.items():
                done.append(bench_lab.one_round(topologies[kind], names[kind]))
    finally:
        for name in names.values():
            labs.down(name, force=True)

    def median(kind: str, key: str, digits: int) -> float:
        return round(statistics.median(float(r[key]) for r in rounds[kind]), digits)

    from lab import pipeline

    return {
        "dual_up_s": median("dual", "up_s", 2), "dual_down_s": median("dual", "down_s", 2),
        "dual_pss_mb_per_router": median("dual", "pss_mb_per_router", 1),
        "dual_sessions": len(pipeline.plan(DUAL).sessions),
        "v4_up_s": median("v4", "up_s", 2), "v4_sessions": len(pipeline.plan(V4).sessions),
        "dual_up_ratio": round(median("dual", "up_s", 3) / median("v4", "up_s", 3), 2),
        "up_rounds": rounds}


def family_outages(summary: dict[str, Any]) -> dict[str, list[float]]:
    """Per family, the us-c1/dns outage of the first event of every complete, valid trial."""
    found: dict[str, list[float]] = {"ipv4": [], "ipv6": []}
    for trial in summary.get("trials", []):
        if trial.get("complete") is False or trial.get("valid") is False:
            continue
        for client in trial["events"][0]["clients"]:
            if client["client"] == "us-c1" and client["service"] == "dns" \
                    and client.get("outage_ms") is not None:
                found[client.get("family", "ipv4")].append(float(client["outage_ms"]))
    return found


def outages(trials: int, runs: Path) -> dict[str, Any]:
    name = f"bdu-out-{secrets.token_hex(2)}"
    figures: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="anylab-bench-") as folder:
            for kind, (fault, duration) in FAULTS.items():
                path = Path(folder) / f"{kind}.yaml"
                path.write_text(SCENARIO.format(kind=kind, fault=fault, duration=duration,
                                                topology=DUAL))
                result = run_scenario(RunOptions(path, repeat=trials, keep_lab=True, name=name,
                                                 runs_root=runs), lambda _m: None)
                per_family = family_outages(result.summary)
                for family, values in per_family.items():
                    figures[f"dual_{kind}_outage_ms_{family}"] = (
                        round(statistics.median(values), 1) if values else None)
                figures[f"dual_{kind}_detail"] = {"run_dir": str(result.run_dir),
                                                  "outages_ms": per_family}
    finally:
        labs.down(name, force=True)
    return figures


def measure(repeats: int, trials: int, runs: Path) -> dict[str, Any]:
    return {"repeats": repeats, "trials": trials, **up_rounds(repeats),
            **outages(trials, runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--runs", default=str(REPO / "bench" / "results" / "runs"))
    args = parser.parse_args()
    print(json.dumps(measure(args.repeats, args.trials, Path(args.runs)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
