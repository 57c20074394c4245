"""Two runs figure by figure: what got worse from a baseline run to a new one.

Rows of summary.json's ``aggregate`` are matched by (step, fault, client, service, family); each
figure (``outage_ms``, ``rate_derived_ms``, ``loss_derived_ms``, ``detection_ms``,
``reversion_outage_ms``, ``tcp_broken``) is compared on its median and its p95. A summary
written before the outage became the longest loss window (``metrics_version`` 1) has only the
rate-derived figure, under the old name: it is compared as ``rate_derived_ms``. Larger is
worse for every one of them.
A figure got **worse** when the new value exceeds the baseline by more than the tolerance: a
fraction of the baseline (``tolerance``, e.g. 0.1) plus a slack of one probe interval for the
millisecond figures (their resolution; the larger interval of the two runs), so that a 0 ms
baseline does not turn one probe into an infinite regression. Rows that only one run has are
listed apart; a comparison with no common row is refused (the runs measured different
things)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError

FIGURES = ("outage_ms", "rate_derived_ms", "loss_derived_ms", "detection_ms",
           "reversion_outage_ms", "tcp_broken")
STATISTICS = ("median", "p95")
Key = tuple[int, str, str, str, str]  # step, fault, client, service, family


class CompareError(LabError):
    """The runs cannot be compared (no summary, or nothing in common)."""


@dataclass(frozen=True)
class Difference:
    step: int
    fault: str
    client: str
    service: str
    family: str
    figure: str
    statistic: str
    base: float
    new: float
    allowed: float  # the largest new value within the tolerance
    verdict: str  # "worse", "better" or "same"


@dataclass(frozen=True)
class Comparison:
    base_scenario: str
    new_scenario: str
    tolerance: float
    differences: list[Difference]
    only_base: list[Key]
    only_new: list[Key]

    @property
    def worse(self) -> list[Difference]:
        return [d for d in self.differences if d.verdict == "worse"]

    def to_dict(self) -> dict[str, Any]:
        return {"base_scenario": self.base_scenario, "new_scenario": self.new_scenario,
                "tolerance": self.tolerance,
                "differences": [asdict(d) for d in self.differences],
                "worse": len(self.worse), "only_base": [list(k) for k in self.only_base],
                "only_new": [list(k) for k in self.only_new]}


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{run_dir}: no summary.json ({exc.strerror}); is it a run "
                           "directory of a finished run?") from exc
    except ValueError as exc:
        raise CompareError(f"{path}: not JSON ({exc})") from exc
    return data


def _rows(summary: Mapping[str, Any]) -> dict[Key, Mapping[str, Any]]:
    return {(int(r["step"]), str(r["fault"]), str(r["client"]), str(r["service"]),
             str(r.get("family", "ipv4"))): _current(r, int(summary.get("metrics_version", 1)))
            for r in summary.get("aggregate", [])}


def _current(row: Mapping[str, Any], version: int) -> Mapping[str, Any]:
    """An aggregate row under today's names: version 1's ``outage_ms`` was rate-derived (and
    so was its ``reversion_outage_ms``, which has no current twin)."""
    if version >= 2:
        return row
    old = {k: v for k, v in row.items() if k not in ("outage_ms", "reversion_outage_ms")}
    return {**old, "rate_derived_ms": row.get("outage_ms")}


def _verdict(base: float, new: float, allowed: float) -> str:
    if new > allowed:
        return "worse"
    return "better" if new < base else "same"


def compare(base: Mapping[str, Any], new: Mapping[str, Any],
            tolerance: float = 0.1) -> Comparison:
    """Compare two summaries (summary.json documents)."""
    base_rows, new_rows = _rows(base), _rows(new)
    common = sorted(set(base_rows) & set(new_rows))
    if not common:
        raise CompareError("the runs have no (step, fault, client, service, family) in common: "
                           "they measured different scenarios or labs")
    slack_ms = max(float(base.get("interval_ms", 1.0)), float(new.get("interval_ms", 1.0)))
    differences = []
    for key in common:
        for figure in FIGURES:
            before, after = base_rows[key].get(figure), new_rows[key].get(figure)
            if not before or not after:
                continue
            slack = 0.0 if figure == "tcp_broken" else slack_ms
            for statistic in STATISTICS:
                b, n = float(before[statistic]), float(after[statistic])
                allowed = b * (1 + tolerance) + slack
                differences.append(Difference(*key, figure, statistic, b, n, allowed,
                                              _verdict(b, n, allowed)))
    return Comparison(str(base.get("scenario")), str(new.get("scenario")), tolerance,
                      differences, sorted(set(base_rows) - set(new_rows)),
                      sorted(set(new_rows) - set(base_rows)))


def compare_runs(base_dir: Path, new_dir: Path, tolerance: float = 0.1) -> Comparison:
    return compare(load_summary(base_dir), load_summary(new_dir), tolerance)


def parse_tolerance(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1. ValueError for anything else, or a negative tolerance."""
    value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    if value < 0:
        raise ValueError(f"tolerance {text!r} is negative")
    return value


def worst_first(differences: Sequence[Difference]) -> list[Difference]:
    """Worse first (by how far over), then the rest in their order."""
    order = {"worse": 0, "better": 1, "same": 2}
    return sorted(differences, key=lambda d: (order[d.verdict], -(d.new - d.allowed)))


__all__ = ["FIGURES", "STATISTICS", "CompareError", "Comparison", "Difference", "compare",
           "compare_runs", "load_summary", "parse_tolerance", "worst_first"]
