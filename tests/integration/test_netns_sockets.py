"""Sockets opened in a lab namespace by a helper thread (lab.netns): they live in that
namespace, and no thread of the calling process changes namespace."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from pyroute2 import netns

from lab.errors import ImpairmentError
from lab.impair.measure import scratch_namespaces
from lab.impair.namespaces import socket_in_netns
from tests.conftest import require_root

pytestmark = pytest.mark.integration
SO_NETNS_COOKIE = 71  # Linux 5.14+: identifies the namespace a socket belongs to


def cookie(sock: socket.socket) -> int:
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")


def thread_namespaces() -> dict[int, str]:
    """Thread id -> namespace, for this process's live threads. (Not every entry of
    /proc/self/task: a helper thread that has just been joined can linger there for a moment
    while the kernel finishes its exit, still showing the namespace it entered.)"""
    tasks = Path("/proc/self/task")
    found = {}
    for thread in threading.enumerate():
        if thread.native_id is not None:
            try:
                found[thread.native_id] = os.readlink(tasks / str(thread.native_id) / "ns" / "net")
            except FileNotFoundError:  # it ended meanwhile
                continue
    return found


def assert_no_thread_moved(before: dict[int, str]) -> None:
    after = thread_namespaces()
    assert {t: after[t] for t in before.keys() & after.keys()} == {
        t: before[t] for t in before.keys() & after.keys()}
    home = os.readlink("/proc/self/ns/net")
    assert all(after[t] == home for t in after.keys() - before.keys())


def test_socket_lives_in_the_namespace_and_no_thread_moves() -> None:
    require_root()
    before = thread_namespaces()
    with scratch_namespaces("sock") as (name,):
        reference = netns.create_socket(name, socket.AF_INET, socket.SOCK_DGRAM, flags=0)
        host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        opened = [socket_in_netns(name) for _ in range(5)]
        try:
            assert {cookie(s) for s in opened} == {cookie(reference)}
            assert cookie(reference) != cookie(host)
        finally:
            for sock in (reference, host, *opened):
                sock.close()
    assert_no_thread_moved(before)
    assert not any(t.name == "netns-socket" for t in threading.enumerate())


def test_a_missing_namespace_is_an_error() -> None:
    require_root()
    with pytest.raises(ImpairmentError, match="does not exist"):
        socket_in_netns("altest-no-such-namespace")
