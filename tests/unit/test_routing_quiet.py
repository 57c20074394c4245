"""When readiness counts BGP routing as quiet (lab.backend.ready): clients are first asked
after ``EARLY_QUIET_S`` without a table change, routing counts as settled after
``MIN_QUIET_S``, and neither while a session is younger than the coalesce time."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from lab import pipeline
from lab.backend import ready
from lab.backend.daemons import NodeFiles
from lab.backend.state import LabState
from tests.conftest import TOPOLOGIES


class Tables:
    """Every router's ``show bgp summary json``: one table version and one peer's uptime."""

    def __init__(self) -> None:
        self.version = 1
        self.uptime_ms = 60_000

    def summaries(self, files: NodeFiles) -> dict[str, Any]:
        return {"ipv4Unicast": {"tableVersion": self.version, "peers": {
            "10.0.0.1": {"state": "Established", "peerUptimeMsec": self.uptime_ms}}}}


@pytest.fixture
def routing(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Tables, list[float]]:
    plan, _ = pipeline.render(TOPOLOGIES / "two-sites-mini.yaml")
    tables, clock = Tables(), [100.0]
    monkeypatch.setattr(ready, "bgp_summaries", tables.summaries)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    backend = SimpleNamespace(router_files=lambda _state, name: NodeFiles(Path("/none") / name))
    state = cast(LabState, SimpleNamespace(boot_pending=[]))
    return ready._RoutingQuiet(cast(Any, backend), state, plan), tables, clock


def test_quiet_early_then_settled(routing: tuple[Any, Tables, list[float]]) -> None:
    quiet, tables, clock = routing
    assert quiet.settled() is False  # the first look is a change
    for _ in range(3):  # tables still changing
        clock[0] += 0.1
        tables.version += 1
        assert quiet.settled() is False
        assert quiet.quiet_for(ready.EARLY_QUIET_S) is False
    clock[0] += ready.EARLY_QUIET_S
    assert quiet.settled() is False
    assert quiet.quiet_for(ready.EARLY_QUIET_S) is True
    clock[0] += ready.MIN_QUIET_S - ready.EARLY_QUIET_S
    assert quiet.settled() is True
    tables.version += 1  # a late update starts the wait again
    assert quiet.settled() is False
    assert quiet.quiet_for(ready.EARLY_QUIET_S) is False


def test_a_young_session_holds_both(routing: tuple[Any, Tables, list[float]]) -> None:
    quiet, tables, clock = routing
    tables.uptime_ms = 0  # its first updates may still be held for the coalesce time
    quiet.settled()
    clock[0] += 10.0
    assert quiet.settled() is False
    assert quiet.quiet_for(ready.EARLY_QUIET_S) is False
    tables.uptime_ms = round(ready.COALESCE_S * 1000)
    assert quiet.settled() is True
    assert ready.EARLY_QUIET_S < ready.MIN_QUIET_S
