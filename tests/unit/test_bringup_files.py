"""lab.backend.bringup's node files and FRR command lines on the reference plan: a GoBGP
node's bfdd reads its boot configuration itself as it starts (without vtysh's one command),
the routers' daemons start empty and vtysh loads theirs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import pipeline
from lab.backend import bringup
from lab.backend.daemons import NodeFiles, frr_daemon_argv
from lab.backend.names import node_dir
from lab.backend.state import LabPhase, LabState
from lab.plan.model import LabPlan, Role
from lab.render.configs import RenderedLab, frr_daemons
from tests.conftest import TOPOLOGIES
from tests.unit.fakevty import short_dir


@pytest.fixture(scope="module")
def reference() -> tuple[LabPlan, RenderedLab]:
    return pipeline.render(TOPOLOGIES / "three-sites.yaml")


@pytest.fixture
def written(reference: tuple[LabPlan, RenderedLab],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LabPlan, Path]]:
    plan, rendered = reference
    with short_dir() as folder:
        monkeypatch.setenv("ANYLAB_STATE_DIR", str(folder))
        state = LabState(lab="bf", topology_file="t.yaml", topology="three-sites",
                         phase=LabPhase.DEPLOYING, created_wall="2026-12-04T00:00:00+00:00")
        bringup.write_files(state, plan, rendered)
        yield plan, state.directory


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_only_gobgp_nodes_read_their_own_config(reference: tuple[LabPlan, RenderedLab]) -> None:
    plan, _ = reference
    readers = {n.name for n in plan.nodes if bringup.reads_own_config(n)}
    gobgp_nodes = {n.name for n in plan.nodes_with_role(Role.K8S_NODE) if n.speaker == "gobgp"}
    assert readers == gobgp_nodes and readers
    assert all("bgpd" in frr_daemons(n) for n in bringup.frr_nodes(plan)
               if n.name not in readers)


def test_a_gobgp_node_with_raw_lines_goes_through_vtysh(
        reference: tuple[LabPlan, RenderedLab]) -> None:
    plan, _ = reference
    node = next(n for n in plan.nodes if bringup.reads_own_config(n))
    assert not bringup.reads_own_config(dataclasses.replace(node, frr_raw=("debug bfd network",)))


def test_a_gobgp_nodes_boot_config_has_no_vtysh_command(
        written: tuple[LabPlan, Path]) -> None:
    plan, directory = written
    for node in bringup.frr_nodes(plan):
        files = NodeFiles(node_dir(directory, node.name))
        boot, full = files.boot_conf.read_text(), files.frr_conf.read_text()
        assert bringup.VTYSH_MODE_LINE in full
        assert (bringup.VTYSH_MODE_LINE in boot) != bringup.reads_own_config(node)
        assert f"log file {files.directory / 'frr.log'} debugging" in boot


def test_a_daemon_starts_empty_or_from_the_file_given() -> None:
    files = NodeFiles(Path("/run/anylab/x/nodes/n1"))
    assert option(frr_daemon_argv("bgpd", files), "-f") == "/dev/null"
    assert option(frr_daemon_argv("bfdd", files, files.boot_conf), "-f") == str(files.boot_conf)
    assert option(frr_daemon_argv("bfdd", files), "--bfdctl") == str(files.directory
                                                                       / "bfdd.sock")
