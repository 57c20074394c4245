"""Entering a named network namespace on the calling thread only (setns), and back.

Sockets keep the namespace they were created in, so one thread can own sockets of many
namespaces: enter, create the socket, return. Python 3.11 has no ``os.setns``; libc's is
called through ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

from lab.probe.errors import ProbeError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(netns: str) -> Path:
    """``/run/netns/NAME`` for a name; an absolute path is kept as it is."""
    path = Path(netns)
    if path.is_absolute():
        return path
    if not netns or "/" in netns or netns in {".", ".."}:
        raise ProbeError(f"invalid namespace name {netns!r}")
    return NETNS_DIR / netns


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise ProbeError(f"cannot enter network namespace {what}: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(netns: str) -> Iterator[None]:
    """Run the body with this thread in namespace ``netns`` (a name or a path)."""
    path = netns_path(netns)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ProbeError(f"cannot open namespace {path}: {exc.strerror}") from exc
        try:
            _setns(target, str(path))
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own, "of this thread (restoring)")
    finally:
        os.close(own)
