"""Shell completion: the scripts `anylab completion` prints, and what Tab offers (commands,
options, topology files, lab names, node names of a running lab), asked the way a shell asks
(argcomplete's protocol), in this process and through a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.fake import FakeBackend
from lab.cli.main import main
from tests.conftest import REPO, TOPOLOGIES


def _complete(line: str, env: dict[str, str] | None = None) -> list[str]:
    """What Tab offers at the end of ``line``: bash, with the script the CLI prints."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    bindir = Path(sys.executable).parent
    script = (f'source <(anylab completion bash); COMP_LINE="{line}"; '
              'COMP_POINT=${#COMP_LINE}; _python_argcomplete anylab; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=60,
                            check=False, cwd=REPO,
                            env={**os.environ, **(env or {}),
                                 "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    return [word.strip() for word in result.stdout.splitlines() if word.strip()]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_cli_prints_the_script(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "_python_argcomplete" in script and "anylab" in script
    assert ("compdef" if shell == "zsh" else "complete ") in script


def test_commands_options_and_files() -> None:
    assert _complete("anylab va") == ["validate"]
    assert set(_complete("anylab comp")) == {"compare", "completion"}
    assert {"mininet", "compare", "completion", "up", "run"} <= set(_complete("anylab "))
    assert {"--json", "--junit", "--backend"} <= set(_complete("anylab run --"))
    assert _complete("anylab up topologies/two") == ["topologies/two-sites-dual.yaml",
                                                     "topologies/two-sites-mini.yaml"]
    assert "mininet" in _complete("anylab up x.yaml --backend ")


def test_lab_and_node_names_of_a_running_lab(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path))
    labs.up(TOPOLOGIES / "two-sites-mini.yaml", "tabby", lambda _m: None,
            backend=FakeBackend())
    env = {"ANYLAB_STATE_DIR": str(tmp_path)}
    assert _complete("anylab down --name ta", env) == ["tabby"]
    nodes = _complete("anylab exec --name tabby alpha-", env)
    assert {"alpha-l1", "alpha-s1", "alpha-k8s-n1", "alpha-k8s-n1-p1"} <= set(nodes)
    assert _complete("anylab vtysh --name tabby we", env) == ["west", "west-c1"]
