"""Data-plane outage of the reference failure scenarios: median and IQR over 10 trials.

    sudo .venv/bin/python bench/bench_outage.py [--repeat 10] [--runs DIR]

Plays scenarios/node-crash-bfd.yaml, node-crash-holdtimer.yaml and leaf-link-down.yaml on the
reference lab (topologies/three-sites.yaml) with ``repeat`` trials each, and reads from every
trial the first event's figure for client us-c1 / service dns: ``outage_ms`` (the longest
loss window; resolution 1 ms) beside ``rate_derived_ms`` (first answered probe after the last
lost one, minus the fault instant).

node-crash-bfd and leaf-link-down share one lab (same plan); node-crash-holdtimer changes the
BGP timers (no BFD, hold 9 s), so it runs on a second lab. The labs get unique names and are
removed at the end, also on failure. Run directories are kept under ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.backend import labs  # noqa: E402
from lab.run.runner import RunOptions, run_scenario  # noqa: E402

SCENARIOS = {  # figure -> (scenario file, which lab)
    "bfd_outage_ms": ("node-crash-bfd.yaml", "a"),
    "carrier_outage_ms": ("leaf-link-down.yaml", "a"),
    "holdtimer_outage_ms": ("node-crash-holdtimer.yaml", "b"),
}
CLIENT, SERVICE = "us-c1", "dns"


def quartiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "iqr": None, "p25": None, "p75": None}
    if len(values) == 1:
        return {"median": values[0], "iqr": 0.0, "p25": values[0], "p75": values[0]}
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": round(p50, 1), "iqr": round(p75 - p25, 1), "p25": round(p25, 1),
            "p75": round(p75, 1)}


def trial_figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per trial: us-c1/dns outage of the first event, detection, validity."""
    rows = []
    for trial in summary.get("trials", []):
        events = trial.get("events") or [{}]
        client: dict[str, Any] = next(
            (c for c in events[0].get("clients", [])
             if c.get("client") == CLIENT and c.get("service") == SERVICE), {})
        rows.append({"trial": trial.get("trial"), "valid": trial.get("valid", True),
                     "complete": trial.get("complete", True),
                     "outage_ms": client.get("outage_ms"),
                     "rate_derived_ms": client.get("rate_derived_ms"),
                     "loss_derived_ms": client.get("loss_derived_ms"),
                     "loss_windows": client.get("loss_windows"),
                     "detection_ms": events[0].get("detection_ms"),
                     "target": events[0].get("target"),
                     "site_before": client.get("site_before"),
                     "site_after": client.get("site_after")})
    return rows


def play(scenario: str, lab: str, repeat: int, runs: Path) -> dict[str, Any]:
    started = time.monotonic()
    result = run_scenario(RunOptions(REPO / "scenarios" / scenario, repeat=repeat,
                                     keep_lab=True, name=lab, runs_root=runs), lambda _m: None)
    rows = trial_figures(result.summary)
    usable = [float(r["outage_ms"]) for r in rows
              if r["valid"] and r["complete"] and r["outage_ms"] is not None]
    detections = [float(r["detection_ms"]) for r in rows if r["detection_ms"] is not None]
    return {"scenario": scenario, "lab": lab, "run_dir": str(result.run_dir),
            "complete": result.complete, "trials": len(rows), "used": len(usable),
            "outage_ms": quartiles(usable), "detection_ms": quartiles(detections),
            "wall_s": round(time.monotonic() - started), "per_trial": rows}


def measure(repeat: int, runs: Path, only: list[str] | None = None) -> dict[str, Any]:
    token = secrets.token_hex(2)
    names = {"a": f"bout-{token}-a", "b": f"bout-{token}-b"}
    figures: dict[str, Any] = {"repeat": repeat, "client": CLIENT, "service": SERVICE}
    try:
        for key, (scenario, lab) in SCENARIOS.items():
            if only and key not in only:
                continue
            details = play(scenario, names[lab], repeat, runs)
            figures[key] = details["outage_ms"]["median"]
            figures[key.replace("_ms", "_iqr_ms")] = details["outage_ms"]["iqr"]
            figures[key.replace("outage_ms", "detail")] = details
    finally:
        for name in names.values():
            labs.down(name, force=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--runs", default=str(REPO / "bench" / "results" / "runs"))
    parser.add_argument("--only", help="comma-separated figures, e.g. bfd_outage_ms")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    print(json.dumps(measure(args.repeat, Path(args.runs), only), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
