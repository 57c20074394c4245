"""Named network namespaces, links in them, and offload switches, via pyroute2.

Everything here acts on named namespaces (/run/netns/NAME) and never on the
namespace of the calling process.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from pyroute2 import IPRoute, netns
from pyroute2.ethtool.ioctl import IoctlEthtool
from pyroute2.netlink.exceptions import NetlinkError

from lab.errors import ImpairmentError
from lab.netns import netns_path, socket_at

RtnlOpener = Callable[[str], AbstractContextManager[Any]]

# Features that hand a packet socket partial checksums or GSO/GRO super-frames
# (forwarded as they are, ICMP works and TCP silently dies), plus VLAN
# acceleration so tags stay inside the frame.
_OFFLOADS = re.compile(
    r"^(tx-checksum-.*|tx-scatter-gather.*|tx-.*segmentation|tx-gso-.*"
    r"|rx-gro.*|rx-lro|rx-udp-gro-forwarding|tx-vlan-hw-insert|tx-vlan-stag-hw-insert)$"
)


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def ensure_netns(name: str) -> bool:
    """Create namespace ``name`` unless it exists; True if this call created it. A path
    (``/proc/PID/ns/net``) names a namespace that someone else made: it must exist."""
    if netns_exists(name):
        return False
    if name.startswith("/"):
        raise ImpairmentError(f"namespace {name} does not exist")
    try:
        netns.create(name)
    except OSError as exc:
        raise ImpairmentError(f"cannot create namespace {name}: {exc}") from exc
    return True


def remove_netns(name: str) -> None:
    """Remove namespace ``name`` if present (its interfaces go with it). A path names a
    namespace of someone else's processes: it ends with them, and is left alone here."""
    if name.startswith("/") or not netns_exists(name):
        return
    try:
        netns.remove(name)
    except OSError as exc:
        raise ImpairmentError(f"cannot remove namespace {name}: {exc}") from exc


@contextlib.contextmanager
def rtnl(name: str) -> Iterator[Any]:
    """An IPRoute bound to existing namespace ``name`` (never creates it)."""
    if not netns_exists(name):
        raise ImpairmentError(f"namespace {name} does not exist")
    try:
        ipr = IPRoute(netns=name, flags=0)
    except OSError as exc:
        raise ImpairmentError(f"cannot open netlink in namespace {name}: {exc}") from exc
    try:
        yield ipr
    finally:
        ipr.close()


def link_index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def require_index(ipr: Any, ifname: str, where: str) -> int:
    index = link_index(ipr, ifname)
    if index is None:
        raise ImpairmentError(f"interface {ifname} not found in namespace {where}")
    return index


def create_veth(ns: str, ifname: str, peer_ns: str, peer_ifname: str, mtu: int,
                opener: RtnlOpener = rtnl) -> None:
    """A veth pair: ``ifname`` in ``ns``, ``peer_ifname`` in ``peer_ns``, both up.

    The peer is created directly in its namespace, so its name may exist in ``ns``.
    """
    with opener(ns) as ipr:
        if link_index(ipr, ifname) is not None:
            raise ImpairmentError(f"interface {ifname} already exists in namespace {ns}")
        try:
            ipr.link("add", ifname=ifname, kind="veth", mtu=mtu,
                     peer={"ifname": peer_ifname, "net_ns_fd": peer_ns, "mtu": mtu})
        except NetlinkError as exc:
            raise ImpairmentError(
                f"cannot create veth {ns}/{ifname} <-> {peer_ns}/{peer_ifname}: {exc}"
            ) from exc
        ipr.link("set", index=require_index(ipr, ifname, ns), state="up")
    with opener(peer_ns) as ipr:
        ipr.link("set", index=require_index(ipr, peer_ifname, peer_ns), state="up")


def delete_link(ns: str, ifname: str, opener: RtnlOpener = rtnl) -> bool:
    """Delete ``ifname`` (and a veth's peer with it); False if it was not there."""
    if opener is rtnl and not netns_exists(ns):
        return False
    with opener(ns) as ipr:
        index = link_index(ipr, ifname)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == 19:  # ENODEV: gone meanwhile
                return False
            raise ImpairmentError(f"cannot delete {ns}/{ifname}: {exc}") from exc
    return True


def socket_in_netns(name: str, family: int = socket.AF_INET,
                    kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """A socket living in namespace ``name`` (usable from this process; see lab.netns:
    a helper thread opens it, so no thread of the caller changes namespace)."""
    if not netns_exists(name):
        raise ImpairmentError(f"namespace {name} does not exist")
    try:
        return socket_at(name, family, kind)
    except OSError as exc:
        raise ImpairmentError(f"cannot open a socket in namespace {name}: {exc}") from exc


@contextlib.contextmanager
def _ethtool(ns: str, ifname: str, sock: socket.socket | None = None) -> Iterator[Any]:
    """The ethtool ioctl for ``ifname``, on ``sock`` or a socket opened in namespace ``ns``."""
    eth = IoctlEthtool()
    eth.sock.close()
    eth.sock = sock if sock is not None else socket_in_netns(ns)
    try:
        eth.change_ifname(ifname)
        yield eth
    finally:
        eth.close()


def disable_offloads(ns: str, ifname: str, sock: socket.socket | None = None) -> list[str]:
    """Turn off checksum/segmentation/GRO offloads of ``ifname``; returns the names.

    ``sock``: a socket already living in ``ns`` (a process that entered the namespace
    passes one to save opening it from outside); it is closed afterwards."""
    try:
        with _ethtool(ns, ifname, sock) as eth:
            names = _switch_off(eth)
            features = eth.get_features()  # one read: each call parses string sets
            still_on = [n for n in names if features.is_active(n)]
    except OSError as exc:
        raise ImpairmentError(f"cannot change offloads of {ns}/{ifname}: {exc}") from exc
    if still_on:
        raise ImpairmentError(f"offloads still on for {ns}/{ifname}: {', '.join(still_on)}")
    return names


def _switch_off(eth: Any) -> list[str]:
    features = eth.get_features()
    keys = features.keys()  # iterating the list itself yields tuples
    names = [n for n in keys if _OFFLOADS.match(n) and features.is_available(n)]
    for name in names:
        features[name] = False
    eth.set_features(features)
    return names


def active_offloads(ns: str, ifname: str) -> list[str]:
    """Offload features from the list above that are currently on (for checks)."""
    with _ethtool(ns, ifname) as eth:
        features = eth.get_features()
        keys = features.keys()
        return [n for n in keys if _OFFLOADS.match(n) and features.is_active(n)]
