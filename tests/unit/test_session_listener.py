"""Each BGP session has one end that only listens (lab.plan.model.SessionPlan.listener): the
rendered configurations say so on exactly that end, and routers are configured after the
peers they connect to (lab.backend.bringup.listener_waves, configure_frr)."""

from __future__ import annotations

import threading
import time
import tomllib
from pathlib import Path

import pytest

from lab import pipeline
from lab.backend import bringup
from lab.backend.bringup import frr_nodes, listener_waves
from lab.backend.daemons import NodeFiles
from lab.backend.state import LabPhase, LabState
from lab.errors import BackendError
from lab.plan.model import LabPlan, LinkKind
from tests.conftest import TOPOLOGIES


@pytest.fixture(scope="module", params=["two-sites-mini.yaml", "three-sites.yaml",
                                              "three-sites-gr.yaml"])
def rendered(request: pytest.FixtureRequest) -> tuple[LabPlan, dict[str, dict[str, str]]]:
    plan, lab = pipeline.render(TOPOLOGIES / request.param)
    return plan, lab.files


def _passive_peers(files: dict[str, str]) -> set[str]:
    """Peer addresses this node only listens to."""
    if "gobgpd.toml" in files:
        config = tomllib.loads(files["gobgpd.toml"])
        return {n["config"]["neighbor-address"] for n in config.get("neighbors", [])
                if n["transport"]["config"].get("passive-mode")}
    return {line.split()[1] for line in files.get("frr.conf", "").splitlines()
            if line.strip().startswith("neighbor ") and line.strip().endswith(" passive")}


def test_exactly_the_listening_end_is_passive(
        rendered: tuple[LabPlan, dict[str, dict[str, str]]]) -> None:
    plan, files = rendered
    for session in plan.sessions:
        a_listens = str(session.b_address) in _passive_peers(files[session.a])
        b_listens = str(session.a_address) in _passive_peers(files[session.b])
        assert (a_listens, b_listens) == (session.listener == session.a,
                                          session.listener == session.b), session.id
        if session.kind == LinkKind.NODE and session.timers.graceful_restart is None:
            # the node listens: the leaf connects at once
            assert session.listener is not None
            assert plan.node(session.listener).role == "k8s-node"
        elif session.kind == LinkKind.NODE:
            # graceful restart: both connect (a restarted node must reach its leaf)
            assert session.listener is None


def test_routers_are_configured_after_the_peers_they_connect_to(
        rendered: tuple[LabPlan, dict[str, dict[str, str]]]) -> None:
    plan, _ = rendered
    waves = listener_waves(plan, frr_nodes(plan))
    wave_of = {n.name: i for i, wave in enumerate(waves) for n in wave}
    assert sorted(wave_of) == sorted(n.name for n in frr_nodes(plan))
    for session in plan.sessions:
        talker = session.b if session.listener == session.a else session.a
        if talker in wave_of and session.listener in wave_of:
            assert wave_of[session.listener] < wave_of[talker], session.id


def test_each_router_is_configured_once_its_listeners_are(
        rendered: tuple[LabPlan, dict[str, dict[str, str]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """configure_frr starts a router's vtysh as soon as the routers listening on its sessions
    have finished theirs, several at a time, every router once."""
    plan, _ = rendered
    lock = threading.Lock()
    started: dict[str, float] = {}
    finished: dict[str, float] = {}

    def apply(files: NodeFiles, path: Path | None = None) -> None:
        with lock:
            started[files.directory.name] = time.monotonic()
        time.sleep(0.01)
        with lock:
            finished[files.directory.name] = time.monotonic()

    monkeypatch.setattr(bringup.daemons, "apply_frr_config", apply)
    monkeypatch.setattr(bringup, "wait_for_sockets", lambda sockets, state: None)
    state = LabState(lab="cf", topology_file="t.yaml", topology="t", phase=LabPhase.DEPLOYING,
                     created_wall="2026-12-05T00:00:00+00:00")
    bringup.configure_frr(state, plan)
    routers = {n.name for n in frr_nodes(plan) if not bringup.reads_own_config(n)}
    assert set(started) == routers
    for session in plan.sessions:
        talker = session.b if session.listener == session.a else session.a
        if talker in routers and session.listener in routers:
            assert finished[session.listener] <= started[talker], session.id
    overlapping = sum(1 for a in started for b in started
                      if a < b and started[a] < finished[b] and started[b] < finished[a])
    assert overlapping > 0 or len(routers) < 2


def test_a_refused_configuration_fails_configure_frr(monkeypatch: pytest.MonkeyPatch) -> None:
    plan, _ = pipeline.render(TOPOLOGIES / "two-sites-mini.yaml")

    def refuse(files: NodeFiles, path: Path | None = None) -> None:
        raise BackendError(f"FRR refused the configuration in {path}")

    monkeypatch.setattr(bringup.daemons, "apply_frr_config", refuse)
    monkeypatch.setattr(bringup, "wait_for_sockets", lambda sockets, state: None)
    state = LabState(lab="cf", topology_file="t.yaml", topology="t", phase=LabPhase.DEPLOYING,
                     created_wall="2026-12-05T00:00:00+00:00")
    with pytest.raises(BackendError, match="FRR refused"):
        bringup.configure_frr(state, plan)
