"""BGP session and BFD state events from FRR log files, on CLOCK_MONOTONIC.

FRR writes wall-clock local time (``2026/11/27 00:42:52.123456``); each line is converted with
one (realtime, monotonic) pair read back to back, so an event's error is the log's precision
(1 us with ``log timestamp precision 6``) plus any wall-clock step or slew between the pair and
the event. Only lines with microseconds are used by default: without them an instant is known
to a second, useless for detection times.

Lines parsed (FRR 8.4; the ``[XXXXX-XXXXX]`` unique-id and ``[EC n]`` prefixes are optional)::

  %ADJCHANGE: neighbor 10.254.0.1(vm) in vrf default Up
  %ADJCHANGE: neighbor 10.254.0.1(vm) in vrf default Down BGP Notification send
  %NOTIFICATION(Hard Reset): sent to neighbor 10.254.0.1 6/10 (Cease/BFD Down) 0 bytes
  %NOTIFICATION: sent to neighbor 10.254.0.1 4/0 (Hold Timer Expired) 0 bytes
  state-change: [mhop:no peer:10.254.0.1 local:10.254.0.0 vrf:default ifname:e0]
      up -> down reason:control-expired           (one line in the log)
  state-change: [mhop:no peer:10.254.0.1 ...] down -> up

each after ``2026/11/27 00:49:32.723699 BGP: [PXVXG-TFNNT] `` (``BFD:`` for bfdd). bfdd writes
state changes only with ``debug bfd peer``, and FRR 8.4 applies ``log timestamp precision`` only
to a ``log file`` target set in the configuration, not to the ``--log file:`` of the command
line. The NOTIFICATION line just before an ADJCHANGE Down says why the session went down.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

Event = dict[str, Any]

LINE = re.compile(
    r"^(?P<date>\d{4}/\d{2}/\d{2}) (?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r" (?P<proto>[A-Z0-9]+): (?:\[[0-9A-Z]{5}-[0-9A-Z]{5}\])?(?:\[EC \d+\])? ?(?P<text>.*)$")
ADJCHANGE = re.compile(
    r"^%ADJCHANGE: neighbor (?P<peer>[^\s(]+)(?:\([^)]*\))? in vrf (?P<vrf>\S+) "
    r"(?P<state>Up|Down)(?: (?P<why>.*?))?\s*$")
NOTIFICATION = re.compile(
    r"^%NOTIFICATION(?:\([^)]*\))?: (?P<dir>sent to|received from) neighbor (?P<peer>\S+) "
    r"(?P<code>\d+/\d+) \((?P<desc>[^)]*)\)")
BFD_STATE = re.compile(
    r"^state-change: \[(?P<key>[^\]]*)\] (?P<old>[\w-]+) -> (?P<new>[\w-]+)"
    r"(?: reason:(?P<reason>\S+))?")
BFD_PEER = re.compile(r"(?:^|\s)peer:(?P<peer>\S+)")
# An ADJCHANGE Down follows its NOTIFICATION within microseconds; older ones are unrelated.
NOTIFICATION_WINDOW_NS = 1_000_000_000
# Codes whose NOTIFICATION *sent* names the local detection
SENT_CODE_REASONS = {"4/0": "hold-timer-expired", "6/10": "bfd-down"}
DOWN_TEXT_REASONS = {
    "BFD down received": "bfd-down",
    "BGP Notification send": "notification-sent",
    "BGP Notification received": "notification-received",
    "Peer closed the session": "peer-closed",
}
BFD_DOWN_STATES = {"down", "admin-down"}


class ClockPair(NamedTuple):
    """One CLOCK_REALTIME and one CLOCK_MONOTONIC reading taken back to back."""

    realtime_ns: int
    monotonic_ns: int

    def to_monotonic(self, realtime_ns: int) -> int:
        return realtime_ns - self.realtime_ns + self.monotonic_ns


def read_clock_pair() -> ClockPair:
    """Realtime read between two monotonic readings; the monotonic value is their middle."""
    before = time.monotonic_ns()
    realtime = time.time_ns()
    after = time.monotonic_ns()
    return ClockPair(realtime, (before + after) // 2)


@functools.lru_cache(maxsize=4096)
def _local_epoch_s(date: str, clock: str) -> int:
    """Seconds since the epoch of a local wall-clock time (this machine's time zone)."""
    naive = datetime.strptime(f"{date} {clock}", "%Y/%m/%d %H:%M:%S")
    return int(naive.timestamp())  # a naive datetime is taken as local time


def log_realtime_ns(date: str, clock: str, frac: str | None) -> int:
    """``2026/11/27``, ``00:42:52``, ``123456`` -> CLOCK_REALTIME ns."""
    sub_ns = int(frac.ljust(9, "0")[:9]) if frac else 0
    return _local_epoch_s(date, clock) * 1_000_000_000 + sub_ns


@dataclass
class _Notification:
    t_ns: int
    direction: str  # "sent" or "received"
    code: str
    desc: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def session_down_reason(why: str, note: _Notification | None) -> tuple[str, str]:
    """(reason, detail) of an ADJCHANGE Down, from its text and the NOTIFICATION before it."""
    reason = DOWN_TEXT_REASONS.get(why, _slug(why))
    if note is None:
        return reason, why
    detail = f"{why}: notification {note.direction} {note.code} ({note.desc})"
    if note.direction == "sent":
        reason = SENT_CODE_REASONS.get(note.code, "notification-sent")
    else:
        reason = "notification-received"
    return reason, detail


class _FileParser:
    """Events of one router's log file; remembers NOTIFICATIONs until their ADJCHANGE."""

    def __init__(self, router: str, address_to_node: Mapping[str, str], clock: ClockPair,
                 min_digits: int) -> None:
        self.router = router
        self.nodes = address_to_node
        self.clock = clock
        self.min_digits = min_digits
        self.notes: dict[str, _Notification] = {}

    def parse(self, lines: Iterator[str]) -> Iterator[Event]:
        for line in lines:
            match = LINE.match(line)
            if match is None or len(match["frac"] or "") < self.min_digits:
                continue
            t_ns = self.clock.to_monotonic(
                log_realtime_ns(match["date"], match["time"], match["frac"]))
            text = match["text"]
            if text.startswith("%"):
                event = self._bgp(t_ns, text)
            elif text.startswith("state-change:"):
                event = self._bfd(t_ns, text)
            else:
                continue
            if event is not None:
                yield event

    def _event(self, t_ns: int, source: str, kind: str, peer: str, reason: str,
               detail: str) -> Event:
        return {"t_ns": t_ns, "source": source, "kind": kind, "router": self.router,
                "peer": self.nodes.get(peer, peer), "reason": reason, "detail": detail}

    def _bgp(self, t_ns: int, text: str) -> Event | None:
        note = NOTIFICATION.match(text)
        if note is not None:
            direction = "sent" if note["dir"] == "sent to" else "received"
            self.notes[note["peer"]] = _Notification(t_ns, direction, note["code"], note["desc"])
            return None
        change = ADJCHANGE.match(text)
        if change is None:
            return None
        peer = change["peer"]
        pending = self.notes.pop(peer, None)
        if change["state"] == "Up":
            return self._event(t_ns, "bgp", "session_up", peer, "", "")
        if pending is not None and t_ns - pending.t_ns > NOTIFICATION_WINDOW_NS:
            pending = None
        reason, detail = session_down_reason(change["why"] or "", pending)
        return self._event(t_ns, "bgp", "session_down", peer, reason, detail)

    def _bfd(self, t_ns: int, text: str) -> Event | None:
        match = BFD_STATE.match(text)
        if match is None:
            return None
        found = BFD_PEER.search(match["key"])
        peer = found["peer"] if found else match["key"]
        old, new = match["old"], match["new"]
        detail = f"{old} -> {new} [{match['key']}]"
        if new == "up":
            return self._event(t_ns, "bfd", "bfd_up", peer, "", detail)
        if new in BFD_DOWN_STATES and old == "up":
            return self._event(t_ns, "bfd", "bfd_down", peer, match["reason"] or new, detail)
        return None


def parse_frr_logs(paths_by_router: Mapping[str, Mapping[str, Path]],
                   address_to_node: Mapping[str, str],
                   clock: tuple[int, int],
                   since_monotonic_ns: int | None = None,
                   *, min_subsecond_digits: int = 6) -> list[Event]:
    """BGP and BFD events of every router's FRR logs, in time order.

    ``paths_by_router``: router -> {daemon or label: log path}; lines are recognised by
    content, so one ``frr.log`` written by all daemons works as well as one file per daemon.
    Missing files are skipped. ``clock``: (realtime_ns, monotonic_ns) read back to back.
    Events: ``t_ns`` (monotonic), ``source`` (bgp|bfd), ``kind`` (session_up, session_down,
    bfd_up, bfd_down), ``router``, ``peer`` (node name, else the address), ``reason`` (a token:
    ``bfd-down``, ``hold-timer-expired``, ``notification-received``, ``peer-closed``, ... for
    BGP; the BFD diagnostic such as ``control-expired`` or ``neighbor-down`` for BFD; empty
    for up) and ``detail`` (FRR's own words).
    """
    pair = ClockPair(*clock)
    events: list[Event] = []
    for router, paths in paths_by_router.items():
        for path in sorted(set(paths.values())):
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            parser = _FileParser(router, address_to_node, pair, min_subsecond_digits)
            events.extend(parser.parse(iter(text.splitlines())))
    if since_monotonic_ns is not None:
        events = [e for e in events if e["t_ns"] >= since_monotonic_ns]
    events.sort(key=lambda e: (e["t_ns"], e["router"], e["source"], e["peer"]))
    return events


class LogStates:
    """The latest BGP and BFD state per peer address in one router's FRR log, read
    incrementally (each call to ``update`` reads only what was appended since the last).

    Readiness waits on these instead of asking the daemons every fraction of a second: a
    vtysh query costs tens of milliseconds of CPU per router, a log read almost nothing.
    BGP state is "Up" or "Down" (from ``%ADJCHANGE``), BFD state is bfdd's ("up", "down",
    "init", ...; from ``state-change`` lines).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bgp: dict[str, str] = {}
        self.bfd: dict[str, str] = {}
        self._offset = 0
        self._partial = b""

    def update(self) -> None:
        try:
            with self.path.open("rb") as handle:
                if self.path.stat().st_size < self._offset:  # truncated: read it again
                    self._offset, self._partial = 0, b""
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            match = LINE.match(raw.decode("utf-8", errors="replace"))
            if match is None:
                continue
            text = match["text"]
            change = ADJCHANGE.match(text)
            if change is not None:
                self.bgp[change["peer"]] = change["state"]
                continue
            bfd = BFD_STATE.match(text)
            peer = BFD_PEER.search(bfd["key"]) if bfd is not None else None
            if bfd is not None and peer is not None:
                self.bfd[peer["peer"]] = bfd["new"]
