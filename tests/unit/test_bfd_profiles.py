"""MetalLB's BFD profiles: a metallb cluster's node end runs its own bfdd profile (receive and
transmit intervals, multiplier, echo, passive) while its leaf keeps the node sessions' BFD;
what the checks refuse, and what each router's configuration holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import pipeline
from lab.backend.bfdstart import attachments, boot_config
from lab.errors import InputError
from lab.plan.model import BfdTimers, LabPlan, LinkKind
from lab.render.configs import render_node
from tests.conftest import TOPOLOGIES

PROFILE = ("bfd_profile: {receive_interval: 200ms, transmit_interval: 100ms, multiplier: 5, "
           "echo: true, echo_interval: 40ms, passive: true}")


def _plan(tmp_path: Path, beta: str = PROFILE, alpha: str = "") -> LabPlan:
    text = (TOPOLOGIES / "two-sites-mini.yaml").read_text()
    for cluster, extra in (("{name: alpha-k8s, nodes: 2, pods_per_node: 1", alpha),
                           ("{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: frr", beta)):
        assert cluster in text
        if extra:
            text = text.replace(cluster, f"{cluster}, {extra}")
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return pipeline.plan(path)


def test_the_profile_applies_to_the_node_end_only(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    node_sessions = [s for s in plan.sessions if s.kind == LinkKind.NODE and "beta" in s.b]
    assert node_sessions
    for session in node_sessions:
        assert session.bfd_at(session.b) == BfdTimers(200, 100, 5, echo_ms=40, passive=True)
        assert session.bfd_at(session.a) == BfdTimers(300, 300, 3)
    fabric = next(s for s in plan.sessions if s.kind == LinkKind.FABRIC)
    assert fabric.bfd_at(fabric.a) == fabric.bfd_at(fabric.b) == BfdTimers(300, 300, 3)
    alpha = next(s for s in plan.sessions if s.kind == LinkKind.NODE and "alpha" in s.b)
    assert alpha.bfd_at(alpha.b) == alpha.timers.bfd  # no profile: both ends alike


def test_the_node_renders_the_profile_and_its_leaf_does_not(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    node = render_node(plan, plan.node("beta-k8s-n1"))["frr.conf"]
    assert (" profile bfd-200-100x5-echo40-passive\n  detect-multiplier 5\n"
            "  receive-interval 200\n  transmit-interval 100\n  echo-mode\n"
            "  echo transmit-interval 40\n  echo receive-interval 40\n  passive-mode\n"
            " exit\n") in node
    assert "bfd profile bfd-200-100x5-echo40-passive\n" in node
    assert "bfd-300x3" not in node
    session = next(s for s in plan.sessions if s.b == "beta-k8s-n1")
    leaf = render_node(plan, plan.node(session.a))["frr.conf"]
    assert "passive-mode" not in leaf and "echo-mode" not in leaf
    assert f"neighbor {session.b_address} bfd profile bfd-300x3\n" in leaf


def test_the_boot_configuration_takes_each_ends_profile(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    session = next(s for s in plan.sessions if s.b == "beta-k8s-n1")
    by_end = {a.router: a.profile for a in attachments(plan, session)}
    assert by_end == {session.a: "bfd-300x3", session.b: "bfd-200-100x5-echo40-passive"}
    text = render_node(plan, plan.node(session.b))["frr.conf"]
    booted = boot_config(plan, session.b, text)
    assert "  profile bfd-200-100x5-echo40-passive\n" in booted
    assert " bfd profile " not in booted  # readiness attaches it once BGP is up


@pytest.mark.parametrize(("beta", "alpha", "message"), [
    ("", PROFILE, "bfd_profile is MetalLB's BFDProfile; alpha-k8s's speaker is gobgp"),
    (PROFILE + ", bgp: {bfd: false}", "", "the node sessions run no BFD"),
    ("bfd_profile: {receive_interval: 5ms}", "", "BFD interval 5 ms is outside 10 ms - 60 s"),
    ("bfd_profile: {echo_interval: 10.5ms}", "", "BFD intervals are whole milliseconds"),
    ("bfd_profile: {multiplier: 1}", "", "bfd_profile.multiplier"),
    ("bfd_profile: {pasive: true}", "", "did you mean 'passive'?"),
    ("bgp: {bfd: {interval: 70s}}", "", "clusters[0].bgp.bfd.interval"),
])
def test_bad_profiles_are_refused(tmp_path: Path, beta: str, alpha: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        _plan(tmp_path, beta, alpha)
    assert message in str(caught.value)


def test_profile_names_and_descriptions() -> None:
    assert BfdTimers(300, 300, 3).profile == "bfd-300x3"
    assert BfdTimers(300, 300, 3).describe() == "300ms x3"
    both = BfdTimers(200, 100, 5, echo_ms=40, passive=True)
    assert both.describe() == "rx 200ms tx 100ms x5, echo 40ms, passive"
