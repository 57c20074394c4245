"""examples/ci/: the gate's scenarios validate with their budgets, its script is valid shell
and names only what exists, the workflow is valid YAML and runs the script."""

from __future__ import annotations

import subprocess

import yaml

from lab.cli.main import EXIT_OK, main
from lab.scenario.load import load_scenario
from tests.conftest import REPO

CI = REPO / "examples" / "ci"


def test_the_gate_scenarios_validate_and_carry_budgets() -> None:
    scenarios = sorted(CI.glob("*.yaml"))
    assert len(scenarios) == 2
    assert main(["validate", "--scenario", *map(str, scenarios)]) == EXIT_OK
    for path in scenarios:
        assert load_scenario(path).scenario.expect, path


def test_the_gate_script_and_the_workflow() -> None:
    script = CI / "gate.sh"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    for path in CI.glob("*.yaml"):
        assert f"examples/ci/{path.name}" in text
    for option in ("--junit", "--json", "--quiet"):
        assert option in text
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = [step.get("run", "") for step in workflow["jobs"]["gate"]["steps"]]
    assert "sudo make setup" in steps and any("examples/ci/gate.sh" in s for s in steps)
