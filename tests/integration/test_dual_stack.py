"""Dual-stack labs on every backend: IPv6 VIPs answered beside the IPv4 ones, a catchment that
differs per family, a client's own IPv6 datagram, and faults measured per family."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backend import backend_named, labs
from lab.backend.inspect import status_document
from lab.run.runner import RunOptions, run_scenario
from tests.conftest import REPO, TOPOLOGIES
from tests.integration.labfixture import (
    assert_only_planned_neighbours,
    require_backend,
    running_lab,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCENARIOS = REPO / "tests" / "data" / "scenarios"
CLIENT_KEYS = {"client", "service", "family", "site", "node", "pod", "rtt_ms", "request_ms",
               "error"}


@pytest.fixture(scope="module", params=["netns", "containerlab", "mininet"])
def dual(request: pytest.FixtureRequest) -> Iterator[labs.UpResult]:
    with running_lab(TOPOLOGIES / "two-sites-dual.yaml", "dual",
                     backend=require_backend(str(request.param))) as result:
        yield result


def _where(answers: list[Any], client: str, family: str) -> set[str | None]:
    return {a.site for a in answers if a.client == client and a.family == family}


def test_every_vip_of_both_families_answers_and_catchments_differ(
        dual: labs.UpResult) -> None:
    answers = dual.report.answers
    assert {(a.client, a.service, a.family) for a in answers} == {
        (c, s, f) for c in ("east-c1", "west-c1") for s in ("echo", "web")
        for f in ("ipv4", "ipv6")}
    assert all(a.site is not None for a in answers)
    # alpha's uplink carries IPv4 only: east-c1's IPv6 crosses the WAN to beta
    assert _where(answers, "east-c1", "ipv4") == {"alpha"}
    assert _where(answers, "east-c1", "ipv6") == {"beta"}
    assert _where(answers, "west-c1", "ipv6") == {"beta"}
    assert dual.report.sessions_total == len(dual.plan.sessions) == 21


def test_ipv6_needs_no_neighbour_discovery(dual: labs.UpResult) -> None:
    """Every IPv6 neighbour, link-local next hops included, is a permanent entry of the plan:
    the link-local addresses computed from the MACs are the kernel's."""
    assert_only_planned_neighbours(dual)


def test_status_keeps_its_contract_with_the_family(dual: labs.UpResult) -> None:
    document = status_document(dual.backend, dual.state, dual.plan)
    assert document["ready"] is True
    assert all(set(row) == CLIENT_KEYS for row in document["clients"])
    assert {row["family"] for row in document["clients"]} == {"ipv4", "ipv6"}
    json.dumps(document)


def test_a_clients_own_ipv6_datagram_gets_an_answer(dual: labs.UpResult) -> None:
    code = ("import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
            "s.settimeout(3); s.sendto(b'hello', ('2001:db8:10::10', 7)); "
            "print(s.recv(2048).decode())")
    argv = dual.backend.exec_argv(dual.state, "east-c1", ["python3", "-c", code])
    reply = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout
    assert reply.startswith("hello\n")
    assert json.loads(reply.split("\n", 1)[1])["site"] == "beta"


def _run(scenario: str, lab: labs.UpResult, runs: Path,
         monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(REPO)
    result = run_scenario(RunOptions(SCENARIOS / scenario, name=lab.state.lab, keep_lab=True,
                                     runs_root=runs), lambda _m: None,
                          backend=backend_named(lab.state.backend))
    assert result.complete
    return result.summary


def _client(event: dict[str, Any], client: str, family: str) -> dict[str, Any]:
    return next(c for c in event["clients"] if c["client"] == client
                and c["service"] == "echo" and c["family"] == family)


def test_a_silent_crash_costs_both_families_the_bfd_detection_time(
        dual: labs.UpResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _run("dual-node-crash.yaml", dual, tmp_path, monkeypatch)
    event = summary["trials"][0]["events"][0]
    for family in ("ipv4", "ipv6"):
        hit = _client(event, "west-c1", family)
        assert 600 <= hit["outage_ms"] <= 1300, (family, hit)
        assert hit["site_before"] == hit["site_after"] == "beta", (family, hit)


def test_an_ipv6_uplink_shutdown_moves_only_ipv6(
        dual: labs.UpResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _run("dual-v6-uplink.yaml", dual, tmp_path, monkeypatch)
    event = summary["trials"][0]["events"][0]
    v4, v6 = _client(event, "west-c1", "ipv4"), _client(event, "west-c1", "ipv6")
    assert v4["lost"] == 0 and v4["site_after"] == "beta", v4
    assert v6["recovered"] is False and v6["site_after"] is None, v6  # nowhere to go
    back = _client(event["reversion"], "west-c1", "ipv6")
    assert back["recovered"] is True and back["site_after"] == "beta", back
    assert _client(event, "east-c1", "ipv4")["lost"] == 0
