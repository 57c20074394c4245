"""Entering a network namespace with setns(2), for the calling thread only.

setns(CLONE_NEWNET) moves just the thread that calls it, so a short-lived thread can open
sockets in a lab's namespace while every other thread of the process stays where it was.
Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path`` (/run/netns/NAME)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def socket_at(path: str, family: int, kind: int) -> socket.socket:
    """A socket in the namespace at ``path``, opened by a thread that enters it and ends."""
    result: dict[str, socket.socket | BaseException] = {}

    def open_there() -> None:
        try:
            enter_netns(path)
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
    raise error if isinstance(error, BaseException) else OSError(f"no socket in {path}")
