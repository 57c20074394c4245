"""Entering network namespaces: the one place that knows where named namespaces live and how
a thread gets into one.

setns(CLONE_NEWNET) moves only the thread that calls it, and a socket keeps the namespace it
was created in, so one thread can own sockets of many namespaces (enter, create the socket,
come back) while the process as a whole stays where it is. Python 3.11 has no os.setns,
hence ctypes. Which namespace a lab node has is the backend's business
(``Backend.netns_path``); everything here takes a path (or a name under /run/netns).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from lab.errors import NamespaceError

NETNS_DIR = Path("/run/netns")  # where `ip netns` keeps named namespaces
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(netns: str | Path) -> Path:
    """The path of a namespace: a name lives under /run/netns; a path is kept as it is."""
    path = Path(netns)
    if path.is_absolute():
        return path
    text = str(netns)
    if not text or "/" in text or text in {".", ".."}:
        raise NamespaceError(0, f"invalid namespace name {text!r}")
    return NETNS_DIR / text


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise NamespaceError(code, f"cannot enter network namespace {what}: "
                                   f"{os.strerror(code)}")


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NamespaceError(exc.errno or 0, f"cannot open namespace {path}: "
                                             f"{exc.strerror}") from exc


def enter_netns(netns: str | Path) -> None:
    """Move the calling thread into ``netns`` for good (a forked child, a helper thread)."""
    path = netns_path(netns)
    fd = _open(path)
    try:
        _setns(fd, str(path))
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_netns(netns: str | Path) -> Iterator[None]:
    """Run the body with this thread in ``netns``, then bring the thread back."""
    path = netns_path(netns)
    own = _open(Path("/proc/thread-self/ns/net"))
    try:
        target = _open(path)
        try:
            _setns(target, str(path))
        finally:
            os.close(target)
        try:
            yield
        finally:
            # failing to get back would leave this thread in the lab's namespace
            _setns(own, "of this thread (returning)")
    finally:
        os.close(own)


def socket_at(netns: str | Path, family: int = socket.AF_INET,
              kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """A socket in ``netns``, opened by a short-lived thread that enters it, so that no
    thread of the caller changes namespace (safe from any thread of a threaded program)."""
    result: dict[str, socket.socket | BaseException] = {}

    def open_there() -> None:
        try:
            enter_netns(netns)
            result["socket"] = socket.socket(family, kind)
        except BaseException as exc:  # handed to the caller below
            result["error"] = exc

    thread = threading.Thread(target=open_there, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    found = result.get("socket")
    if isinstance(found, socket.socket):
        return found
    error = result.get("error")
    if isinstance(error, BaseException):
        raise error
    raise NamespaceError(0, f"no socket opened in {netns}")
