"""Golden tests: the shipped topologies always expand to the same plan and configurations.

Regenerate after an intended change with `ANYLAB_UPDATE_GOLDEN=1 make test-unit` and review
the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab import pipeline
from tests.conftest import TOPOLOGIES

GOLDEN = Path(__file__).resolve().parent
UPDATE = os.environ.get("ANYLAB_UPDATE_GOLDEN") == "1"
PLAN_CASES = ["two-sites-mini", "three-sites", "two-sites-dual", "three-sites-dual"]
RENDER_CASES = ["two-sites-mini", "two-sites-dual"]


def _compare(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run with ANYLAB_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs from the golden copy"


@pytest.mark.parametrize("name", PLAN_CASES)
def test_plan_matches_golden(name: str) -> None:
    plan = pipeline.plan(TOPOLOGIES / f"{name}.yaml")
    _compare(GOLDEN / name / "plan.json", json.dumps(plan.to_dict(), indent=1) + "\n")


def _render_cases() -> list[tuple[str, str, str]]:
    cases = []
    for name in RENDER_CASES:
        _, rendered = pipeline.render(TOPOLOGIES / f"{name}.yaml")
        for node, files in sorted(rendered.files.items()):
            cases += [(name, node, file) for file in sorted(files)]
    return cases


@pytest.mark.parametrize(("name", "node", "file"), _render_cases())
def test_rendered_file_matches_golden(name: str, node: str, file: str) -> None:
    _, rendered = pipeline.render(TOPOLOGIES / f"{name}.yaml")
    _compare(GOLDEN / name / "configs" / node / file, rendered.files[node][file])


@pytest.mark.parametrize("name", RENDER_CASES)
def test_no_stale_golden_files(name: str) -> None:
    _, rendered = pipeline.render(TOPOLOGIES / f"{name}.yaml")
    expected = {f"{node}/{file}" for node, files in rendered.files.items() for file in files}
    folder = GOLDEN / name / "configs"
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert present == expected
