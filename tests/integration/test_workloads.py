"""Users' own servers behind the VIP (a service's ``workload:``), for real: NSD from Debian's
package in every pod of topologies/dns-anycast.yaml, asked with dig from a client and measured
with DNS probes; nginx in topologies/web-anycast.yaml, measured with HTTP probes; and the clear
failures of a workload that exits, never becomes ready or is not installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.inspect import probe_all
from lab.errors import BackendError
from lab.proc import run
from lab.run.runner import RunOptions, RunResult, run_scenario
from tests.conftest import REPO, SCENARIOS, TOPOLOGIES, require_root, require_tool
from tests.integration.labfixture import assert_lab_gone, running_lab, unique_lab_name
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
DNS_LAB = TOPOLOGIES / "dns-anycast.yaml"
WEB_LAB = TOPOLOGIES / "web-anycast.yaml"
MINI = TOPOLOGIES / "two-sites-mini.yaml"
SITE_OF_CLIENT = {"us-c1": "nyc", "us-c2": "nyc", "eu-c1": "ams", "eu-c2": "ams",
                  "ap-c1": "sin", "ap-c2": "sin"}


@pytest.fixture(scope="module")
def dns_lab() -> Iterator[labs.UpResult]:
    require_root()
    require_tool("nsd", "dig")
    with running_lab(DNS_LAB, "dnsw", timeout_s=120.0) as result:
        yield result


def _dig(lab: labs.UpResult, client: str, *args: str) -> str:
    argv = lab.backend.exec_argv(lab.state, client, ["dig", "@192.0.2.53", *args,
                                                     "+norec", "+time=2", "+tries=2"])
    return run(argv, timeout=20).stdout


def test_dig_from_a_client_gets_the_zone_and_the_nsid_of_a_nearby_pod(
        dns_lab: labs.UpResult) -> None:
    for client, site in SITE_OF_CLIENT.items():
        out = _dig(dns_lab, client, "www.example.test", "A", "+nsid")
        assert re.search(r"www\.example\.test\.\s+\d+\s+IN\s+A\s+198\.51\.100\.80", out), out
        nsid = re.search(r'NSID: .*\("([^"]+)"\)', out)
        assert nsid is not None and nsid.group(1).startswith(f"{site}-k8s-"), out
    # the zone was written per pod: the TXT record names the answering pod's site
    assert '"nyc"' in _dig(dns_lab, "us-c1", "site.example.test", "TXT")
    # CHAOS TXT id.server (RFC 4892) names the pod too
    assert re.search(r'"nyc-k8s-n\d-p\d"', _dig(dns_lab, "us-c1", "id.server", "TXT", "CH"))


def test_up_and_status_see_where_each_client_lands_through_the_nsid(
        dns_lab: labs.UpResult) -> None:
    answers = [a for a in probe_all(dns_lab.backend, dns_lab.state, dns_lab.plan)
               if a.service == "dns"]
    assert {a.client: a.site for a in answers} == SITE_OF_CLIENT, answers
    assert all(a.pod is not None and a.pod.startswith(f"{a.site}-k8s-") for a in answers)


def test_every_pod_runs_its_own_nsd_and_nothing_runs_on_the_machine(
        dns_lab: labs.UpResult) -> None:
    from lab.backend.example_tools import host_daemons

    workloads = [r for r in dns_lab.state.processes if r.kind == "workload"]
    assert sorted(r.node for r in workloads) == sorted(p.name for p in dns_lab.plan.pods())
    assert host_daemons(["nsd"]) == {"nsd": []}


def _measured_run(lab: labs.UpResult, scenario: str, tmp_path: Path) -> RunResult:
    """The shipped scenario on the running lab: complete and valid (run again while the
    hypervisor takes the machine: tests.integration.quiet)."""
    def attempt(number: int) -> RunResult:
        result = run_scenario(RunOptions(SCENARIOS / scenario, name=lab.state.lab,
                                         keep_lab=True, runs_root=tmp_path / f"a{number}"),
                              lambda _m: None)
        assert result.complete and result.summary["trials"][0]["valid"], result.summary
        return result

    return on_a_quiet_machine(attempt)


def test_a_silent_node_crash_measured_with_dns_probes(dns_lab: labs.UpResult,
                                                     tmp_path: Path) -> None:
    """scenarios/dns-node-crash-bfd.yaml on the running DNS lab: the flow of us-c1 that NSD on
    the crashed node answered loses 0.6-1.3 s (BFD 300 ms x 3, then the leaf's withdrawal),
    the answering pods are named by their NSID, and no client whose flow another node answered
    loses anything."""
    import pandas as pd

    result = _measured_run(dns_lab, "dns-node-crash-bfd.yaml", tmp_path)
    (event,) = result.summary["trials"][0]["events"]
    rows = {(c["client"], c["service"]): c for c in event["clients"]}
    crashed = rows[("us-c1", "dns")]
    assert 600 <= crashed["outage_ms"] <= 1300, crashed
    assert (crashed["site_before"], crashed["site_after"]) == ("nyc", "nyc")
    others = [c for key, c in rows.items() if key[1] == "dns" and key[0] != "us-c1"]
    # another client's flow may hash to the crashed node too (its collateral figures say so)
    for row in others:
        if row["collateral"]["flows_on_target"]:
            assert 600 <= row["outage_ms"] <= 1300, row
        else:
            assert row["outage_ms"] == 0, row
    assert {c["client"]: c["site_before"] for c in others} == {
        k: v for k, v in SITE_OF_CLIENT.items() if k != "us-c1"}
    probes = pd.read_parquet(result.run_dir / "probes.parquet")
    dns = probes[probes["service"] == "dns"]
    answered = dns[dns["recv_ns"].notna()]
    assert (answered["status"] == 0).all() and answered["pod"].notna().all()
    assert set(answered["pod"]) <= {p.name for p in dns_lab.plan.pods()}
    assert answered[answered["client"] == "us-c1"]["pod"].nunique() >= 2  # moved to another


@pytest.fixture(scope="module")
def web_lab() -> Iterator[labs.UpResult]:
    require_root()
    require_tool("nginx")
    with running_lab(WEB_LAB, "webw", timeout_s=120.0) as result:
        yield result


def test_nginx_names_its_pod_in_a_header_and_up_sees_it(web_lab: labs.UpResult) -> None:
    answers = [a for a in probe_all(web_lab.backend, web_lab.state, web_lab.plan)
               if a.service == "web"]
    assert {a.client: a.site for a in answers} == SITE_OF_CLIENT, answers
    assert all(a.pod is not None and a.pod.startswith(f"{a.site}-k8s-") for a in answers)
    assert all(a.request_ms is not None and a.rtt_ms is not None
               and a.request_ms > a.rtt_ms for a in answers)


def test_a_site_isolation_moves_the_web_clients_seen_through_the_header(
        web_lab: labs.UpResult, tmp_path: Path) -> None:
    """scenarios/web-site-isolation.yaml: New York's clients lose their requests for about a
    second (BFD at the transit, then the withdrawal) and are answered from Amsterdam or
    Singapore afterwards, as X-Served-By shows; the other clients lose nothing."""
    import pandas as pd

    result = _measured_run(web_lab, "web-site-isolation.yaml", tmp_path)
    (event,) = result.summary["trials"][0]["events"]
    # the HTTP prober's own timing is judged with the UDP probers'
    probers = result.summary["trials"][0]["instrument"]["probers"]
    assert probers["http_probers"] == 1 and probers["clients"] == 6, probers
    web = {c["client"]: c for c in event["clients"] if c["service"] == "web"}
    for client in ("us-c1", "us-c2"):
        row = web[client]
        assert row["site_before"] == "nyc" and row["site_after"] in {"ams", "sin"}, row
        assert 500 <= row["outage_ms"] <= 3000, row
    for client in ("eu-c1", "eu-c2", "ap-c1", "ap-c2"):
        assert web[client]["outage_ms"] == 0 and web[client]["site_before"] == \
            web[client]["site_after"] == SITE_OF_CLIENT[client], web[client]
    probes = pd.read_parquet(result.run_dir / "probes.parquet")
    answered = probes[(probes["service"] == "web") & probes["recv_ns"].notna()]
    assert (answered["status"] == 200).all() and answered["pod"].notna().all()


# ------------------------------------------------------------------ failures


def _mini_with(tmp_path: Path, workload: str) -> Path:
    """two-sites-mini with an extra UDP service on port 53 served by ``workload``."""
    text = MINI.read_text().replace(
        "services:\n",
        "services:\n  - name: own\n    vip: 192.0.2.54\n    port: 53\n"
        "    probe: {dns: {name: www.example.test}}\n    workload:\n" + workload, 1)
    path = tmp_path / "mini-own.yaml"
    path.write_text(text)
    return path


def _not_ready(tmp_path: Path, workload: str, timeout_s: float) -> labs.ReadyReport:
    """What `up` reports of two-sites-mini with ``workload`` (it must not be ready); the lab
    is gone afterwards (its evidence in the test's ``evidence_root``)."""
    require_root()
    name = unique_lab_name("wlf")
    try:
        result = labs.up(_mini_with(tmp_path, workload), name, lambda _m: None,
                         timeout_s=timeout_s)
    finally:
        labs.down(name, force=True)
    assert_lab_gone(name)
    assert not result.report.ready
    return result.report


def test_a_workload_that_exits_fails_up_with_its_output(tmp_path: Path,
                                                        evidence_root: Path) -> None:
    report = _not_ready(tmp_path, "      command: [sh, -c, 'echo cannot bind {address}; exit 3']\n"
                                  "      readiness: {dns: {name: www.example.test}}\n", 30.0)
    text = report.explain()
    assert "the workload of service own exited" in text, text
    assert "cannot bind 10." in text and "command: sh -c" in text, text
    assert "hint:" in text and "BGP sessions not Established" not in text, text


def test_a_workload_that_never_becomes_ready_fails_up_with_its_check(tmp_path: Path,
                                                                     evidence_root: Path) -> None:
    report = _not_ready(tmp_path, "      command: [sleep, '600']\n"
                                  "      readiness: {tcp: {port: 5353}}\n", 15.0)
    text = report.explain()
    assert re.search(r"pod \S+: the workload of service own is not ready \(its check: own: "
                     r"connection refused\)", text), text
    assert report.evidence is not None and report.evidence.is_dir()


def test_a_server_that_does_not_name_its_pod_fails_up(tmp_path: Path,
                                                      evidence_root: Path) -> None:
    """NSD answering with an NSID that names no pod: `up` says so for every client."""
    require_tool("nsd")
    conf = (DNS_LAB.read_text().split("        nsd.conf: |\n", 1)[1]
            .split("        example.test.zone: |\n", 1))
    workload = ("      command: [/usr/sbin/nsd, -d, -c, '{dir}/nsd.conf']\n"
                "      readiness: {dns: {name: www.example.test}}\n      files:\n"
                "        nsd.conf: |\n"
                + conf[0].replace('nsid: "ascii_{pod}"', 'nsid: "ascii_somebody"')
                + "        example.test.zone: |\n" + conf[1].split("\n  - ", 1)[0] + "\n")
    report = _not_ready(tmp_path, workload, 20.0)
    text = report.explain()
    assert "answered as 'somebody', which names no pod of the lab" in text, text


def test_a_workload_that_is_not_installed_fails_up_naming_the_command(tmp_path: Path) -> None:
    require_root()
    topology = _mini_with(tmp_path, "      command: [/nonexistent/dnsd, -c, '{dir}/x.conf']\n"
                                    "      readiness: {dns: {name: www.example.test}}\n")
    name = unique_lab_name("wln")
    try:
        with pytest.raises(BackendError, match=r"service own runs '/nonexistent/dnsd', which "
                                               r"is not installed"):
            labs.up(topology, name, lambda _m: None, timeout_s=30.0)
    finally:
        labs.down(name, force=True)
    assert_lab_gone(name)


def test_the_cli_fails_with_exit_code_and_message(tmp_path: Path,
                                                  evidence_root: Path) -> None:
    require_root()
    topology = _mini_with(tmp_path, "      command: [sh, -c, 'echo no zone; exit 1']\n"
                                    "      readiness: {dns: {name: www.example.test}}\n")
    name = unique_lab_name("wlc")
    try:
        done = subprocess.run([sys.executable, "-m", "lab.cli", "up", str(topology), "--name",
                               name], env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode != 0
        assert "no zone" in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    finally:
        labs.down(name, force=True)
    assert_lab_gone(name)
