"""Shared fixtures: repository paths and the rule for tools that CI must have."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from lab.backend.processes import stat_fields

# No per-example deadline in any property test: on a shared, busy machine one example can
# stall past hypothesis' default 200 ms, and a replay that is fast then fails the test as
# "flaky" although nothing is wrong with the code.
settings.register_profile("anylab", deadline=None)
settings.load_profile("anylab")

REPO = Path(__file__).resolve().parent.parent
TOPOLOGIES = REPO / "topologies"
SCENARIOS = REPO / "scenarios"
SHIPPED_TOPOLOGIES = sorted(TOPOLOGIES.glob("*.yaml"))


def require_tool(*names: str) -> None:
    """Skip when a tool is missing on a developer machine; fail in CI, where `make setup`
    must have installed it (a skipped check there would hide a missing install step)."""
    extra = "/usr/lib/frr:/usr/sbin:/sbin"
    missing = [n for n in names if not shutil.which(n) and not shutil.which(n, path=extra)]
    if not missing:
        return
    message = f"missing tools: {', '.join(missing)} (run `make setup`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("CI runs the integration tests as root")
    pytest.skip("needs root")


# node ids of the tests that failed so far (labfixture.running_lab keeps the evidence of a lab
# under which one failed), and the evidence folders kept, listed at the end of the session
FAILED_TESTS: list[str] = []
KEPT_EVIDENCE: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        FAILED_TESTS.append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if KEPT_EVIDENCE:
        terminalreporter.section("evidence of the labs under failed tests")
        for line in KEPT_EVIDENCE:
            terminalreporter.write_line(line)


def running_children() -> dict[int, str]:
    """The processes this one started that still run (zombies aside): PID -> command line."""
    me, found = os.getpid(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (fields := stat_fields(int(entry.name))) is None:
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, parent = fields[:2]
        if int(parent) == me and state not in ("Z", "X"):
            found[int(entry.name)] = argv.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


@pytest.fixture(autouse=True, scope="module")
def no_process_outlives_its_module() -> Iterator[None]:
    """Every process a module's tests start (labs' daemons, probers, helpers) ends with the
    module's last fixture: one left running would outlive the test run unseen."""
    before = set(running_children())
    yield
    deadline = time.monotonic() + 5.0  # processes told to stop may take a moment
    while (left := {p: a for p, a in running_children().items() if p not in before}) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, "processes left running: " + "; ".join(
        f"{pid} {argv[:200]}" for pid, argv in sorted(left.items()))


@pytest.fixture
def repo() -> Path:
    return REPO
