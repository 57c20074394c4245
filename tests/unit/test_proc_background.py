"""lab.proc.Background: a child runs while the caller works, reads its input from a file,
and is collected by ``finish`` or ended by ``kill`` (timeouts kill it too)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lab.errors import CommandError
from lab.proc import Background


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    """The PID no longer exists (killed and reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_finish_returns_output_and_status() -> None:
    argv = python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    result = Background(argv).finish(timeout=10)
    assert (result.args, result.returncode) == (argv, 3)
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_runs_while_the_caller_works(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    job = Background(python(f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n"
                            "    time.sleep(0.01)\nprint('saw it')"))
    flag.touch()  # only after the constructor returned: it did not wait for the child
    assert job.finish(timeout=10).stdout == "saw it\n"


def test_input_from_a_file(tmp_path: Path) -> None:
    data = tmp_path / "input.txt"
    text = "line of input\n" * 100_000  # far more than a pipe buffer
    data.write_text(text, encoding="utf-8")
    job = Background(python("import sys; sys.stdout.write(sys.stdin.read().upper())"),
                     input_path=data)
    assert job.finish(timeout=30).stdout == text.upper()


def test_no_input_and_env() -> None:
    job = Background(python("import os, sys; print(repr(sys.stdin.read()), os.environ['LABX'])"),
                     env={"LABX": "y"})
    assert job.finish(timeout=10).stdout == "'' y\n"


def test_timeout_kills_the_child() -> None:
    job = Background(python("import time; time.sleep(60)"))
    with pytest.raises(CommandError, match="no result within") as err:
        job.finish(timeout=0.3)
    assert err.value.returncode is None
    assert gone(job.pid)


def test_kill_ends_the_child() -> None:
    job = Background(python("import time; time.sleep(60)"))
    assert not gone(job.pid)
    job.kill()
    assert gone(job.pid)
    job.kill()  # a second kill does nothing


def test_kill_after_finish_is_harmless() -> None:
    job = Background(python("pass"))
    assert job.finish(timeout=10).returncode == 0
    job.kill()


def test_missing_program(tmp_path: Path) -> None:
    data = tmp_path / "input.txt"
    data.write_text("x", encoding="utf-8")
    with pytest.raises(CommandError) as err:
        Background([str(tmp_path / "no-such-program"), "-v"], input_path=data)
    assert err.value.argv == (str(tmp_path / "no-such-program"), "-v")
    assert err.value.returncode is None
    assert "No such file" in err.value.stderr


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="input"):
        Background(python("pass"), input_path=tmp_path / "absent.json")


def test_timeout_message_keeps_fractions() -> None:
    job = Background(python("import time; time.sleep(30)"))
    with pytest.raises(CommandError, match=r"within 0\.2 s"):
        job.finish(timeout=0.2)
