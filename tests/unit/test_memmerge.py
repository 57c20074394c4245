"""lab.backend.memmerge on a stand-in for /sys/kernel/mm/ksm: the first merging lab records
the machine's settings, the last one to go puts them back, and a machine without KSM gets a
clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.backend import labs, memmerge
from lab.backend.fake import FakeBackend
from lab.errors import BackendError
from tests.conftest import TOPOLOGIES


@pytest.fixture
def ksm(tmp_path: Path) -> Path:
    folder = tmp_path / "ksm"
    folder.mkdir()
    (folder / "run").write_text("0\n")
    (folder / "pages_to_scan").write_text("100\n")
    return folder


def settings(ksm: Path) -> dict[str, str]:
    return {name: (ksm / name).read_text().strip() for name in memmerge.SETTINGS}


def test_started_then_given_back_when_no_lab_merges(ksm: Path, tmp_path: Path) -> None:
    memmerge.start_ksm(ksm, tmp_path)
    assert settings(ksm) == {"run": "1", "pages_to_scan": str(memmerge.PAGES_TO_SCAN)}
    memmerge.start_ksm(ksm, tmp_path)  # a second lab: the first values stay recorded
    assert not memmerge.release_ksm(["other-lab"], ksm, tmp_path)  # it still merges
    assert settings(ksm)["run"] == "1"
    assert memmerge.release_ksm([], ksm, tmp_path)
    assert settings(ksm) == {"run": "0", "pages_to_scan": "100"}
    assert not (tmp_path / memmerge.RECORD).exists()
    assert not memmerge.release_ksm([], ksm, tmp_path)  # nothing recorded: nothing to do


def test_a_machine_without_ksm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="CONFIG_KSM"):
        memmerge.start_ksm(tmp_path / "missing", tmp_path)
    assert not (tmp_path / memmerge.RECORD).exists()


def test_merging_argv_starts_through_mergeexec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memmerge, "mergeexec_binary", lambda: Path("/x/mergeexec"))
    assert memmerge.merging_argv(["/usr/lib/frr/bgpd", "-d"]) == [
        "/x/mergeexec", "/usr/lib/frr/bgpd", "-d"]


def test_only_the_netns_backend_merges() -> None:
    with pytest.raises(BackendError, match="netns backend only"):
        labs.up(TOPOLOGIES / "two-sites-mini.yaml", "mm-fake", lambda _m: None,
                backend=FakeBackend(), merge_memory=True)
