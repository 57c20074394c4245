"""Node operations as configuration and input: graceful restart rendered for each speaker,
the drain policy and its attributes on the speakers' commands, and the scenario checks of the
node-drain and speaker-restart faults."""

from __future__ import annotations

import tomllib
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from lab import pipeline
from lab.apps.agent.drain import Drain, read_drain, write_drain
from lab.apps.agent.speaker import FrrSpeaker, GobgpSpeaker
from lab.backend.daemons import NodeFiles, gobgpd_argv
from lab.errors import InputError
from lab.plan.model import DrainPlan, LinkKind
from lab.render.configs import render_gobgpd_toml, render_node
from lab.scenario.load import load_scenario
from tests.conftest import TOPOLOGIES

MINI = (TOPOLOGIES / "two-sites-mini.yaml").read_text()


def _mini(tmp_path: Path, alpha_extra: str = "", beta_extra: str = "") -> Path:
    text = MINI.replace("{name: alpha-k8s, nodes: 2, pods_per_node: 1}",
                        "{name: alpha-k8s, nodes: 2, pods_per_node: 1" + alpha_extra + "}")
    text = text.replace("{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: frr}",
                        "{name: beta-k8s, nodes: 2, pods_per_node: 1, speaker: frr"
                        + beta_extra + "}")
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return path


def test_graceful_restart_takes_each_speakers_defaults(tmp_path: Path) -> None:
    plan = pipeline.plan(_mini(tmp_path, ", graceful_restart: true",
                               ", graceful_restart: {restart_time: 30s}"))
    gobgp = tomllib.loads(render_gobgpd_toml(plan, plan.node("alpha-k8s-n1")))
    (neighbor,) = gobgp["neighbors"]
    assert neighbor["graceful-restart"]["config"] == {
        "enabled": True, "restart-time": 90, "deferral-time": 360, "notification-enabled": True}
    assert neighbor["afi-safis"][0]["mp-graceful-restart"]["config"]["enabled"] is True
    assert neighbor["transport"]["config"]["passive-mode"] is False  # the node connects
    frr = render_node(plan, plan.node("beta-k8s-n1"))["frr.conf"]
    assert " bgp graceful-restart\n bgp graceful-restart restart-time 30\n" in frr
    assert " bgp graceful-restart preserve-fw-state\n" in frr
    assert " passive" not in frr
    for session in plan.sessions:
        if session.kind == LinkKind.NODE:
            assert session.listener is None, session.id
    leaf = render_node(plan, plan.node("alpha-l1"))["frr.conf"]
    assert "graceful-restart" not in leaf  # FRR's default helper mode is all a leaf needs


def test_without_graceful_restart_nothing_changes(tmp_path: Path) -> None:
    plan = pipeline.plan(_mini(tmp_path))
    (neighbor,) = tomllib.loads(render_gobgpd_toml(plan, plan.node("alpha-k8s-n1")))[
        "neighbors"]
    assert "graceful-restart" not in neighbor
    assert neighbor["transport"]["config"]["passive-mode"] is True
    assert "graceful-restart" not in render_node(plan, plan.node("beta-k8s-n1"))["frr.conf"]
    assert plan.cluster("alpha-k8s").drain == DrainPlan("prepend", 1, 2000.0)


def test_a_restarting_gobgpd_says_so() -> None:
    files = NodeFiles(Path("/run/x/nodes/n1"))
    assert gobgpd_argv(files, restarting=True)[-1] == "-r"
    assert "-r" not in gobgpd_argv(files)


def test_the_drain_file_round_trips_and_refuses_nonsense(tmp_path: Path) -> None:
    path = tmp_path / "drain.json"
    assert read_drain(path) is None
    write_drain(path, Drain("prepend", 2))
    assert read_drain(path) == Drain("prepend", 2)
    path.write_text('{"method": "explode"}')
    assert read_drain(path) is None


def test_the_gobgp_speaker_sends_the_drains_attributes(tmp_path: Path) -> None:
    log = tmp_path / "argv"
    fake = tmp_path / "gobgp"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    speaker = GobgpSpeaker("127.0.0.1", 50051, cli=str(fake), asn=65101)
    vip = IPv4Network("192.0.2.53/32")
    speaker.announce(vip, Drain("gshut"))
    speaker.announce(vip, Drain("prepend", 2))
    speaker.announce(vip, Drain("withdraw"))
    speaker.announce(vip)
    assert log.read_text().splitlines() == [
        "-u 127.0.0.1 -p 50051 global rib add -a ipv4 192.0.2.53/32 community 65535:0",
        "-u 127.0.0.1 -p 50051 global rib add -a ipv4 192.0.2.53/32 aspath 65101 65101",
        "-u 127.0.0.1 -p 50051 global rib add -a ipv4 192.0.2.53/32",
        "-u 127.0.0.1 -p 50051 global rib add -a ipv4 192.0.2.53/32"]


def test_the_frr_speaker_puts_a_route_map_on_the_network_statement(tmp_path: Path) -> None:
    log = tmp_path / "argv"
    fake = tmp_path / "vtysh"
    fake.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {log}\necho >> {log}\n')
    fake.chmod(0o755)
    speaker = FrrSpeaker(tmp_path, 65101, vtysh=str(fake))
    speaker.announce(IPv4Network("192.0.2.53/32"), Drain("prepend", 2))
    speaker.announce(IPv4Network("192.0.2.53/32"), Drain("gshut"))
    prepend, gshut = log.read_text().splitlines()
    assert ("-c|route-map NODE-DRAIN-PREPEND-2 permit 10|-c|set as-path prepend 65101 65101|"
            "-c|exit|-c|router bgp 65101|") in prepend
    assert prepend.endswith("-c|network 192.0.2.53/32 route-map NODE-DRAIN-PREPEND-2|")
    assert "-c|set community 65535:0 additive|" in gshut


SCENARIO = """\
name: ops
topology: {topology}
steps:
{steps}
"""


@pytest.mark.parametrize(("steps", "message"), [
    ("  - {fault: node-drain, target: alpha-l1}", "alpha-l1"),
    ("  - {fault: speaker-restart, target: east}", "east"),
    ("  - {fault: site-drain, target: alpha, method: withdraw}", "'withdraw' is node-drain's"),
    ("  - {fault: link-down, target: alpha-l1--alpha-k8s-n1, prepend: 2}",
     "`prepend:` does not apply to link-down"),
    ("  - {fault: speaker-restart, target: alpha-k8s-n1, method: gshut}",
     "`method:` does not apply to speaker-restart"),
])
def test_node_operations_check_their_targets_and_parameters(tmp_path: Path, steps: str,
                                                            message: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.format(topology=TOPOLOGIES / "two-sites-mini.yaml", steps=steps))
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    assert message in str(caught.value)


def test_node_operations_load_on_cluster_nodes(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.format(
        topology=TOPOLOGIES / "two-sites-mini.yaml",
        steps="  - {fault: node-drain, target: alpha-k8s-n1, method: gshut, duration: 5s}\n"
              "  - {fault: speaker-restart, target: beta-k8s-n2, duration: 2s}"))
    loaded = load_scenario(path)
    assert [s.fault for s in loaded.scenario.steps] == ["node-drain", "speaker-restart"]


def test_a_drain_policy_with_an_unknown_method_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        pipeline.plan(_mini(tmp_path, ", drain: {method: shutdown}"))
    text = str(caught.value)
    assert "drain.method" in text and "'gshut'" in text


def test_dual_homed_nodes_get_a_pair_of_leafs_a_session_and_a_route_each(
        tmp_path: Path) -> None:
    path = tmp_path / "dual.yaml"
    path.write_text(MINI.replace("fabric: {spines: 1, leafs: 2}\n    clusters:\n      - {name: "
                                 "alpha-k8s, nodes: 2, pods_per_node: 1}",
                                 "fabric: {spines: 1, leafs: 4}\n    clusters:\n      - {name: "
                                 "alpha-k8s, nodes: 3, pods_per_node: 1, leafs_per_node: 2}"))
    plan = pipeline.plan(path)
    peers = {n: sorted(s.side(n)[3] for s in plan.sessions_of(n))
             for n in ("alpha-k8s-n1", "alpha-k8s-n2", "alpha-k8s-n3")}
    assert peers == {"alpha-k8s-n1": ["alpha-l1", "alpha-l2"],
                     "alpha-k8s-n2": ["alpha-l3", "alpha-l4"],
                     "alpha-k8s-n3": ["alpha-l1", "alpha-l2"]}
    node = plan.node("alpha-k8s-n1")
    assert [(str(r.prefix), r.dev, r.src) for r in node.routes] == [
        ("0.0.0.0/0", "alpha-l1", node.pod_gateway.ip),
        ("0.0.0.0/0", "alpha-l2", node.pod_gateway.ip)]
    files = render_node(plan, plan.node("alpha-l2"))["frr.conf"]
    assert str(node.pod_cidr) in files  # the second leaf accepts the node's prefixes too


def test_a_dual_homed_cluster_needs_two_leafs(tmp_path: Path) -> None:
    path = tmp_path / "dual.yaml"
    path.write_text(MINI.replace("{name: alpha-k8s, nodes: 2, pods_per_node: 1}",
                                 "{name: alpha-k8s, nodes: 2, pods_per_node: 1, leafs: [2], "
                                 "leafs_per_node: 2}"))
    with pytest.raises(InputError) as caught:
        pipeline.plan(path)
    assert "a dual-homed node needs two leafs" in str(caught.value)
