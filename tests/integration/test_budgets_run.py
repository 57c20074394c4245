"""Budgets on a real run: `anylab run` on a copy of the mini lab's node-crash scenario with a
budget it cannot keep exits with the budget code and its JUnit file shows the failure; with a
budget it keeps, exit 0 and a pass. `--json` prints summary.json, verdicts included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from lab.cli.main import EXIT_BUDGET, EXIT_OK
from tests.conftest import REPO, TOPOLOGIES, require_root, require_tool
from tests.integration.labfixture import machine_lagged, running_lab
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
SCENARIO = REPO / "tests" / "data" / "scenarios" / "mini-node-crash.yaml"


@pytest.fixture(scope="module")
def mini() -> Iterator[labs.UpResult]:
    require_root()
    require_tool("vtysh", "gobgpd", "nft", "nsenter", "conntrack")
    with running_lab(TOPOLOGIES / "two-sites-mini.yaml", "budget") as result:
        yield result


def _run(mini: labs.UpResult, tmp_path: Path, bound: str) -> tuple[int, dict[str, object],
                                                                 ET.Element]:
    """The run's exit code, summary and JUnit file; run again when the machine lagged (a
    run the instrument marks invalid has no verdicts to check)."""
    text = SCENARIO.read_text().replace("topology: topologies/",
                                        f"topology: {TOPOLOGIES}/")
    scenario = tmp_path / "budget.yaml"
    budget = f'  - {{fault: node-crash, outage_ms: {{max: "{bound}"}}}}\n'
    scenario.write_text(f"{text}expect:\n{budget}")
    outcomes: list[tuple[int, dict[str, object], ET.Element]] = []

    def attempt(number: int) -> dict[str, object]:
        junit = tmp_path / f"junit-{number}.xml"
        result = subprocess.run(
            [sys.executable, "-m", "lab.cli", "run", str(scenario), "--name", mini.state.lab,
             "--runs", str(tmp_path / f"runs-{number}"), "--json", "--junit", str(junit)],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=300, check=False)
        outcomes.append((result.returncode, json.loads(result.stdout),
                         ET.parse(junit).getroot()))
        assert not machine_lagged(outcomes[-1][1]), outcomes[-1][1]["trials"]
        return outcomes[-1][1]

    on_a_quiet_machine(attempt)
    return outcomes[-1]


def test_a_budget_the_run_cannot_keep_fails_it(mini: labs.UpResult, tmp_path: Path) -> None:
    code, summary, junit = _run(mini, tmp_path, "<= 1")
    assert code == EXIT_BUDGET
    verdicts = summary["budgets"]
    assert isinstance(verdicts, list)
    failed = [v for v in verdicts if not v["pass"]]
    assert [(v["client"], v["service"]) for v in failed] == [("east-c1", "echo")]
    assert junit.get("failures") == "1" and junit.get("tests") == str(len(verdicts))
    case = next(c for c in junit.findall("testcase") if c.find("failure") is not None)
    assert "east-c1/echo outage_ms max <= 1" in (case.get("name") or "")


def test_a_budget_the_run_keeps_passes(mini: labs.UpResult, tmp_path: Path) -> None:
    code, summary, junit = _run(mini, tmp_path, "<= 1500")
    assert code == EXIT_OK
    assert summary["complete"] is True
    assert junit.get("failures") == "0" and int(junit.get("tests") or 0) >= 1
    assert all(v["pass"] for v in summary["budgets"])  # type: ignore[union-attr]
