"""lab.backend.evidence and what `up` does when a lab is not ready: why sessions are down in
the daemons' words (fake vty sockets), the evidence folder (a fake state directory), and
labs.up keeping evidence and removing the lab unless told to keep it (the fake backend)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import pipeline
from lab.backend import labs
from lab.backend.evidence import (
    EVIDENCE_VARIABLE,
    README,
    describe_neighbor,
    keep_evidence,
    new_evidence_dir,
    session_reasons,
    within_time,
)
from lab.backend.fake import FakeBackend
from lab.backend.state import LabPhase, LabState, save_state
from lab.plan.model import LabPlan
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
                     phase=LabPhase.NOT_READY, created_wall="2026-12-02T00:00:00+00:00")
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
        reasons = session_reasons(FakeBackend(), state, plan, [session])
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
        folder = keep_evidence(FakeBackend(), state, plan,
                               new_evidence_dir(state.lab, "not-ready"),
                               "not ready: 1 of 11 sessions down",
                               status=lambda: {"ready": False},
                               kernel={"al.evl.alpha-l1": "2: alpha-s1@if2: <UP>"})
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
    assert (folder / "kernel" / "al.evl.alpha-l1.txt").read_text() == "2: alpha-s1@if2: <UP>"


def test_evidence_folders_of_one_second_stay_apart(state_root: Path) -> None:
    first, second = new_evidence_dir("evl", "x"), new_evidence_dir("evl", "x")
    assert first != second and first.is_dir() and second.is_dir()


# ------------------------------------------------------------------ labs.up with a fake backend


@pytest.mark.parametrize("keep_on_failure", [False, True])
def test_up_that_is_not_ready_keeps_evidence(state_root: Path, keep_on_failure: bool) -> None:
    backend = FakeBackend(ready=False)
    result = labs.up(MINI, "evu", lambda _m: None, timeout_s=0.5, backend=backend,
                     keep_on_failure=keep_on_failure)
    assert not result.report.ready
    assert result.report.evidence is not None
    assert ("keep_evidence", "evu", str(result.report.evidence)) in backend.journal
    assert "was not ready after" in (result.report.evidence / README).read_text()
    assert f"evidence kept in {result.report.evidence}" in result.report.explain()
    assert result.kept is keep_on_failure
    assert (("destroy", "evu") in backend.journal) is not keep_on_failure


def test_a_part_of_the_evidence_stops_asking_when_its_time_is_out() -> None:
    asked: list[str] = []

    def slow(name: str) -> str:
        asked.append(name)
        time.sleep(0.2)
        return f"{name} read\n"

    names = [f"ns{i}" for i in range(12)]
    views = within_time(names, slow, budget_s=0.1)
    assert list(views) == names  # every name has its place, in order
    read = [n for n in names if views[n] == f"{n} read\n"]
    assert read == asked and 1 <= len(read) <= 4  # the first four at once, no more after
    assert all(views[n] == "(not read: this part of the evidence had 0 s)\n"
               for n in names if n not in read)
    assert within_time(names[:2], slow) == {"ns0": "ns0 read\n", "ns1": "ns1 read\n"}
