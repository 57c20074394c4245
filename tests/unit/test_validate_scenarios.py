"""`anylab validate` on scenario files: recognised by their keys (or --scenario), checked with
their topology without building anything, every problem with file:line, path and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli.main import EXIT_INPUT, EXIT_OK, main
from lab.scenario.load import looks_like_scenario
from tests.conftest import REPO, TOPOLOGIES

SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
MINI = TOPOLOGIES / "two-sites-mini.yaml"


def test_every_shipped_scenario_and_topology_validates(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    files = [str(p) for p in [*SCENARIOS, *TOPOLOGIES.glob("*.yaml")]]
    assert main(["validate", *files]) == EXIT_OK
    shown = capsys.readouterr().out
    assert shown.count("(scenario)") == len(SCENARIOS) and "(topology)" in shown


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.replace("MINI", str(MINI)))
    return path


def test_broken_scenarios_are_reported_with_line_path_and_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fault = _write(tmp_path, "fault.yaml", "name: f\ntopology: MINI\nsteps:\n"
                   "  - {fault: node-explode, target: alpha-k8s-n1}\n")
    client = _write(tmp_path, "client.yaml", "name: c\ntopology: MINI\nsteps:\n"
                    "  - {fault: node-crash, target: {serving: {client: ghost, "
                    "service: echo}}, duration: 1s}\n")
    negative = _write(tmp_path, "negative.yaml", "name: n\ntopology: MINI\nsettle: -2s\n"
                      "steps:\n  - {wait: 1s}\n")
    broken = _write(tmp_path, "yaml.yaml", "name: y\nsteps:\n  - {fault: node-crash\n")
    files = [fault, client, negative, broken]
    assert main(["validate", *map(str, files)]) == EXIT_INPUT
    lines = capsys.readouterr().err.splitlines()
    problems = [line for line in lines if line.startswith(str(tmp_path))]
    assert [p.split(":")[0] for p in problems] == [str(f) for f in files]  # in order, one each
    assert any("fault.yaml:4: steps[0].fault" in p for p in problems)
    assert any("client.yaml:4: steps[0].target.serving.client" in p and "ghost" in p
               for p in problems)
    assert any("negative.yaml:3: settle" in p for p in problems)
    assert any("yaml.yaml:4" in p and "YAML" in p for p in problems)
    assert sum(line.strip().startswith("hint:") for line in lines) == len(problems)


def test_kind_by_keys_or_by_flag(tmp_path: Path) -> None:
    assert all(looks_like_scenario(p) for p in SCENARIOS)
    assert not looks_like_scenario(MINI)
    odd = _write(tmp_path, "odd.yaml", "name: o\ntopology: MINI\nsteps:\n  - {wait: 1s}\n")
    assert main(["validate", "--scenario", str(odd)]) == EXIT_OK
    assert main(["validate", "--topology", str(odd)]) == EXIT_INPUT
