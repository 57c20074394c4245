"""The FIB recorder process against the real kernel (root; own namespaces only).

Routes are changed with ``ip`` in two scratch namespaces joined by a veth; every row must
carry the right action and next hops, stamped between the CLOCK_MONOTONIC readings the test
takes around the command that caused it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.backend import processes
from lab.backend.state import ProcessRecord
from lab.impair.measure import scratch_namespaces
from lab.measure.recorder import RecorderSpec, load_routes, start_recorder, wait_ready
from lab.measure.recorder.fib import read_rows
from tests.conftest import require_root, require_tool
from tests.integration.hostsnap import host_snapshot, snapshot_diff

pytestmark = pytest.mark.integration

VIP = "192.0.2.53/32"
VIP6 = "2001:db8:53::53/128"


@dataclass
class Recording:
    a: str
    b: str
    out: Path
    log: Path
    record: ProcessRecord
    proc: subprocess.Popen[bytes]

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.out)

    def stop(self) -> int:
        """SIGTERM; the exit status."""
        os.kill(self.record.pid, signal.SIGTERM)
        return self.proc.wait(timeout=10)


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, timeout=10, capture_output=True)


def timed(netns: str, *args: str) -> tuple[int, int]:
    before = time.monotonic_ns()
    ip(netns, *args)
    return before, time.monotonic_ns()


def wait_rows(rec: Recording, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Poll the output until it has ``count`` rows (synchronisation only: rows carry their
    own receipt instants)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = rec.rows()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[Recording]:
    require_root()
    require_tool("ip", "nsenter")
    with scratch_namespaces("a", "b") as (a, b):
        ip(a, "link", "add", "e0", "type", "veth", "peer", "name", "e0", "netns", b)
        for ns, address, address6 in ((a, "10.0.0.1/24", "fd00::1/64"),
                                      (b, "10.0.0.254/24", "fd00::fe/64")):
            ip(ns, "link", "set", "lo", "up")
            ip(ns, "address", "add", address, "dev", "e0")
            ip(ns, "address", "add", address6, "dev", "e0", "nodad")
            ip(ns, "link", "set", "e0", "up")
        ip(a, "route", "add", VIP, "via", "10.0.0.2")  # there before the recorder starts
        spec = RecorderSpec.build("altest", {"ra": a, "rb": b}, [VIP, VIP6],
                                  tmp_path / "fib.jsonl", tmp_path / "ready")
        spec_path = spec.write(tmp_path / "recorder.json")
        lab = f"altest{os.getpid()}{secrets.token_hex(2)}"
        log = tmp_path / "recorder.log"
        record = start_recorder(
            lambda argv, out: processes.launch(lab, "_recorder", "recorder", argv, out),
            spec_path, log)
        proc = processes._CHILDREN[record.pid]
        try:
            wait_ready(tmp_path / "ready", 10.0, record, log)
            yield Recording(a, b, tmp_path / "fib.jsonl", log, record, proc)
        finally:
            processes.stop_records([record])  # only the PID this test started


def test_routes_multipath_nexthop_objects(recording: Recording) -> None:
    a, b = recording.a, recording.b
    own_ns = os.stat("/proc/self/ns/net").st_ino
    assert os.stat(f"/proc/{recording.record.pid}/ns/net").st_ino == own_ns
    host_before = host_snapshot()
    steps = [
        (b, timed(b, "route", "add", VIP, "via", "10.0.0.1"), "add", "10.0.0.1"),
        (a, timed(a, "route", "replace", VIP, "nexthop", "via", "10.0.0.3",
                  "nexthop", "via", "10.0.0.2"), "add", "10.0.0.2,10.0.0.3"),
    ]
    ip(a, "nexthop", "add", "id", "10", "via", "10.0.0.2", "dev", "e0")
    ip(a, "nexthop", "add", "id", "11", "via", "10.0.0.3", "dev", "e0")
    ip(a, "nexthop", "add", "id", "12", "group", "10/11")
    steps += [
        (a, timed(a, "route", "replace", VIP, "nhid", "12"), "add", "10.0.0.2,10.0.0.3"),
        (a, timed(a, "nexthop", "replace", "id", "12", "group", "11"), "add", "10.0.0.3"),
        (a, timed(a, "nexthop", "del", "id", "11"), "del", ""),  # group emptied: route gone
        (a, timed(a, "route", "add", VIP, "via", "10.0.0.4", "metric", "50"), "add",
         "10.0.0.4"),
        (a, timed(a, "route", "del", VIP, "metric", "50"), "del", ""),
        (b, timed(b, "route", "del", VIP), "del", ""),
    ]
    ip(a, "route", "add", "198.51.100.1/32", "via", "10.0.0.9")  # not watched
    rows = wait_rows(recording, 1 + len(steps))
    assert recording.stop() == 0
    frame = load_routes(recording.out, trial=0)
    names = {a: "ra", b: "rb"}
    present = frame[frame["action"] == "present"]
    assert present[["router", "nexthops"]].values.tolist() == [["ra", "10.0.0.2"]]
    changes = frame[frame["action"] != "present"].reset_index(drop=True)
    assert len(changes) == len(steps), changes
    for row, (ns, (before, after), action, hops) in zip(changes.to_dict("records"), steps,
                                                        strict=True):
        assert (row["router"], row["action"], row["nexthops"]) == (names[ns], action, hops)
        assert before <= int(row["t_ns"]) <= after + 50_000_000, (row, before, after)
    assert set(changes["prefix"]) == {VIP}
    assert [r.get("cause") for r in rows if r["action"] != "present"] == [
        None, None, None, None, "nexthop", None, None, None]
    assert "stopped" in recording.log.read_text()
    assert snapshot_diff(host_before, host_snapshot()) == []


def test_link_down_is_recorded_although_the_kernel_is_silent(recording: Recording) -> None:
    a = recording.a
    ip(a, "nexthop", "add", "id", "20", "via", "10.0.0.2", "dev", "e0")
    ip(a, "route", "replace", VIP, "nhid", "20")
    before, after = timed(a, "link", "set", "e0", "down")
    rows = wait_rows(recording, 3)
    assert recording.stop() == 0
    routes = subprocess.run(["ip", "-n", a, "route", "show", VIP], capture_output=True,
                            text=True, timeout=10, check=True).stdout
    assert routes.strip() == ""  # the kernel flushed it without a notification
    last = rows[-1]
    assert (last["action"], last["cause"], last["nhid"]) == ("del", "link-down", 20)
    assert before <= last["t_ns"] <= after + 50_000_000


def test_ipv6_routes_and_their_next_hops_are_recorded(recording: Recording) -> None:
    a = recording.a
    steps = [
        timed(a, "-6", "route", "add", VIP6, "via", "fd00::2", "dev", "e0"),
        timed(a, "-6", "route", "replace", VIP6, "nexthop", "via", "fd00::3", "dev", "e0",
              "nexthop", "via", "fd00::2", "dev", "e0"),
        timed(a, "-6", "route", "del", VIP6),
    ]
    wait_rows(recording, 1 + len(steps))
    assert recording.stop() == 0
    frame = load_routes(recording.out, trial=0)
    six = frame[frame["prefix"] == VIP6].reset_index(drop=True)
    assert six[["router", "action", "nexthops"]].values.tolist() == [
        ["ra", "add", "fd00::2"], ["ra", "add", "fd00::2,fd00::3"], ["ra", "del", ""]]
    for row, (before, after) in zip(six.to_dict("records"), steps, strict=True):
        assert before <= int(row["t_ns"]) <= after + 50_000_000, (row, before, after)
