"""FRR log lines -> bgp/bfd events on CLOCK_MONOTONIC (synthetic lines in the format FRR
8.4.4 writes, taken from real bgpd/bfdd logs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.measure.recorder import frrlog
from lab.measure.recorder.frrlog import (
    ClockPair,
    log_realtime_ns,
    parse_frr_logs,
    read_clock_pair,
    session_down_reason,
)

# 2026/11/27 00:49:32 UTC
EPOCH_S = int(datetime(2026, 11, 27, 0, 49, 32, tzinfo=UTC).timestamp())
CLOCK = ClockPair(realtime_ns=EPOCH_S * 1_000_000_000, monotonic_ns=5_000_000_000)
NODES = {"10.254.0.1": "nyc-s1", "10.254.0.0": "nyc-l1"}

BFD_DOWN = ("2026/11/27 00:49:32.723699 BFD: [SEY1D-NT8EQ] state-change: [mhop:no "
            "peer:10.254.0.1 local:10.254.0.0 vrf:default ifname:e0] up -> down "
            "reason:control-expired")
BFD_NOTE = ("2026/11/27 00:49:32.724256 BGP: [HZN6M-XRM1G] %NOTIFICATION(Hard Reset): sent to "
            "neighbor 10.254.0.1 6/10 (Cease/BFD Down) 0 bytes ")
BGP_DOWN = ("2026/11/27 00:49:32.724308 BGP: [PXVXG-TFNNT] %ADJCHANGE: neighbor "
            "10.254.0.1(vm) in vrf default Down BGP Notification send")
BGP_UP = ("2026/11/27 00:49:36.731225 BGP: [N9HHH-F8H1M] %ADJCHANGE: neighbor 10.254.0.1(vm) "
          "in vrf default Up")
BFD_UP = ("2026/11/27 00:49:37.201591 BFD: [J1C6V-VMRW5] state-change: [mhop:no "
          "peer:10.254.0.1 local:10.254.0.0 vrf:default ifname:e0] down -> up")
HOLD_NOTE = ("2026/11/27 00:50:11.747562 BGP: [HZN6M-XRM1G] %NOTIFICATION: sent to neighbor "
             "10.254.0.1 4/0 (Hold Timer Expired) 0 bytes ")
HOLD_DOWN = ("2026/11/27 00:50:11.747636 BGP: [PXVXG-TFNNT] %ADJCHANGE: neighbor "
             "10.254.0.1(vm) in vrf default Down BGP Notification send")
NOISE = [
    "2026/11/27 00:49:03 BGP: [T83RR-8SM5G] bgpd 8.4.4 starting: vty@0, bgp@<all>:179",
    "2026/11/27 00:49:06.000001 BFD: [PSB4R-8T1TJ] session-new: mhop:no peer:10.254.0.1 "
    "local:10.254.0.0 vrf:default ifname:e0",
    "2026/11/27 00:49:37.831478 BGP: [M59KS-A3ZXZ] bgp_update_receive: rcvd End-of-RIB for "
    "IPv4 Unicast from 10.254.0.1 in vrf default",
    "2026/11/27 00:49:40.000000 BGP: [J7484-2SYXF][EC 33554465] 10.254.0.1 [FSM] Failure "
    "handling event BGP_Start in state Idle, prior events (null), (null), fd -1",
    "2026/11/27 00:49:41.000000 BFD: [J1C6V-VMRW5] state-change: [mhop:no peer:10.254.0.1 "
    "local:10.254.0.0 vrf:default ifname:e0] down -> init",
    "2026/11/27 00:49:4",  # cut short while being written
]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    frrlog._local_epoch_s.cache_clear()
    yield
    monkeypatch.undo()
    time.tzset()
    frrlog._local_epoch_s.cache_clear()


def write_log(tmp_path: Path, *lines: str, name: str = "frr.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mono(clock: str) -> int:
    """Monotonic ns of 2026/11/27 HH:MM:SS.ffffff under CLOCK."""
    hms, frac = clock.split(".")
    h, m, s = (int(x) for x in hms.split(":"))
    wall = datetime(2026, 11, 27, h, m, s, tzinfo=UTC)
    return int(wall.timestamp()) * 10**9 + int(frac) * 1000 - CLOCK.realtime_ns + 5 * 10**9


def test_bfd_then_bgp_down_and_back_up(tmp_path: Path) -> None:
    log = write_log(tmp_path, *NOISE, BFD_DOWN, BFD_NOTE, BGP_DOWN, BGP_UP, BFD_UP)
    events = parse_frr_logs({"nyc-l1": {"frr": log}}, NODES, CLOCK)
    assert [(e["source"], e["kind"], e["peer"], e["reason"]) for e in events] == [
        ("bfd", "bfd_down", "nyc-s1", "control-expired"),
        ("bgp", "session_down", "nyc-s1", "bfd-down"),
        ("bgp", "session_up", "nyc-s1", ""),
        ("bfd", "bfd_up", "nyc-s1", ""),
    ]
    assert events[0]["t_ns"] == mono("00:49:32.723699") == 5_723_699_000
    assert events[1]["t_ns"] == mono("00:49:32.724308")
    assert events[1]["detail"] == ("BGP Notification send: notification sent 6/10 "
                                   "(Cease/BFD Down)")
    assert all(e["router"] == "nyc-l1" for e in events)
    assert events[0]["detail"].startswith("up -> down [mhop:no peer:10.254.0.1")


def test_hold_timer_expiry(tmp_path: Path) -> None:
    log = write_log(tmp_path, HOLD_NOTE, HOLD_DOWN)
    (event,) = parse_frr_logs({"nyc-l1": {"bgpd": log}}, NODES, CLOCK)
    assert (event["kind"], event["reason"]) == ("session_down", "hold-timer-expired")
    assert "4/0 (Hold Timer Expired)" in event["detail"]


@pytest.mark.parametrize(("why", "note", "reason"), [
    ("Peer closed the session", None, "peer-closed"),
    ("BFD down received", None, "bfd-down"),
    ("Interface down", None, "interface-down"),
    ("Admin. shutdown", None, "admin-shutdown"),
    ("BGP Notification received", ("received", "6/10", "Cease/BFD Down"),
     "notification-received"),
    ("BGP Notification send", ("sent", "6/2", "Cease/Administrative Shutdown"),
     "notification-sent"),
])
def test_down_reasons(why: str, note: tuple[str, str, str] | None, reason: str) -> None:
    pending = frrlog._Notification(0, *note) if note else None
    assert session_down_reason(why, pending)[0] == reason


def test_notification_long_before_is_not_the_cause(tmp_path: Path) -> None:
    old_note = HOLD_NOTE.replace("00:50:11.747562", "00:50:01.000000")
    (event,) = parse_frr_logs({"r": {"bgpd": write_log(tmp_path, old_note, HOLD_DOWN)}},
                              {}, CLOCK)
    assert event["reason"] == "notification-sent" and event["peer"] == "10.254.0.1"


def test_peers_without_hostname_and_unknown_addresses(tmp_path: Path) -> None:
    line = ("2026/11/27 00:49:36.731225 BGP: %ADJCHANGE: neighbor 198.51.100.7 in vrf default "
            "Down Peer closed the session")
    (event,) = parse_frr_logs({"r": {"bgpd": write_log(tmp_path, line)}}, NODES, CLOCK)
    assert (event["peer"], event["reason"]) == ("198.51.100.7", "peer-closed")


def test_several_files_routers_since_and_missing(tmp_path: Path) -> None:
    bfd = write_log(tmp_path, BFD_DOWN, name="bfdd.log")
    bgp = write_log(tmp_path, BFD_NOTE, BGP_DOWN, BGP_UP, name="bgpd.log")
    other = write_log(tmp_path, BFD_UP, name="other.log")
    paths = {"nyc-l1": {"bfdd": bfd, "bgpd": bgp, "zebra": tmp_path / "missing.log"},
             "nyc-s1": {"frr": other}}
    events = parse_frr_logs(paths, NODES, CLOCK)
    assert [e["kind"] for e in events] == ["bfd_down", "session_down", "session_up", "bfd_up"]
    assert events == sorted(events, key=lambda e: e["t_ns"])
    later = parse_frr_logs(paths, NODES, CLOCK, since_monotonic_ns=mono("00:49:36.731225"))
    assert [(e["router"], e["kind"]) for e in later] == [("nyc-l1", "session_up"),
                                                        ("nyc-s1", "bfd_up")]


def test_lines_without_microseconds_are_skipped_unless_asked(tmp_path: Path) -> None:
    coarse = BGP_UP.replace("00:49:36.731225", "00:49:36")
    log = write_log(tmp_path, coarse)
    assert parse_frr_logs({"r": {"bgpd": log}}, {}, CLOCK) == []
    (event,) = parse_frr_logs({"r": {"bgpd": log}}, {}, CLOCK, min_subsecond_digits=0)
    assert event["t_ns"] == mono("00:49:36.000000")


def test_local_time_zone_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    frrlog._local_epoch_s.cache_clear()
    # 01:49:32 in Berlin (CET, UTC+1) is 00:49:32 UTC
    assert log_realtime_ns("2026/11/27", "01:49:32", "5") == EPOCH_S * 10**9 + 500_000_000


def test_clock_pair() -> None:
    pair = read_clock_pair()
    assert abs(pair.monotonic_ns - time.monotonic_ns()) < 10**9
    assert abs(pair.to_monotonic(time.time_ns()) - time.monotonic_ns()) < 10**8
    assert ClockPair(100, 10).to_monotonic(150) == 60
    assert parse_frr_logs({}, {}, (1, 2)) == []


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_timestamp_round_trip(moment: datetime) -> None:
    text_date, text_time = moment.strftime("%Y/%m/%d"), moment.strftime("%H:%M:%S")
    ns = log_realtime_ns(text_date, text_time, f"{moment.microsecond:06d}")
    expected = moment.replace(tzinfo=UTC)
    assert ns // 1000 == int(expected.timestamp()) * 10**6 + moment.microsecond


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    parser = frrlog._FileParser("r", {}, CLOCK, 6)
    lines = ["2026/11/27 00:49:32.000001 BGP: " + text, "2026/11/27 00:49:32.000001 BFD: " + text,
             text]
    for event in parser.parse(iter(lines)):
        assert event["kind"] in {"session_up", "session_down", "bfd_up", "bfd_down"}
