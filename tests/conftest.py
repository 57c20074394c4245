"""Shared fixtures: repository paths and the rule for tools that CI must have."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

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


@pytest.fixture
def repo() -> Path:
    return REPO
