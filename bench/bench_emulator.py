"""Benchmark of the userspace link emulator: accuracy and capacity, printed as JSON.

Needs root; works only inside namespaces it creates (prefix ``albench-``) and
removes them afterwards. Figures are medians over ``--repeats`` runs:

- emulator_delay_err_ms / emulator_delay_p99_err_ms: worst (over 10/35/100 ms)
  median and 99th-percentile one-way delay error at 2,000 packets/s, measured
  by a C generator/receiver (bench/udpgen.c) to keep Python's scheduling out;
- jitter_sd_rel_err: sample sd / configured jitter - 1, per distribution;
- loss_abs_err_pct, rate_rel_err: measured vs configured (rate: Python probe);
- emulator_max_pps: highest offered rate (C generator, 64-byte datagrams,
  1 ms delay) forwarded with < 0.1 % unintended loss;
- emulator_cpu_at_2000pps: the emulator's CPU time per second (1.0 = one core).

Usage: python bench/bench_emulator.py [--repeats N] [--max-pps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lab import cpu_seconds

from lab.cbuild import compile_c
from lab.impair import GilbertElliott, Impairment, LinkEnd, UserspaceDriver
from lab.impair.measure import (
    UdpProbe,
    address_link,
    scratch_namespaces,
    unique_name,
)
from lab.impair.model import JitterDistribution
from lab.impair.namespaces import remove_netns

A_IP, B_IP, LINK = "198.18.0.1", "198.18.0.2", "bench"
GENERATOR = Path(__file__).resolve().parent / "udpgen.c"


def median_of(runs: list[dict[str, Any]], key: str, minus: float = 0.0) -> float:
    return round(statistics.median(float(r[key]) - minus for r in runs), 4)


class Bench:
    def __init__(self, driver: UserspaceDriver, a: str, b: str, repeats: int) -> None:
        self.driver, self.a, self.b, self.repeats = driver, a, b, repeats
        self.generator = compile_c(GENERATOR, extra=("-pthread",))

    def generate(self, imp: Impairment, pps: float, seconds: float) -> dict[str, Any]:
        """Run the C generator through the link set to ``imp``; adds the emulator's CPU share."""
        self.driver.set(LINK, "a_to_b", imp)
        cpu0, t0 = self.cpu_seconds(), time.monotonic()
        out = subprocess.run(
            [str(self.generator), "--src-ns", f"/run/netns/{self.a}", "--dst-ns",
             f"/run/netns/{self.b}", "--dst", B_IP, "--pps", str(pps), "--seconds", str(seconds),
             "--rt-priority", "20"],
            capture_output=True, text=True, timeout=seconds + 30, check=True)
        report: dict[str, Any] = json.loads(out.stdout)
        report["emulator_cpu"] = round((self.cpu_seconds() - cpu0) / (time.monotonic() - t0), 4)
        return report

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.driver.pid)

    def runs(self, imp: Impairment, pps: float = 2000,
             seconds: float = 1.0) -> list[dict[str, Any]]:
        return [self.generate(imp, pps, seconds) for _ in range(self.repeats)]

    @staticmethod
    def median(runs: list[dict[str, Any]], fn: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(fn(r) for r in runs), 4)

    def delay(self) -> dict[str, Any]:
        base = median_of(self.runs(Impairment()), "delay_p50_ms")
        per: dict[str, dict[str, float]] = {}
        for ms in (10.0, 35.0, 100.0):
            runs = self.runs(Impairment(delay_ms=ms))
            per[f"{ms:g}"] = {
                "median_err_ms": median_of(runs, "delay_p50_ms", ms),
                "p99_err_ms": median_of(runs, "delay_p99_ms", ms),
                "max_err_ms": median_of(runs, "delay_max_ms", ms),
                "lost": sum(r["lost"] for r in runs),
                "reordered": sum(r["reordered"] for r in runs),
            }
        return {
            "baseline_one_way_ms": base,
            "delay_at_2000pps": per,
            "emulator_delay_err_ms": max(abs(v["median_err_ms"]) for v in per.values()),
            "emulator_delay_p99_err_ms": max(v["p99_err_ms"] for v in per.values()),
        }

    def jitter(self) -> dict[str, Any]:
        out = {}
        dists: tuple[JitterDistribution, ...] = ("normal", "uniform", "pareto")
        for dist in dists:
            imp = Impairment(delay_ms=35.0, jitter_ms=5.0, reorder=True,
                             jitter_distribution=dist)
            out[dist] = self.median(self.runs(imp), lambda r: r["delay_sd_ms"] / 5.0 - 1)
        return {"jitter_sd_rel_err": out}

    def loss(self) -> dict[str, Any]:
        random = self.median(self.runs(Impairment(loss_pct=10.0), 5000, 2.0),
                             lambda r: 100.0 * r["lost"] / r["sent"])
        ge = GilbertElliott(p_pct=1.0, r_pct=10.0)
        bursty = self.median(self.runs(Impairment(gilbert=ge), 5000, 2.0),
                             lambda r: 100.0 * r["lost"] / r["sent"])
        return {"loss_pct_at_10": random, "loss_abs_err_pct": round(abs(random - 10.0), 4),
                "gilbert_loss_pct": bursty, "gilbert_expected_pct": round(ge.mean_loss_pct, 4)}

    def rate(self) -> dict[str, Any]:
        def measured(rate: int) -> float:
            pps = 2.0 * rate / (1042 * 8)  # offer twice the rate in 1042-byte frames
            self.driver.set(LINK, "a_to_b", Impairment(rate_bps=rate))
            r = UdpProbe(self.a, self.b, B_IP, pps=pps, count=int(pps * 2), size=1000).run()
            t = [t for _, t in r.arrivals]
            return (len(t) - 1) * 1042 * 8 / ((t[-1] - t[0]) / 1e9) / rate - 1

        return {"rate_rel_err": {
            str(rate): round(statistics.median(measured(rate) for _ in range(self.repeats)), 4)
            for rate in (4_000_000, 16_000_000)}}

    def capacity(self, max_pps: int) -> dict[str, Any]:
        imp = Impairment(delay_ms=1.0)
        cpu_2000 = median_of(self.runs(imp, 2000, 5.0), "emulator_cpu")
        runs, best = [], 0.0
        for pps in (20_000, 50_000, 100_000, 150_000, 200_000, 300_000):
            if pps > max_pps:
                break
            report = self.generate(imp, pps, 2.0)
            loss_pct = 100.0 * report["lost"] / report["sent"]
            runs.append({"target_pps": pps, "offered_pps": report["offered_pps"],
                         "loss_pct": round(loss_pct, 4), "emulator_cpu": report["emulator_cpu"],
                         "delay_p99_ms": report["delay_p99_ms"]})
            if loss_pct >= 0.1:
                break
            best = report["offered_pps"]
        counters = self.driver.get(LINK).a_to_b.counters
        return {"emulator_max_pps": round(best), "capacity_runs": runs,
                "emulator_cpu_at_2000pps": cpu_2000,
                "emulator_dropped_overrun": counters.dropped_overrun}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-pps", type=int, default=300_000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_emulator needs root (network namespaces)", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"repeats": args.repeats, "cpus": os.cpu_count()}
    with scratch_namespaces("a", "b", prefix="albench") as (a, b), \
            tempfile.TemporaryDirectory() as state:
        hidden = unique_name("hid", "albench")
        driver = UserspaceDriver(unique_name("lab", "albench"), Path(state), hidden,
                                 tie_to_process=True)
        try:
            ends = LinkEnd(a, "eth0"), LinkEnd(b, "eth0")
            driver.add_link(LINK, *ends, Impairment(), Impairment())
            address_link(*ends, A_IP, B_IP)
            bench = Bench(driver, a, b, args.repeats)
            for part in (bench.delay, bench.jitter, bench.loss, bench.rate):
                figures.update(part())
            figures.update(bench.capacity(args.max_pps))
        finally:
            driver.close()
            remove_netns(hidden)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
