"""Building the C programs: cache paths and the compile step (lab.cbuild), and each program's
source compiling without a warning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import cbuild as build
from lab.apps.server.build import SERVER_SOURCE
from lab.errors import BuildError
from lab.impair import build as emulator_build
from lab.impair.build import EMULATOR_SOURCE
from lab.measure.probe.build import PROBER_SOURCE


def test_binary_path_follows_source_content(tmp_path: Path) -> None:
    src = tmp_path / "tool.c"
    src.write_text("int main(void) { return 0; }\n")
    first = build.binary_path(src, tmp_path)
    assert first.parent == tmp_path and first.name.startswith("tool-")
    src.write_text("int main(void) { return 1; }\n")
    assert build.binary_path(src, tmp_path) != first


def test_gcc_command_is_an_argument_list(tmp_path: Path) -> None:
    cmd = build.gcc_command(Path("/src/x.c"), tmp_path / "x")
    assert cmd[1:] == [*build.CFLAGS, "-I", str(build.SHARED_HEADERS), "-o", str(tmp_path / "x"),
                       "/src/x.c", *build.LIBS]


def test_compile_and_reuse(tmp_path: Path) -> None:
    src = tmp_path / "ok.c"
    src.write_text("int main(void) { return 3; }\n")
    echoed: list[str] = []
    out = build.compile_c(src, tmp_path / "cache", echo=echoed.append)
    assert len(echoed) == 1 and echoed[0].startswith(build.compiler())
    assert subprocess.run([str(out)], check=False, timeout=10).returncode == 3
    mtime = out.stat().st_mtime_ns
    assert build.compile_c(src, tmp_path / "cache", echo=echoed.append) == out
    assert out.stat().st_mtime_ns == mtime and len(echoed) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [out.name]


def test_compile_errors_are_reported(tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { return }\n")
    with pytest.raises(BuildError, match=r"compiling bad\.c failed"):
        build.compile_c(src, tmp_path)


def test_build_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANYLAB_BUILD_DIR", str(tmp_path))
    assert build.build_dir() == tmp_path


def test_main_prints_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert emulator_build.main(["--print-command"]) == 0
    out = capsys.readouterr().out.strip()
    assert "linkemu.c" in out and "-O2" in out and out.endswith("-lm")
    assert emulator_build.main(["--bogus"]) == 2


@pytest.mark.parametrize("source", [EMULATOR_SOURCE, PROBER_SOURCE, SERVER_SOURCE],
                         ids=lambda p: p.name)
def test_the_c_sources_compile_without_warnings(tmp_path: Path, source: Path) -> None:
    out = tmp_path / source.stem
    proc = subprocess.run(build.gcc_command(source, out),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_the_shared_header_is_part_of_the_binary_name(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    headers = tmp_path / "csrc"
    headers.mkdir()
    (headers / "anylab.h").write_text("/* one */\n")
    monkeypatch.setattr(build, "SHARED_HEADERS", headers)
    first = build.binary_path(EMULATOR_SOURCE, tmp_path)
    (headers / "anylab.h").write_text("/* two */\n")
    assert build.binary_path(EMULATOR_SOURCE, tmp_path) != first
