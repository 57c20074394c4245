"""The mini lab, for real: FRR, GoBGP, nftables, pods answering on the VIP."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.bfdstart import attachments
from lab.backend.daemons import NodeFiles
from lab.backend.inspect import bfd_states, probe, session_states
from lab.backend.names import lab_dir, node_dir
from lab.backend.netns.names import lab_namespaces, netns_name
from lab.backend.processes import tagged_pids
from lab.backend.state import load_state
from lab.backend.vty import vty_commands
from lab.impair.namespaces import socket_in_netns
from tests.conftest import TOPOLOGIES, require_root, require_tool
from tests.integration.hostsnap import host_snapshot, snapshot_diff
from tests.integration.labfixture import assert_only_planned_neighbours, running_lab

pytestmark = [pytest.mark.integration]
MINI = TOPOLOGIES / "two-sites-mini.yaml"


@pytest.fixture(scope="module")
def host_before() -> dict[str, object]:
    require_root()
    return host_snapshot()


@pytest.fixture(scope="module")
def mini(host_before: dict[str, object]) -> Iterator[labs.UpResult]:
    require_root()
    require_tool("vtysh", "gobgpd", "nft", "nsenter")
    with running_lab(MINI, "mini") as result:
        yield result
    assert snapshot_diff(host_before, host_snapshot()) == []


def test_all_sessions_established(mini: labs.UpResult) -> None:
    states = session_states(mini.backend, mini.state, mini.plan)
    assert len(states) == len(mini.plan.sessions) == 11
    assert all(s.established for s in states), [s for s in states if not s.established]


def test_start_has_no_bgp_reset_and_bfd_runs_on_every_session(mini: labs.UpResult) -> None:
    """BFD is switched on per session once BGP is Established (lab.backend.bfdstart): no
    session went down during the start, every BFD session is up, and each bgpd runs the BFD
    lines of its frr.conf; what only the start needs (static bfdd peers, a short coalesce
    time) is gone."""
    bfd = bfd_states(mini.backend, mini.state, mini.plan, list(mini.plan.sessions))
    assert bfd and all(s.state == "up" for s in bfd), bfd
    assert load_state(mini.state.lab).bfd_pending == []
    assert load_state(mini.state.lab).boot_pending == []
    for router in {a.router for s in mini.plan.sessions for a in attachments(mini.plan, s)}:
        files = NodeFiles(node_dir(mini.state.directory, router))
        log = files.log("frr").read_text()
        assert "%ADJCHANGE" in log and " Down" not in "".join(
            line for line in log.splitlines(keepends=True) if "%ADJCHANGE" in line), log
        assert "BFD Down" not in log
        running = vty_commands(files.vty_socket("bgpd"), ["enable", "show running-config"])[1]
        wanted = {a.line.strip() for s in mini.plan.sessions for a in attachments(mini.plan, s)
                  if a.router == router}
        assert wanted <= {line.strip() for line in running.splitlines()}
        assert wanted <= {line.strip() for line in files.frr_conf.read_text().splitlines()}
        assert "coalesce-time" not in running
        bfdd = vty_commands(files.vty_socket("bfdd"), ["enable", "show running-config"])[1]
        assert " peer " not in bfdd, bfdd
        peers = json.loads(vty_commands(files.vty_socket("bfdd"),
                                        ["enable", "show bfd peers json"])[1])
        assert peers and all(p["status"] == "up" for p in peers), peers


def test_each_client_lands_on_its_nearest_site(mini: labs.UpResult) -> None:
    expected = {"east-c1": "alpha", "west-c1": "beta"}
    # what `up` reported is the settled answer, not one taken while routes still spread
    assert {(a.client, a.site) for a in mini.report.answers} == set(expected.items())
    for client, site in expected.items():
        for service in mini.plan.services:
            answer = probe(mini.backend, mini.state, client, service)
            assert answer.site == site, answer
            assert answer.rtt_ms is not None and answer.rtt_ms > 0


def _udp_answers(lab: str, client: str, vip: str, port: int, flows: int) -> list[str]:
    """Send one datagram from each of `flows` source ports; return the answering nodes."""
    nodes = []
    for seq in range(flows):
        sock = socket_in_netns(netns_name(lab, client), socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.settimeout(1.0)
            request = struct.pack("!QQ", seq, time.monotonic_ns())
            sock.sendto(request, (vip, port))
            reply = sock.recv(4096)
            nodes.append(reply[len(request):].decode().split('"node":"')[1].split('"')[0])
        finally:
            sock.close()
    return nodes


def test_ecmp_spreads_flows_over_the_nodes_of_a_site(mini: labs.UpResult) -> None:
    echo = next(s for s in mini.plan.services if s.name == "echo")
    nodes = _udp_answers(mini.state.lab, "east-c1", str(echo.vip), echo.port, 40)
    assert set(nodes) == {"alpha-k8s-n1", "alpha-k8s-n2"}
    assert min(nodes.count(n) for n in set(nodes)) >= 5  # not a fluke of one flow


def test_no_namespace_asks_for_neighbours(mini: labs.UpResult) -> None:
    """Every neighbour entry is a permanent one the lab installed (lab.backend.netns.netspec): the
    kernel's shared neighbour table, capped for all namespaces together, stays out of it."""
    assert_only_planned_neighbours(mini)


def test_state_files_are_for_root_only(mini: labs.UpResult) -> None:
    directory = lab_dir(mini.state.lab)
    assert directory.stat().st_mode & 0o077 == 0
    assert (directory / "state.json").stat().st_mode & 0o077 == 0


def test_killed_pod_makes_its_node_withdraw_and_clients_stay_served(
        mini: labs.UpResult) -> None:
    lab = mini.state.lab
    server = next(r for r in mini.state.processes
                  if r.kind == "server" and r.node == "alpha-k8s-n1-p1")
    os.kill(server.pid, signal.SIGKILL)
    status_file = lab_dir(lab) / "nodes" / "alpha-k8s-n1" / "status.json"
    deadline = time.monotonic() + 15
    announced: list[str] = ["?"]
    while time.monotonic() < deadline:
        import json

        announced = json.loads(status_file.read_text()).get("announced", [])
        if not announced:
            break
        time.sleep(0.2)
    assert announced == []
    # the leaf no longer has the VIP from that node; the other node still serves
    echo = next(s for s in mini.plan.services if s.name == "echo")
    time.sleep(0.5)
    nodes = _udp_answers(lab, "east-c1", str(echo.vip), echo.port, 20)
    assert set(nodes) == {"alpha-k8s-n2"}


def test_down_is_idempotent_and_leaves_nothing(tmp_path: Path) -> None:
    require_root()
    name = "gone-" + str(os.getpid() % 10000)
    report = labs.down(name, force=True)
    assert not report.existed
    assert lab_namespaces(name) == [] and tagged_pids(name) == []
