"""The command line: exit codes, outputs, help."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from lab.cli.main import build_parser, main
from tests.conftest import SHIPPED_TOPOLOGIES, TOPOLOGIES


def test_validate_shipped_topologies_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, SHIPPED_TOPOLOGIES)]) == 0
    assert capsys.readouterr().out.count("ok ") == len(SHIPPED_TOPOLOGIES)


def test_validate_bad_file_exit_2_without_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntransits: [{name: t}]\nsites: [{name: Bad, uplinks: []}]\n")
    assert main(["validate", str(bad)]) == 2
    errors = capsys.readouterr().err
    assert f"{bad}:3: sites[0].name" in errors and "hint:" in errors
    assert "Traceback" not in errors


def test_validate_reports_problems_of_every_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("[1, 2]\n")
    second.write_text("name: [\n")
    assert main(["validate", str(first), str(second)]) == 2
    errors = capsys.readouterr().err
    assert "a.yaml:1" in errors and "b.yaml" in errors and "2 problems found" in errors


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(TOPOLOGIES / "two-sites-mini.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["topology"] == "two-sites-mini"
    assert {n["role"] for n in data["nodes"]} >= {"transit", "spine", "leaf", "k8s-node"}


def test_plan_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(TOPOLOGIES / "two-sites-mini.yaml")]) == 0
    text = capsys.readouterr().out
    assert "BGP sessions" in text and "alpha-k8s-n1" in text


def test_render_writes_one_folder_per_node(tmp_path: Path) -> None:
    assert main(["render", str(TOPOLOGIES / "two-sites-mini.yaml"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "alpha-s1" / "frr.conf").exists()
    assert (tmp_path / "alpha-k8s-n1" / "gobgpd.toml").exists()
    assert (tmp_path / "beta-k8s-n1" / "service-proxy.nft").exists()


def test_generate_writes_a_valid_topology(tmp_path: Path) -> None:
    target = tmp_path / "scale.yaml"
    assert main(["generate", "--sites", "3", "--leafs", "2", "--nodes", "3",
                 "-o", str(target)]) == 0
    assert main(["validate", str(target)]) == 0


def test_generate_sets_the_bfd_interval(tmp_path: Path) -> None:
    target = tmp_path / "scale.yaml"
    assert main(["generate", "--sites", "2", "--nodes", "2", "--bfd-interval", "1s",
                 "-o", str(target)]) == 0
    assert yaml.safe_load(target.read_text())["defaults"]["bgp"]["bfd"] == {
        "interval": "1000ms", "multiplier": 3}
    assert main(["plan", str(target)]) == 0


@pytest.mark.parametrize("interval", ["5", "5ms", "2min", "1.5ms"])
def test_generate_refuses_a_bfd_interval_frr_cannot_take(
        interval: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--bfd-interval", interval])
    assert exit_info.value.code == 2
    assert "argument --bfd-interval" in capsys.readouterr().err


def test_graph_rejects_other_suffixes(tmp_path: Path) -> None:
    target = tmp_path / "x.jpg"
    assert main(["graph", str(TOPOLOGIES / "two-sites-mini.yaml"), "-o", str(target)]) == 2


@pytest.mark.parametrize("command", ["validate", "plan", "render", "graph", "generate"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_sigterm_interrupts_the_command_but_ends_a_forked_copy_quietly() -> None:
    """A library's forked child (pyroute2's) inherits the handler: SIGTERM must end it as
    the default would, not raise KeyboardInterrupt in a copy of the command."""
    from lab.cli.main import _interrupter

    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        _interrupter(os.getpid())(signal.SIGTERM, None)
    parent = os.getpid()
    child = os.fork()
    if child == 0:  # the copy: wait for SIGTERM with the command's handler installed
        signal.signal(signal.SIGTERM, _interrupter(parent))
        try:
            time.sleep(30)
        finally:
            os._exit(7)  # reached only if the handler let the copy carry on
    time.sleep(0.2)
    os.kill(child, signal.SIGTERM)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
