"""The emulator's control protocol: line commands out, one JSON line back per command.

Commands (see csrc/linkemu.c): ``hello``, ``add LINK IFA IFB mtu=N``,
``set LINK DIR key=value ...`` (a full setting: missing keys take defaults),
``comp LINK DIR MICROSECONDS`` (taken off every frame's hold; kept across ``set``),
``del LINK``, ``stats [LINK]``, ``quit``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from lab.errors import ImpairmentError
from lab.impair.model import Counters, Direction, Impairment, check_link_id

_SUN_PATH_MAX = 107


def _num(value: float) -> str:
    return f"{value:.9g}"


def encode_set(link_id: str, direction: Direction, imp: Impairment) -> str:
    """The ``set`` command giving one or both directions of a link ``imp``."""
    check_link_id(link_id)
    fields = [
        f"delay_us={_num(imp.delay_ms * 1000.0)}",
        f"jitter_us={_num(imp.jitter_ms * 1000.0)}",
        f"dist={imp.jitter_distribution}",
        f"loss={_num(imp.loss_pct / 100.0)}",
    ]
    if imp.gilbert is not None:
        ge = imp.gilbert
        fields += [
            f"ge_p={_num(ge.p_pct / 100.0)}",
            f"ge_r={_num(ge.r_pct / 100.0)}",
            f"ge_bad={_num(ge.loss_bad_pct / 100.0)}",
            f"ge_good={_num(ge.loss_good_pct / 100.0)}",
        ]
    fields += [
        f"rate_bps={imp.rate_bps or 0}",
        f"queue_us={_num(imp.queue_ms * 1000.0)}",
        f"limit={imp.queue_limit}",
        f"blackhole={int(imp.blackhole)}",
        f"reorder={int(imp.reorder)}",
    ]
    return f"set {link_id} {direction} {' '.join(fields)}"


def encode_add(link_id: str, port_a: str, port_b: str, mtu: int) -> str:
    check_link_id(link_id)
    return f"add {link_id} {port_a} {port_b} mtu={mtu}"


def decode_reply(line: str | bytes) -> dict[str, Any]:
    """Parse one reply; raises ImpairmentError for malformed or failed replies."""
    try:
        reply = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImpairmentError(f"emulator sent a malformed reply: {line!r}") from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ImpairmentError(f"emulator sent an unexpected reply: {line!r}")
    if not reply["ok"]:
        raise ImpairmentError(f"emulator refused: {reply.get('error', 'unknown error')}")
    return reply


_COUNTER_FIELDS = tuple(Counters.__dataclass_fields__)
_LATENESS_FIELDS = ("late_500us", "late_2ms", "late_10ms")  # absent from older emulators


def decode_counters(data: dict[str, Any]) -> Counters:
    """Counters of one direction from a ``stats`` reply."""
    try:
        return Counters(**{name: int(data[name] if name not in _LATENESS_FIELDS
                                     else data.get(name, 0)) for name in _COUNTER_FIELDS})
    except (KeyError, TypeError, ValueError) as exc:
        raise ImpairmentError(f"emulator stats lack counters: {data!r}") from exc


def decode_stats(reply: dict[str, Any]) -> dict[str, tuple[Counters, Counters]]:
    """Per link id: (a_to_b, b_to_a) counters from a ``stats`` reply."""
    links = reply.get("links")
    if not isinstance(links, list):
        raise ImpairmentError(f"emulator stats without links: {reply!r}")
    out: dict[str, tuple[Counters, Counters]] = {}
    for link in links:
        out[str(link["id"])] = (decode_counters(link["a_to_b"]), decode_counters(link["b_to_a"]))
    return out


def connect_unix(sock: socket.socket, path: Path) -> None:
    """Connect ``sock`` to ``path``, even past the 107-byte sun_path limit."""
    text = str(path)
    if len(text.encode()) <= _SUN_PATH_MAX:
        sock.connect(text)
        return
    # The kernel resolves the name through the directory's fd at connect time.
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/{path.name}")
    finally:
        os.close(dir_fd)


class ControlClient:
    """A connection to one emulator's control socket; thread-safe."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            connect_unix(self._sock, path)
        except OSError as exc:
            self._sock.close()
            raise ImpairmentError(f"cannot reach the emulator at {path}: {exc}") from exc
        self._file = self._sock.makefile("rb")

    def request(self, *commands: str) -> list[dict[str, Any]]:
        """Send commands in one write (applied together) and return their replies.

        Every reply is checked: the first refusal raises ImpairmentError after
        all replies have been read, so the stream stays in step.
        """
        payload = "".join(f"{c}\n" for c in commands).encode()
        with self._lock:
            try:
                self._sock.sendall(payload)
                lines = [self._file.readline() for _ in commands]
            except OSError as exc:
                raise ImpairmentError(f"emulator control failed: {exc}") from exc
        if any(not line for line in lines):
            raise ImpairmentError("emulator closed the control connection")
        return [decode_reply(line) for line in lines]

    def close(self) -> None:
        with self._lock:
            self._file.close()
            self._sock.close()
