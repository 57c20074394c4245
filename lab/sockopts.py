"""Socket options the lab's programs share (standard library only)."""

from __future__ import annotations

import socket

SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python's socket module does not name it


def enlarge_receive_buffer(sock: socket.socket, size: int) -> None:
    """A receive buffer of ``size`` bytes: past net.core.rmem_max with CAP_NET_ADMIN (root in
    the socket's namespace), else as far as rmem_max allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
