"""lab.backend.evidence and what `up` does when a lab is not ready: why sessions are down in
the daemons' words (fake vty sockets), the evidence folder (a fake state directory), and
labs.up keeping evidence and removing the lab unless told to keep it (a fake backend)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab import labs, pipeline
from lab.backend.evidence import (
    EVIDENCE_VARIABLE,
    README,
    describe_neighbor,
    keep_evidence,
    new_evidence_dir,
    session_reasons,
)
from lab.backend.ready import ReadyReport
from lab.backend.state import LabState, save_state
from lab.backend.teardown import TeardownReport
from lab.plan import LabPlan
from lab.render import RenderedLab
from tests.conftest import TOPOLOGIES
from tests.unit.fakevty import FakeVty, Reply, short_dir

MINI = TOPOLOGIES / "two-sites-mini.yaml"


@pytest.fixture(scope="module")
def plan() -> LabPlan:
    return pipeline.plan(MINI)


@pytest.fixture
def state_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with short_dir() as folder:
        monkeypatch.setenv("ANYLAB_STATE_DIR", str(folder / "s"))
        monkeypatch.setenv(EVIDENCE_VARIABLE, str(folder / "e"))
        yield folder


def make_state(lab: str = "evl") -> LabState:
    state = LabState(lab=lab, topology_file=str(MINI), topology="two-sites-mini",
                     phase="not-ready", created_wall="2026-12-02T00:00:00+00:00")
    save_state(state)
    return state


def test_a_neighbor_is_described_by_state_reset_and_connections() -> None:
    text = describe_neighbor("alpha-s1", {
        "bgpState": "Idle", "lastResetDueTo": "Waiting for NHT", "lastResetTimerMsecs": 41250,
        "lastErrorCodeSubcode": "000000", "connectionsEstablished": 0, "connectionsDropped": 0})
    assert text == ("Idle at alpha-s1, last reset 41.2 s ago: Waiting for NHT; 0 connections "
                    "established, 0 dropped")
    assert "error 0604" in describe_neighbor("x", {"bgpState": "Active", "lastResetDueTo":
                                                   "BGP Notification send",
                                                   "lastErrorCodeSubcode": "0604"})
    assert describe_neighbor("x", None) == "x does not know the peer"
    assert describe_neighbor("x", {"error": "no socket"}) == "x does not answer (no socket)"


def test_session_reasons_ask_both_frr_ends(state_root: Path, plan: LabPlan) -> None:
    state = make_state()
    session = next(s for s in plan.sessions if s.id == "alpha-s1--alpha-l2")
    spine = state.directory / "nodes" / "alpha-s1"
    spine.mkdir(parents=True)
    neighbors = {str(session.b_address): {"bgpState": "Idle", "lastResetDueTo": "Waiting for NHT",
                                          "lastResetTimerMsecs": 2000,
                                          "connectionsEstablished": 0,
                                          "connectionsDropped": 0, "messageStats": {"x": 1}}}
    with FakeVty(spine / "bgpd.vty", {"show bgp neighbors json": Reply(json.dumps(neighbors))}):
        reasons = session_reasons(state, plan, [session])
    why = reasons[session.id]
    assert why.startswith("Idle at alpha-s1, last reset 2.0 s ago: Waiting for NHT")
    assert "; alpha-l2 does not answer" in why  # no bgpd socket at the leaf's end


def test_evidence_keeps_files_but_not_sockets(state_root: Path, plan: LabPlan) -> None:
    state = make_state()
    node = state.directory / "nodes" / "alpha-l1"
    node.mkdir(parents=True)
    (node / "frr.log").write_text("a log line\n")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(node / "zebra.vty"))
        folder = keep_evidence(state, plan, new_evidence_dir(state.lab, "not-ready"),
                               "not ready: 1 of 11 sessions down",
                               status=lambda: {"ready": False})
    assert folder.parent == state_root / "e"
    assert folder.name.endswith("-evl-not-ready")
    assert (folder / "lab" / "nodes" / "alpha-l1" / "frr.log").read_text() == "a log line\n"
    assert not (folder / "lab" / "nodes" / "alpha-l1" / "zebra.vty").exists()
    assert json.loads((folder / "status.json").read_text()) == {"ready": False}
    sessions = json.loads((folder / "sessions.json").read_text())
    assert len(sessions) == len(plan.sessions)
    readme = (folder / README).read_text()
    assert "not ready: 1 of 11 sessions down" in readme
    assert (folder / "frr" / "alpha-l1.txt").read_text().count("(no answer") >= 3


def test_evidence_folders_of_one_second_stay_apart(state_root: Path) -> None:
    first, second = new_evidence_dir("evl", "x"), new_evidence_dir("evl", "x")
    assert first != second and first.is_dir() and second.is_dir()


# ------------------------------------------------------------------ labs.up with a fake backend


@dataclass
class NeverReady:
    """A backend whose lab deploys but never becomes ready."""

    name: str = "fake"
    destroyed: list[str] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    def deploy(self, lab: str, plan: LabPlan, rendered: RenderedLab, topology_file: Path,
               progress: Any, driver_kind: str | None = None) -> LabState:
        return make_state(lab)

    def wait_ready(self, state: LabState, plan: LabPlan, timeout_s: float,
                   progress: Any) -> ReadyReport:
        return ReadyReport(False, timeout_s, len(plan.sessions), routing_settling=True)

    def destroy(self, lab: str, force: bool = False) -> TeardownReport:
        self.destroyed.append(lab)
        return TeardownReport(lab, existed=True)

    def status(self, state: LabState, plan: LabPlan) -> dict[str, Any]:
        return {}

    def exec_argv(self, lab: str, node: str, argv: list[str]) -> list[str]:
        return argv

    def keep_evidence(self, state: LabState, plan: LabPlan | None, folder: Path,
                      why: str) -> Path:
        (folder / README).write_text(why)
        self.kept.append(folder)
        return folder


@pytest.mark.parametrize("keep_on_failure", [False, True])
def test_up_that_is_not_ready_keeps_evidence(state_root: Path, keep_on_failure: bool) -> None:
    backend = NeverReady()
    result = labs.up(MINI, "evu", lambda _m: None, timeout_s=0.5, backend=backend,
                     keep_on_failure=keep_on_failure)
    assert not result.report.ready
    assert backend.kept == [result.report.evidence]
    assert result.report.evidence is not None
    assert "routing has not settled" in (result.report.evidence / README).read_text()
    assert f"evidence kept in {result.report.evidence}" in result.report.explain()
    assert result.kept is keep_on_failure
    assert backend.destroyed == ([] if keep_on_failure else ["evu"])
