"""Each BGP session has one end that only listens (lab.plan.model.SessionPlan.listener): the
rendered configurations say so on exactly that end, and routers are configured after the
peers they connect to (lab.backend.bringup.listener_waves)."""

from __future__ import annotations

import tomllib

import pytest

from lab import pipeline
from lab.backend.bringup import frr_nodes, listener_waves
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
