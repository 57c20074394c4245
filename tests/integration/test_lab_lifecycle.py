"""Lab life cycle edge cases: failed ups clean up, two labs side by side, the reference lab."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import pipeline
from lab.backend import labs
from lab.backend.inspect import probe
from lab.backend.names import lab_dir
from lab.backend.netns.names import lab_namespaces
from lab.backend.processes import tagged_pids
from lab.errors import BackendError
from tests.conftest import REPO, TOPOLOGIES, require_root, require_tool
from tests.integration.labfixture import running_lab, unique_lab_name

pytestmark = [pytest.mark.integration]
MINI = TOPOLOGIES / "two-sites-mini.yaml"


@pytest.fixture(autouse=True)
def _needs_lab_tools() -> None:
    require_root()
    require_tool("vtysh", "gobgpd", "nft", "nsenter")


def _assert_gone(name: str) -> None:
    assert lab_namespaces(name) == []
    assert tagged_pids(name) == []
    assert not lab_dir(name).exists()


def _write_topology(folder: Path, doc: dict[str, Any]) -> Path:
    path = folder / "broken.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_daemon_refusing_its_config_removes_everything_and_keeps_evidence(
        tmp_path: Path, evidence_root: Path) -> None:
    doc = yaml.safe_load(MINI.read_text())
    doc["frr_raw"] = {"spine": ["this is not an frr command"]}
    name = unique_lab_name("bad")
    try:
        with pytest.raises(BackendError, match="refused the configuration") as failure:
            labs.up(_write_topology(tmp_path, doc), name, lambda _m: None, timeout_s=30)
        _assert_gone(name)
    finally:
        labs.down(name, force=True)
    kept = re.search(r"evidence kept in (\S+)", str(failure.value))
    assert kept, str(failure.value)
    folder = Path(kept.group(1))
    assert folder.parent == evidence_root
    assert "refused the configuration" in (folder / "README.txt").read_text()
    spine = folder / "lab" / "nodes" / "alpha-s1"
    assert "this is not an frr command" in (spine / "frr.conf").read_text()
    assert (spine / "bgpd.log").is_file() and (folder / "sessions.json").is_file()


def test_an_up_that_is_not_ready_in_time_keeps_evidence_and_removes_the_lab(
        evidence_root: Path) -> None:
    name = unique_lab_name("nrd")
    try:
        result = labs.up(MINI, name, lambda _m: None, timeout_s=0.5)
        assert not result.report.ready and not result.kept
        _assert_gone(name)
    finally:
        labs.down(name, force=True)
    folder = result.report.evidence
    assert folder is not None and folder.parent == evidence_root
    assert f"evidence kept in {folder}" in result.report.explain()
    assert len(json.loads((folder / "sessions.json").read_text())) == len(result.plan.sessions)
    assert json.loads((folder / "status.json").read_text())["lab"] == name
    assert {p.stem for p in (folder / "kernel").iterdir()} >= {f"al.{name}.alpha-l1"}
    assert "show bgp neighbors" in (folder / "frr" / "alpha-l1.txt").read_text()


def test_keep_on_failure_leaves_the_lab_up_and_says_why_sessions_are_down(
        tmp_path: Path, evidence_root: Path) -> None:
    """A spine that shuts its session to one leaf: the lab never becomes ready, and the
    report gives the reason in the spine's own words."""
    plan = pipeline.plan(MINI)
    session = next(s for s in plan.sessions if s.id == "alpha-s1--alpha-l1")
    doc = yaml.safe_load(MINI.read_text())
    doc["sites"][0]["frr_raw"] = {"spine": [f"router bgp {session.a_asn}",
                                            f" neighbor {session.b_address} shutdown"]}
    name = unique_lab_name("kof")
    try:
        result = labs.up(_write_topology(tmp_path, doc), name, lambda _m: None, timeout_s=12,
                         keep_on_failure=True)
        assert not result.report.ready and result.kept
        assert lab_namespaces(name), "the lab should still be up"
        explained = result.report.explain()
        assert re.search(r"alpha-s1-alpha-l1: Idle at alpha-s1, last reset [0-9.]+ s ago: "
                         r"Admin\. shutdown", explained), explained
        assert result.report.evidence is not None
    finally:
        labs.down(name, force=True)
    _assert_gone(name)


def _phase(name: str) -> str | None:
    try:
        return str(json.loads((lab_dir(name) / "state.json").read_text())["phase"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.parametrize(("moment", "sig"), [("building", signal.SIGINT),
                                             ("waiting for readiness", signal.SIGINT),
                                             ("waiting for readiness", signal.SIGTERM)])
def test_interrupting_up_removes_everything(moment: str, sig: signal.Signals) -> None:
    """Ctrl-C, or SIGTERM (a cancelled CI job), at any moment of `up`: nothing is left."""
    name = unique_lab_name("int")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", str(MINI), "--name", name],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                len(tagged_pids(name)) < 10 if moment == "building"
                else _phase(name) != "deployed"):
            time.sleep(0.02)  # daemons are starting / the lab is built and not ready yet
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, output.decode()
        assert lab_namespaces(name) == [], output.decode()
        _assert_gone(name)
    finally:
        if proc.poll() is None:
            proc.kill()
        labs.down(name, force=True)


def test_two_labs_side_by_side_do_not_interfere() -> None:
    with running_lab(MINI, "twa") as first, running_lab(MINI, "twb") as second:
        assert first.state.lab != second.state.lab
        echo = next(s for s in first.plan.services if s.name == "echo")
        for result in (first, second):
            answer = probe(result.backend, result.state, "west-c1", echo)
            assert answer.site == "beta", answer
        labs.down(first.state.lab)
        _assert_gone(first.state.lab)
        assert probe(second.backend, second.state, "east-c1", echo).site == "alpha"


def test_down_force_works_with_a_corrupt_state_file() -> None:
    with running_lab(MINI, "cor") as result:
        (lab_dir(result.state.lab) / "state.json").write_text("{not json")
        with pytest.raises(BackendError, match="--force"):
            labs.down(result.state.lab)
        report = labs.down(result.state.lab, force=True)
        assert report.existed and report.leftovers == []
        _assert_gone(result.state.lab)


@pytest.mark.slow
def test_reference_lab_comes_up_and_clients_land_in_their_region() -> None:
    with running_lab(TOPOLOGIES / "three-sites.yaml", "ref", timeout_s=150) as result:
        status = labs.status(result.state.lab)
        assert status["ready"] and status["sessions"]["established"] == 45
        expected = {"us": "nyc", "eu": "ams", "ap": "sin"}
        for client in status["clients"]:
            assert client["site"] == expected[client["client"][:2]], client
        with pytest.raises(BackendError):
            labs.up(TOPOLOGIES / "three-sites.yaml", result.state.lab, lambda _m: None)
