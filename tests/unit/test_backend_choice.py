"""Which backend builds a lab: `--backend` when given, else the topology's
`defaults.backend` (netns unless it says otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab import pipeline
from lab.backend import labs
from lab.backend.fake import FakeBackend
from tests.conftest import TOPOLOGIES


def _with_backend(tmp_path: Path, backend: str) -> Path:
    text = (TOPOLOGIES / "two-sites-mini.yaml").read_text()
    path = tmp_path / "mini.yaml"
    path.write_text(text.replace("defaults:\n", f"defaults:\n  backend: {backend}\n", 1))
    return path


def test_the_default_is_netns() -> None:
    assert pipeline.plan(TOPOLOGIES / "two-sites-mini.yaml").backend == "netns"


def test_the_topology_names_its_backend(tmp_path: Path) -> None:
    assert pipeline.plan(_with_backend(tmp_path, "containerlab")).backend == "containerlab"


def test_up_uses_the_topologys_backend_unless_told(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def named(name: str) -> Any:
        asked.append(name)
        return FakeBackend()

    monkeypatch.setattr(labs, "backend_named", named)
    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path / "state"))
    topology = _with_backend(tmp_path, "containerlab")
    labs.up(topology, "choice", lambda _m: None)
    assert asked == ["containerlab"]
    labs.up(topology, "choice2", lambda _m: None, backend=FakeBackend())
    assert asked == ["containerlab"]
