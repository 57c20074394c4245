"""Lab life cycle edge cases: failed ups clean up, two labs side by side, the reference lab."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab import labs
from lab.backend.inspect import probe
from lab.backend.names import lab_dir, lab_namespaces
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


def test_a_daemon_refusing_its_config_removes_everything(tmp_path: Path) -> None:
    doc = yaml.safe_load(MINI.read_text())
    doc["frr_raw"] = {"spine": ["this is not an frr command"]}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    name = unique_lab_name("bad")
    try:
        with pytest.raises(BackendError, match="refused the configuration"):
            labs.up(broken, name, lambda _m: None, timeout_s=30)
        _assert_gone(name)
    finally:
        labs.down(name, force=True)


def test_ctrl_c_during_up_removes_everything() -> None:
    name = unique_lab_name("int")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", str(MINI), "--name", name],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(tagged_pids(name)) < 10:
            time.sleep(0.05)  # wait until daemons are starting
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, output.decode()
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
            answer = probe(result.state.lab, "west-c1", echo)
            assert answer.site == "beta", answer
        labs.down(first.state.lab)
        _assert_gone(first.state.lab)
        assert probe(second.state.lab, "east-c1", echo).site == "alpha"


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
