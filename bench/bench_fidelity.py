"""Delay fidelity: how far each client's round trip is from the one its topology configures.

    sudo .venv/bin/python bench/bench_fidelity.py [--runs DIR]

On the reference lab (topologies/three-sites.yaml), per client path (client -> the node that
answers it), the error = median RTT - twice the configured one-way delay (lab.plan.paths), in
four conditions side by side, first without the delay calibration (lab.measure.calibrate),
then with it:

- ``sparse``: the lab otherwise idle, independent UDP requests 10 ms apart for 1 s from every
  client (as a user checking the lab by hand, or light traffic: every hop wakes up for each
  request);
- ``quiet``: scenarios/node-crash-bfd.yaml playing (1 ms probes from every client), the error
  of its trial before the fault (summary.json ``instrument.delay``);
- ``loaded``: the same while a second lab (topologies/two-sites-mini.yaml) is up;
- ``busy``: the same while the second lab also plays tests/data/scenarios/mini-node-crash.yaml
  over and over (its own probers at 1 ms): more than a 2-core machine carries, so the run's
  instrument should mark the trials invalid rather than report wrong figures.

The labs get unique names and are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.backend import labs  # noqa: E402
from lab.backend.state import LabState, load_state  # noqa: E402
from lab.impair.userspace import UserspaceDriver  # noqa: E402
from lab.measure.calibrate import access_link, measure_errors  # noqa: E402
from lab.plan.model import LabPlan, Role  # noqa: E402
from lab.run.runner import RunOptions, run_scenario  # noqa: E402

REFERENCE = REPO / "topologies" / "three-sites.yaml"
SECOND = REPO / "topologies" / "two-sites-mini.yaml"
SCENARIO = REPO / "scenarios" / "node-crash-bfd.yaml"
SECOND_SCENARIO = REPO / "tests" / "data" / "scenarios" / "mini-node-crash.yaml"
SPARSE_INTERVAL_MS = 10.0


def scenario_copy(source: Path, topology: Path, folder: Path, calibrate: bool) -> Path:
    document = yaml.safe_load(source.read_text())
    document["topology"] = str(topology)
    document.setdefault("probe", {})["calibrate"] = calibrate
    out = folder / f"{source.stem}-{'cal' if calibrate else 'raw'}.yaml"
    out.write_text(yaml.safe_dump(document))
    return out


def opened(lab: str) -> tuple[LabState, LabPlan]:
    state = load_state(lab)
    return state, labs.plan_of(state)


def sparse(lab: str) -> dict[str, float]:
    """Per client: the median error of independent requests 10 ms apart for 1 s (the lab
    otherwise idle: every hop wakes up for each request)."""
    state, plan = opened(lab)
    backend = labs.backend_for(state)
    with tempfile.TemporaryDirectory(prefix="anylab-sparse-") as folder:
        errors = measure_errors(
            plan, lambda c: lambda argv, log: backend.spawn(state, c, "prober", argv, log),
            Path(folder), [n.name for n in plan.nodes_with_role(Role.CLIENT)],
            duration_ms=1000, interval_ms=SPARSE_INTERVAL_MS)
    return {client: round(error, 3) for client, (error, _n) in errors.items()}


def reset_compensation(lab: str) -> None:
    state, plan = opened(lab)
    driver = labs.backend_for(state).impairment_driver(state)
    assert isinstance(driver, UserspaceDriver)
    try:
        for client in plan.nodes_with_role(Role.CLIENT):
            link = access_link(plan, client.name)
            if link is not None and link.impairment.delay_ms > 0:
                driver.compensate(link.id, 0.0)
    finally:
        driver.detach()


def played(scenario: Path, lab: str, runs: Path) -> dict[str, Any]:
    result = run_scenario(RunOptions(scenario, name=lab, keep_lab=True, runs_root=runs),
                          lambda _m: None)
    trial = result.summary["trials"][0]
    delay = (trial.get("instrument") or {}).get("delay") or {}
    return {"run_dir": str(result.run_dir), "valid": trial.get("valid"),
            "paths": {f"{p['client']}->{p['node']}": p["error_ms"]
                      for p in delay.get("paths", [])},
            "median_error_ms": delay.get("median_error_ms"),
            "max_abs_error_ms": delay.get("max_abs_error_ms")}


@contextmanager
def second_lab(name: str, folder: Path, play: bool) -> Iterator[None]:
    """The second lab up (playing its scenario over and over when ``play``) until the block
    ends."""
    scenario = scenario_copy(SECOND_SCENARIO, SECOND, folder, calibrate=False)
    labs_up = subprocess.run([sys.executable, "-m", "lab.cli", "up", str(SECOND), "--name",
                              name, ], cwd=REPO, capture_output=True, text=True)
    if labs_up.returncode != 0:
        raise RuntimeError(f"second lab did not come up: {labs_up.stderr[-2000:]}")
    stop = threading.Event()
    if not play:
        stop.set()

    def loop() -> None:
        while not stop.is_set():
            subprocess.run([sys.executable, "-m", "lab.cli", "run", str(scenario), "--name",
                            name, "--runs", str(folder / "second-runs"), "-q"], cwd=REPO,
                           capture_output=True)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        time.sleep(5)  # its first run under way
        yield
    finally:
        stop.set()
        worker.join(timeout=120)


def worst(errors: dict[str, float]) -> float | None:
    return max((abs(e) for e in errors.values()), default=None)


def measure(runs: Path) -> dict[str, Any]:
    token = secrets.token_hex(2)
    lab, second = f"fid-{token}", f"fid-{token}-b"
    figures: dict[str, Any] = {}
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="anylab-fidelity-") as tmp:
        folder = Path(tmp)
        raw = scenario_copy(SCENARIO, REFERENCE, folder, calibrate=False)
        cal = scenario_copy(SCENARIO, REFERENCE, folder, calibrate=True)
        try:
            result = labs.up(REFERENCE, lab, lambda _m: None, calibrate=False)
            if not result.kept:
                raise RuntimeError(f"the reference lab did not come up: {result.report}")
            details["sparse_raw"] = sparse(lab)
            details["quiet_raw"] = played(raw, lab, runs)
            calibration = labs.calibrate_delays_of(result.backend, result.state, result.plan,
                                                   lambda _m: None)
            details["calibration"] = calibration.to_dict() if calibration else None
            details["sparse_calibrated"] = sparse(lab)
            details["quiet_calibrated"] = played(cal, lab, runs)
            for condition, play in (("loaded", False), ("busy", True)):
                reset_compensation(lab)
                with second_lab(second, folder, play):
                    details[f"{condition}_raw"] = played(raw, lab, runs)
                    details[f"{condition}_calibrated"] = played(cal, lab, runs)
                    details[f"sparse_{condition}_calibrated"] = sparse(lab)
                labs.down(second, force=True)
        finally:
            labs.down(lab, force=True)
            labs.down(second, force=True)
    for key, value in details.items():
        if key == "calibration":
            continue
        errors = value if key.startswith("sparse") else value["paths"]
        figures[f"{key}_max_abs_error_ms"] = worst(errors)
        if not key.startswith("sparse"):
            figures[f"{key}_valid"] = value["valid"]
    # the headline: the worst client path while a scenario plays, calibrated (the default)
    figures["rtt_err_ms_quiet"] = figures.get("quiet_calibrated_max_abs_error_ms")
    figures["rtt_err_ms_loaded"] = figures.get("loaded_calibrated_max_abs_error_ms")
    figures["detail"] = details
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(REPO / "bench" / "results" / "runs"))
    args = parser.parse_args()
    print(json.dumps(measure(Path(args.runs)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
