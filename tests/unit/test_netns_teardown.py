"""The netns backend's teardown goes over what is left until nothing is: an interrupted `up`
may still write into the lab's folder or make a namespace after the first pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab.backend.netns import teardown


@pytest.fixture
def lab_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(teardown, "RETRY_S", 0.0)
    monkeypatch.setattr(teardown, "stop_lab_processes", lambda *_a, **_k: (0, 0))
    monkeypatch.setattr(teardown, "tagged_pids", lambda _lab: [])
    folder = tmp_path / "tdlab"
    (folder / "n1").mkdir(parents=True)
    return folder


def test_a_folder_written_again_after_the_first_pass_is_removed(
        lab_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespaces = [["tdlab-n1"], [], [], []]
    removed: list[list[str]] = []
    rmtree_calls = []
    real_rmtree = shutil.rmtree

    def rmtree(path: Path, ignore_errors: bool = False) -> None:
        real_rmtree(path, ignore_errors=ignore_errors)
        rmtree_calls.append(path)
        if len(rmtree_calls) == 1:  # a late writer recreates it
            (Path(path) / "n1").mkdir(parents=True)

    monkeypatch.setattr(teardown.shutil, "rmtree", rmtree)
    monkeypatch.setattr(teardown, "lab_namespaces", lambda _lab: namespaces.pop(0))
    monkeypatch.setattr(teardown, "_remove_namespaces", removed.append)
    report = teardown.destroy("tdlab", force=True)
    assert not lab_folder.exists()
    assert report.leftovers == [] and len(rmtree_calls) == 2
    assert removed[0] == ["tdlab-n1"] and report.namespaces == 1


def test_what_stays_after_every_pass_is_reported(lab_folder: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(teardown, "lab_namespaces", lambda _lab: ["tdlab-n1"])
    passes: list[list[str]] = []
    monkeypatch.setattr(teardown, "_remove_namespaces", passes.append)
    report = teardown.destroy("tdlab", force=True)
    assert len(passes) == teardown.PASSES
    assert report.leftovers == ["namespace tdlab-n1"]
