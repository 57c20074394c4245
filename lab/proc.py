"""Running external commands: argument lists only, a timeout always, errors that explain."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.errors import CommandError

DEFAULT_TIMEOUT_S = 30.0


def run(argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, check: bool = True,
        input_text: str | None = None, env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell); raise CommandError on failure or timeout."""
    try:
        result = subprocess.run(
            list(argv), input=input_text, capture_output=True, text=True, timeout=timeout,
            check=False, env=dict(env) if env is not None else None, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, None, _text(exc.stdout), _text(exc.stderr)) from exc
    except OSError as exc:
        raise CommandError(argv, None, "", str(exc)) from exc
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stdout, result.stderr)
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def which(program: str, extra_dirs: Sequence[str] = ()) -> str | None:
    """Find a program on PATH or in extra directories (FRR keeps daemons in /usr/lib/frr)."""
    found = shutil.which(program)
    if found:
        return found
    for folder in extra_dirs:
        found = shutil.which(program, path=folder)
        if found:
            return found
    return None


class Background:
    """A command that runs while the caller does other work; ``finish`` collects its result,
    ``kill`` ends it (by the PID this object started). Input comes from a file, so a large
    input never blocks the caller on a full pipe."""

    def __init__(self, argv: Sequence[str], *, input_path: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        try:
            stdin = input_path.open("rb") if input_path is not None else subprocess.DEVNULL
        except OSError as exc:
            raise CommandError(argv, None, "", f"input {input_path}: {exc}") from exc
        try:
            self._proc = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True,
                                          env=dict(env) if env is not None else None)
        except OSError as exc:
            raise CommandError(argv, None, "", str(exc)) from exc
        finally:
            if not isinstance(stdin, int):
                stdin.close()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def finish(self, timeout: float = DEFAULT_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Wait for the command; raise CommandError (after killing it) on timeout."""
        try:
            stdout, stderr = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CommandError(self.argv, None, "", f"no result within {timeout:g} s"
                               ) from None
        return subprocess.CompletedProcess(self.argv, self._proc.returncode, stdout, stderr)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.communicate()
