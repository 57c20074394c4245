"""Fixtures for tests that build real labs: unique names, and removal even on failure."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.backend import DEFAULT_BACKEND, backend_named, labs
from lab.backend.inspect import zebra_missing_addresses
from lab.backend.names import lab_dir
from lab.backend.netns.names import lab_namespaces
from lab.backend.processes import tagged_pids


def unique_lab_name(prefix: str = "it") -> str:
    return f"{prefix}-{os.getpid() % 100000}-{secrets.token_hex(2)}"


@contextmanager
def running_lab(topology: Path, prefix: str = "it", timeout_s: float = 90.0,
                backend: str = DEFAULT_BACKEND) -> Iterator[labs.UpResult]:
    """A lab of ``topology`` for the tests inside; when one of them fails, the lab's
    evidence (lab.backend.evidence) is kept before it goes, and the session's summary names
    the folder."""
    from tests.conftest import FAILED_TESTS

    name, failed_before = unique_lab_name(prefix), len(FAILED_TESTS)
    result: labs.UpResult | None = None
    try:
        result = labs.up(topology, name, lambda _m: None, timeout_s=timeout_s,
                         backend=backend_named(backend))
        assert result.report.ready, result.report.explain()  # names the evidence folder
        assert zebra_missing_addresses(result.backend, result.state, result.plan) == {}
        yield result
    finally:
        if result is not None and len(FAILED_TESTS) > failed_before:
            _keep_evidence(result, FAILED_TESTS[failed_before:])
        labs.down(name, force=True)
        assert_lab_gone(name)


def _keep_evidence(lab: labs.UpResult, failed: list[str]) -> None:
    from lab.backend.evidence import new_evidence_dir
    from tests.conftest import KEPT_EVIDENCE

    folder = lab.backend.keep_evidence(
        lab.state, lab.plan, new_evidence_dir(lab.state.lab, "test-failed"),
        "tests failed while the lab was up:\n" + "\n".join(failed))
    KEPT_EVIDENCE.append(f"{folder}: {', '.join(failed)}")


@contextmanager
def lab_from_text(factory: Any, topology: str, scenario: str, prefix: str
                  ) -> Iterator[tuple[labs.UpResult, Path]]:
    """A lab (root only) of a topology written into a new folder of ``factory`` (pytest's
    tmp_path_factory) as topology.yaml, beside the scenario that names it, scenario.yaml:
    the running lab and the scenario's path."""
    from tests.conftest import require_root

    require_root()
    folder = factory.mktemp(prefix)
    (folder / "topology.yaml").write_text(topology)
    (folder / "scenario.yaml").write_text(scenario)
    with running_lab(folder / "topology.yaml", prefix) as result:
        yield result, folder / "scenario.yaml"


def two_site_topology(name: str, description: str, alpha_cluster: str, beta_cluster: str,
                      services: str) -> str:
    """The text of a mini-like topology: sites alpha (transit east) and beta (west), each one
    spine, two leafs and the cluster given (a YAML flow mapping), one client per transit."""
    return f"""\
name: {name}
description: {description}
defaults:
  bgp: {{keepalive: 1s, hold: 3s, connect_retry: 1s, ecmp: 8,
        bfd: {{interval: 300ms, multiplier: 3}}}}
transits: [{{name: east}}, {{name: west}}]
wan_links: [{{between: [east, west], delay: 10ms}}]
sites:
  - name: alpha
    uplinks: [{{transit: east}}]
    fabric: {{spines: 1, leafs: 2}}
    clusters: [{alpha_cluster}]
  - name: beta
    uplinks: [{{transit: west}}]
    fabric: {{spines: 1, leafs: 2}}
    clusters: [{beta_cluster}]
services:
{services}
clients:
  - {{name: east-c1, transit: east, delay: 2ms}}
  - {{name: west-c1, transit: west, delay: 2ms}}
"""


def run_valid(lab: labs.UpResult, scenario: Path, runs: Path, late_ok: bool = False) -> Any:
    """The scenario on the running lab, complete and with a valid trial, on a quiet machine
    (tests.integration.quiet): its RunResult. With ``late_ok`` the trial may be invalid only
    because the link emulator sent frames late: enough for a test of losses alone, as
    lateness cannot make a probe lost (its reply waits 2 s) but a load test makes it likely."""
    from lab.run.runner import RunOptions, run_scenario
    from tests.integration.quiet import on_a_quiet_machine

    def attempt(number: int) -> Any:
        result = run_scenario(RunOptions(scenario, name=lab.state.lab, keep_lab=True,
                                         runs_root=runs / f"a{number}"), lambda _m: None)
        trial = result.summary["trials"][0]
        assert result.complete and (trial["valid"] or (late_ok and _only_late(trial))), \
            result.summary
        return result

    return on_a_quiet_machine(attempt)


def _only_late(trial: Mapping[str, Any]) -> bool:
    """Whether the trial's warnings are all the link emulator's lateness."""
    from lab.measure.metrics.instrument import instrument_problems

    section = trial.get("instrument") or {}
    on_time = {**section, "emulator": {**(section.get("emulator") or {}), "late_10ms": 0}}
    return len(trial["warnings"]) == len(section.get("problems", [])) \
        and instrument_problems(on_time) == []


def assert_lab_gone(name: str) -> None:
    """Nothing of the lab is left, whatever its backend."""
    from lab.backend.containerlab.names import deploy_netns
    from lab.backend.containerlab.teardown import lab_containers, lab_namespace_links
    from lab.netns import NETNS_DIR

    assert lab_namespaces(name) == [], "namespaces left behind"
    assert tagged_pids(name) == [], "processes left behind"
    assert lab_containers(name) == [], "containers left behind"
    assert lab_namespace_links(name) == [], "container namespace links left behind"
    assert not (NETNS_DIR / deploy_netns(name)).exists(), "deploy namespace left behind"
    assert not lab_dir(name).exists(), "state directory left behind"


def require_containerlab() -> None:
    """The containerlab backend's tools, set up on first use as `anylab up --backend
    containerlab` does (docker.io, the engine, containerlab, the images)."""
    from lab.backend.containerlab.tools import ensure_tools

    ensure_tools(lambda _m: None)


def require_mininet() -> None:
    """The Mininet backend's tools, set up on first use as `anylab up --backend mininet`
    does (Debian's mininet)."""
    from lab.backend.mininet.tools import ensure_tools

    ensure_tools(lambda _m: None)


def require_backend(backend: str) -> str:
    """What a lab on ``backend`` needs: root, the daemons' tools, and the backend's own tools
    (set up on first use). Returns the backend's name."""
    from tests.conftest import require_root, require_tool

    require_root()
    require_tool("vtysh", "gobgpd", "nft", "nsenter", "conntrack")
    if backend == "containerlab":
        require_containerlab()
    if backend == "mininet":
        require_mininet()
    return backend


def neighbour_entries(result: labs.UpResult) -> dict[str, list[dict[str, Any]]]:
    """Node or pod -> its neighbour (ARP) entries, as `ip -j neigh show` gives them."""
    names = [n.name for n in result.plan.nodes] + [p.name for p in result.plan.pods()]
    return {name: json.loads(subprocess.run(
        ["nsenter", f"--net={result.backend.netns_path(result.state, name)}", "ip", "-j",
         "neigh", "show"], capture_output=True, text=True, check=True).stdout)
        for name in names}


def assert_only_planned_neighbours(result: labs.UpResult) -> None:
    """Every neighbour entry of the lab is one of the permanent ones it installs: per link
    end, the peer's address (and its IPv6 and link-local ones on a dual-stack link), and per
    pod two per family (lab.backend.netns.netspec), none learnt by asking."""
    from lab.backend.netns.netspec import peer_neighbours

    entries = neighbour_entries(result)
    for ns, found in entries.items():
        assert all(e.get("state") == ["PERMANENT"] for e in found), (ns, found)
    plan, lab = result.plan, result.state.lab
    links = sum(len(peer_neighbours(lab, i)) for n in plan.nodes for i in n.interfaces)
    pods = sum(4 if pod.address6 is not None else 2 for pod in plan.pods())
    assert sum(map(len, entries.values())) == links + pods


def machine_lagged(summary: Mapping[str, Any]) -> bool:
    """Whether a run has a trial the instrument marked invalid (lab.measure.metrics.instrument:
    the machine, e.g. a hypervisor stealing a quarter of the CPU, made the probers skip slots):
    such a run says nothing about what a test checks of the lab."""
    return any(t.get("valid") is False and (t.get("instrument") or {}).get("problems")
               for t in summary.get("trials") or [])
