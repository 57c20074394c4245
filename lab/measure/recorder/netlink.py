"""NETLINK_ROUTE sockets inside the routers' network namespaces, without forking: the
creating thread enters a router's namespace, creates the socket and comes back
(``lab.netns.in_netns``); the process as a whole never leaves its namespace.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from lab.netns import in_netns
from lab.sockopts import enlarge_receive_buffer

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
RTMGRP_LINK = 0x1
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
RTNLGRP_NEXTHOP = 32  # beyond the 32-bit bind() mask: joined with NETLINK_ADD_MEMBERSHIP
RECEIVE_BUFFER = 4 << 20
COMPAT_MODE_SYSCTL = Path("/proc/sys/net/ipv4/nexthop_compat_mode")

def route_monitor_socket(path: Path) -> tuple[socket.socket, bool]:
    """A non-blocking NETLINK_ROUTE socket in namespace ``path`` subscribed to IPv4 and IPv6
    route, nexthop and link notifications, and that namespace's ``nexthop_compat_mode`` (True
    when route notifications carry expanded gateways and nexthop changes re-announce routes)."""
    with in_netns(path):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
        try:
            compat = _read_compat_mode()
        except BaseException:
            sock.close()
            raise
    try:
        _configure(sock)
    except OSError:
        sock.close()
        raise
    return sock, compat


def _read_compat_mode() -> bool:
    # /proc/sys/net shows the namespace of the thread that opens it
    try:
        return COMPAT_MODE_SYSCTL.read_text().strip() != "0"
    except FileNotFoundError:  # kernel without nexthop objects: routes carry gateways
        return True


def _configure(sock: socket.socket) -> None:
    enlarge_receive_buffer(sock, RECEIVE_BUFFER)
    sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE))
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NEXTHOP)
    except OSError as exc:  # kernels before 5.3 have no nexthop objects
        if exc.errno != errno.EINVAL:
            raise
    sock.setblocking(False)


def port_id(sock: socket.socket) -> int:
    """The socket's netlink port id: dump replies to our requests carry it."""
    pid, _groups = sock.getsockname()
    return int(pid)
