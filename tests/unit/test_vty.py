"""lab.backend.vty against a fake daemon socket: outputs in order on one connection, failing
statuses, replies split over many sends, a daemon hanging up, timeouts and missing sockets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend.vty import vty_commands
from lab.errors import BackendError
from tests.unit.fakevty import FakeVty, Reply, short_dir


@pytest.fixture
def sock() -> Iterator[Path]:
    with short_dir() as folder:
        yield folder / "bgpd.vty"


def test_outputs_in_order_on_one_connection(sock: Path) -> None:
    replies = {"show version": Reply("FRRouting 8.4.4\n"), "show bgp summary": Reply("3 peers\n")}
    with FakeVty(sock, replies) as vty:
        out = vty_commands(sock, ["enable", "show version", "show bgp summary"])
    assert out == ["", "FRRouting 8.4.4\n", "3 peers\n"]
    assert vty.commands == ["enable", "show version", "show bgp summary"]


@pytest.mark.parametrize(("status", "text"), [
    (1, "warning"), (2, "unknown command"), (3, "ambiguous command"),
    (4, "incomplete command"), (13, "configuration failed"), (7, "7")])
def test_failing_status_stops_the_session(sock: Path, status: int, text: str) -> None:
    replies = {"router bgp 65001": Reply("% Unknown thing\n", status)}
    with FakeVty(sock, replies) as vty, pytest.raises(BackendError) as err:
        vty_commands(sock, ["configure terminal", "router bgp 65001", "exit", "end"])
    assert str(err.value) == f"bgpd.vty: 'router bgp 65001' failed ({text}): % Unknown thing"
    assert vty.commands == ["configure terminal", "router bgp 65001"]


@pytest.mark.parametrize("output", ["", "x", "line one\nline two\n" * 5],
                         ids=["empty", "one-byte", "lines"])
def test_reply_sent_byte_by_byte(sock: Path, output: str) -> None:
    with FakeVty(sock, {"show run": Reply(output, trickle=True)}):
        assert vty_commands(sock, ["show run", "show run"]) == [output, output]


def test_daemon_hangs_up_mid_reply(sock: Path) -> None:
    with FakeVty(sock, {"show run": Reply("partial", hang_up=True)}) as vty, \
            pytest.raises(BackendError, match="closed its vty connection"):
        vty_commands(sock, ["show run", "show version"])
    assert vty.commands == ["show run"]


def test_silent_daemon_times_out(sock: Path) -> None:
    with FakeVty(sock, {"show run": Reply(silent=True)}), \
            pytest.raises(BackendError, match="timed out"):
        vty_commands(sock, ["show run"], timeout_s=0.2)


def test_missing_socket(sock: Path) -> None:
    with pytest.raises(BackendError, match=re.escape(f"{sock}: ")):
        vty_commands(sock, ["show version"])
