"""Run the benchmarks and keep their figures: `make bench`, or

    sudo .venv/bin/python bench/run_all.py [--only netns,up,clab,mininet-backend,outage,...]

Each part measures one thing (see docs/benchmarks.md) and is selectable with ``--only``, so one
part can be rerun: its figures replace that part's in bench/results/latest.json and the other
parts' stay, each with the machine's load when it was measured. Prints a table of the headline
figures (medians) with the machine facts. Benchmarks are figures, not pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from lab.backend.labs import all_labs  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.proc import run  # noqa: E402

REFERENCE = REPO / "topologies" / "three-sites.yaml"
RESULTS = BENCH / "results"
PARTS = ("netns", "netns-scale", "up", "clab", "mininet-backend", "dual", "prober", "emulator",
         "fidelity", "outage", "cycles", "scale-bfd", "scale")  # the scale labs last
# part -> headline figures: (key, unit, goal)
HEADLINES: dict[str, list[tuple[str, str, str]]] = {
    "netns": [("netns_build_s", "s", ""), ("netns_teardown_s", "s", ""),
              ("mininet_build_s", "s", ""), ("mininet_teardown_s", "s", "")],
    "netns-scale": [("scale_netns_build_s", "s", ""), ("scale_netns_teardown_s", "s", ""),
                    ("scale_mininet_build_s", "s", ""), ("scale_mininet_teardown_s", "s", "")],
    "up": [("lab_up_s", "s", "<= 5"), ("lab_up_loaded_s", "s", "<= 8"), ("lab_down_s", "s", ""),
           ("ref_rss_mb_per_router", "MB", ""), ("ref_pss_mb_per_router", "MB", "")],
    "clab": [("clab_up_s", "s", ""), ("clab_down_s", "s", ""),
             ("clab_rss_mb_per_router", "MB", ""), ("clab_up_ratio", "", "<= 3")],
    "mininet-backend": [("mininet_backend_up_s", "s", ""), ("mininet_backend_down_s", "s", ""),
                        ("mininet_backend_rss_mb_per_router", "MB", ""),
                        ("mininet_backend_up_ratio", "", "")],
    "dual": [("dual_up_s", "s", ""), ("dual_up_ratio", "", ""),
             ("dual_pss_mb_per_router", "MB", ""),
             ("dual_bfd_outage_ms_ipv4", "ms", "600-1300"),
             ("dual_bfd_outage_ms_ipv6", "ms", "600-1300"),
             ("dual_carrier_outage_ms_ipv4", "ms", "< 300"),
             ("dual_carrier_outage_ms_ipv6", "ms", "< 300")],
    "prober": [("prober_max_hz", "Hz", ">= 1000")],
    "emulator": [("emulator_delay_err_ms", "ms", ""), ("emulator_max_pps", "pps", "")],
    "fidelity": [("rtt_err_ms_quiet", "ms", "<= 0.5"), ("rtt_err_ms_loaded", "ms", "<= 0.5"),
                 ("sparse_raw_max_abs_error_ms", "ms", ""),
                 ("sparse_calibrated_max_abs_error_ms", "ms", "<= 0.5"),
                 ("sparse_loaded_calibrated_max_abs_error_ms", "ms", "<= 0.5")],
    "outage": [("bfd_outage_ms", "ms", "~900-1200"), ("bfd_outage_iqr_ms", "ms", ""),
               ("holdtimer_outage_ms", "ms", "6000-9000"),
               ("holdtimer_outage_iqr_ms", "ms", ""),
               ("carrier_outage_ms", "ms", "< 300"), ("carrier_outage_iqr_ms", "ms", "")],
    "cycles": [("cycles_run", "", ">= 50"), ("cycles_failed", "", "0"), ("cycle_s", "s", "")],
    "scale-bfd": [("bfd_scale_speakers", "", ">= 300"), ("bfd_scale_up_s", "s", "<= 90"),
                  ("bfd_scale_ready", "", "true"), ("bfd_pss_mb_per_router", "MB", "<= 15"),
                  ("bfd_pss_mb_per_speaker", "MB", "<= 12")],
    "scale": [("scale_speakers", "", ">= 1000"), ("scale_up_s", "s", "<= 180"),
              ("scale_ready", "", "true"), ("pss_mb_per_router", "MB", "<= 15"),
              ("pss_mb_per_speaker", "MB", "<= 12"), ("scale_down_s", "s", ""),
              ("merge_wait_s", "s", ""), ("ksmd_core_share", "", "")],
}
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def first_line(argv: list[str]) -> str:
    try:
        result = run(argv, timeout=30, check=False)
        return (result.stdout or result.stderr).strip().splitlines()[0]
    except (LabError, IndexError):  # a missing tool must not stop the benchmarks
        return "unknown"


def machine_facts() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    mininet = first_line(["/usr/bin/python3", "-c",
                          "import mininet.net; print(mininet.net.VERSION)"])
    return {
        "cores": os.cpu_count(), "cpu": cpu,
        "memory_gb": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "frr": first_line(["/usr/lib/frr/bgpd", "--version"]).split()[-1],
        "gobgp": first_line(["gobgpd", "--version"]).split()[-1],
        "mininet": mininet,
    }


def load_now() -> dict[str, Any]:
    """What else loads the machine: load average and the other labs running now."""
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "labs_running": all_labs()}


def last_json(text: str) -> dict[str, Any]:
    """The JSON document a bench script printed last (pretty-printed, from a line '{')."""
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip() == "{":
            try:
                data: dict[str, Any] = json.loads("\n".join(lines[index:]))
                return data
            except ValueError:
                continue
    raise ValueError(f"no JSON in the output: {text[-500:]}")


def script(name: str, *args: str, timeout: float = 1800) -> dict[str, Any]:
    result = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed ({result.returncode}): {result.stderr[-1500:]}")
    return last_json(result.stdout)


# ------------------------------------------------------------------ the parts


def part_netns(args: argparse.Namespace) -> dict[str, Any]:
    import bench_netns

    return bench_netns.measure(REFERENCE, args.repeats)


def part_netns_scale(args: argparse.Namespace) -> dict[str, Any]:
    """The same comparison on the scale topology's graph (608 namespaces), fewer repeats."""
    import bench_netns
    import bench_scale

    with tempfile.TemporaryDirectory(prefix="anylab-bench-") as folder:
        topology = bench_scale.generate(Path(folder), 8, 8, 32)
        figures = bench_netns.measure(topology, max(1, args.repeats // 2))
    return {f"scale_{k}" if k.startswith(("netns_", "mininet_")) else k: v
            for k, v in figures.items()}


def part_up(args: argparse.Namespace) -> dict[str, Any]:
    import bench_lab

    figures = bench_lab.measure(REFERENCE, args.repeats, f"bup-{secrets.token_hex(3)}")
    figures["ref_rss_mb_per_router"] = figures.pop("rss_mb_per_router")
    figures["ref_pss_mb_per_router"] = figures.pop("pss_mb_per_router")
    return figures


def part_clab(args: argparse.Namespace) -> dict[str, Any]:
    import bench_backends

    return bench_backends.measure(REFERENCE, args.repeats, "containerlab")


def part_mininet_backend(args: argparse.Namespace) -> dict[str, Any]:
    import bench_backends

    return bench_backends.measure(REFERENCE, args.repeats, "mininet")


def part_dual(args: argparse.Namespace) -> dict[str, Any]:
    import bench_dual

    return bench_dual.measure(args.repeats, max(1, args.trials // 2), Path(args.runs))


def part_prober(args: argparse.Namespace) -> dict[str, Any]:
    return script("bench_prober.py", "--seconds", str(args.prober_seconds))


def part_emulator(args: argparse.Namespace) -> dict[str, Any]:
    return script("bench_emulator.py", "--repeats", str(args.emulator_repeats))


def part_fidelity(args: argparse.Namespace) -> dict[str, Any]:
    import bench_fidelity

    return bench_fidelity.measure(Path(args.runs))


def part_outage(args: argparse.Namespace) -> dict[str, Any]:
    import bench_outage

    return bench_outage.measure(args.trials, Path(args.runs))


def part_cycles(args: argparse.Namespace) -> dict[str, Any]:
    import bench_cycles

    return bench_cycles.measure(args.cycles)


def part_scale_bfd(args: argparse.Namespace) -> dict[str, Any]:
    """344 speakers with BFD on every session (300 ms x 3), its figures named ``bfd_*``."""
    import bench_scale

    figures = bench_scale.measure(8, 8, 32, args.scale_timeout)
    return {f"bfd_{k}" if k.startswith(("scale_", "pss_", "rss_")) else k: v
            for k, v in figures.items()}


def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    """1,000 speakers, BFD off: at 300 ms every session end costs about 1 ms of CPU per
    second, more than two cores have for a thousand (docs/benchmarks.md, "Scale"); the
    lab merges its like pages (``anylab up --merge-memory``), as one of that size would."""
    import bench_scale

    return bench_scale.measure(8, 8, 114, args.scale_timeout, bfd_interval_ms=None,
                               merge_memory=True)


PART_FUNCTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "netns": part_netns, "netns-scale": part_netns_scale, "up": part_up, "clab": part_clab,
    "mininet-backend": part_mininet_backend, "dual": part_dual,
    "prober": part_prober, "emulator": part_emulator, "outage": part_outage,
    "cycles": part_cycles, "scale-bfd": part_scale_bfd, "scale": part_scale,
    "fidelity": part_fidelity}


# ------------------------------------------------------------------ results


def load_results(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return {"parts": {}}


TOP_LEVEL = ("machine", "parts", "failures", "figures")  # besides the headline figures


def headline_figures(parts: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for part, keys in HEADLINES.items():
        figures = parts.get(part, {}).get("figures", {})
        for key, _, _ in keys:
            if key in figures:
                flat[key] = figures[key]
    return flat


def save_results(path: Path, results: dict[str, Any]) -> None:
    results["figures"] = headline_figures(results["parts"])
    for key in [k for k in results if k not in TOP_LEVEL]:
        del results[key]  # a figure that is no longer a headline goes with its old value
    results.update(results["figures"])  # the headline keys also at the top level
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def print_table(results: dict[str, Any]) -> None:
    machine = results.get("machine", {})
    console.print(f"[bold]anycast-lab benchmarks[/bold]  {machine.get('cores')} cores "
                  f"({machine.get('cpu')}), {machine.get('memory_gb')} GB, kernel "
                  f"{machine.get('kernel')}, FRR {machine.get('frr')}, GoBGP "
                  f"{machine.get('gobgp')}, Mininet {machine.get('mininet')}")
    table = Table(title_justify="left")
    for column in ("part", "figure", "value", "unit", "goal", "measured", "load at start"):
        table.add_column(column)
    for part, keys in HEADLINES.items():
        info = results["parts"].get(part)
        if info is None:
            continue
        figures, start = info.get("figures", {}), info.get("load_at_start", {})
        for key, unit, goal in keys:
            table.add_row(part, key, str(figures.get(key, "-")), unit, goal,
                          str(start.get("at", ""))[:16].replace("T", " "),
                          " ".join(f"{x:.2f}" for x in start.get("load_avg", [])))
    console.print(table)


def run_parts(args: argparse.Namespace, chosen: list[str]) -> dict[str, Any]:
    out = Path(args.out)
    results = load_results(out)
    results["machine"] = machine_facts()
    failures = {}
    for part in chosen:
        console.print(f"[bold]{part}[/bold] ({datetime.now(UTC):%H:%M:%S} UTC, load "
                      f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
        start, started = load_now(), time.monotonic()
        try:
            figures = PART_FUNCTIONS[part](args)
        except Exception as exc:  # one failed part must not lose the others' figures
            failures[part] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]{part} failed: {exc}[/red]")
            continue
        results["parts"][part] = {"figures": figures, "load_at_start": start,
                                  "load_at_end": load_now(),
                                  "wall_s": round(time.monotonic() - started)}
        save_results(out, results)
    results["failures"] = failures
    save_results(out, results)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--repeats", type=int, default=5, help="up/down and netns rounds")
    parser.add_argument("--trials", type=int, default=10, help="trials per outage scenario")
    parser.add_argument("--emulator-repeats", type=int, default=3)
    parser.add_argument("--prober-seconds", type=float, default=10.0)
    parser.add_argument("--cycles", type=int, default=50, help="up/down cycles (reliability)")
    parser.add_argument("--scale-timeout", type=float, default=600.0)
    parser.add_argument("--runs", default=str(RESULTS / "runs"), help="outage run dirs")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(PARTS)
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    if os.geteuid() != 0:
        console.print("the benchmarks need root (namespaces, FRR)", style="red")
        return 2
    results = run_parts(args, chosen)
    print_table(results)
    console.print(f"saved: {args.out}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
