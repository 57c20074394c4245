"""Measure what a link does: one-way delay, loss, order and throughput.

For the impairment tests and benchmark. All namespaces share one kernel, so
CLOCK_MONOTONIC stamps taken in different namespaces are on one clock: the
sender writes its send time into each datagram, the receiver subtracts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from lab.errors import ImpairmentError
from lab.impair.model import LinkEnd
from lab.impair.namespaces import ensure_netns, remove_netns, require_index, rtnl, socket_in_netns
from lab.sockopts import enlarge_receive_buffer

_HEADER = struct.Struct("!QQ")  # sequence, send time (monotonic ns)
NUD_PERMANENT = 0x80


def unique_name(tag: str, prefix: str = "altest") -> str:
    """A namespace or lab name no other run uses: prefix, pid, random part, tag."""
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(2)}-{tag}"


@contextlib.contextmanager
def scratch_namespaces(*tags: str, prefix: str = "altest") -> Iterator[list[str]]:
    """Fresh named namespaces, removed afterwards even on errors."""
    names = [unique_name(tag, prefix) for tag in tags]
    try:
        for name in names:
            ensure_netns(name)
        yield names
    finally:
        for name in names:
            with contextlib.suppress(ImpairmentError):
                remove_netns(name)


def address_link(a: LinkEnd, b: LinkEnd, a_ip: str, b_ip: str, prefixlen: int = 24) -> None:
    """Put addresses on both ends and permanent neighbour entries for each other,
    so no ARP exchange crosses (and is delayed by) the link under test."""
    macs = {}
    for end, ip in ((a, a_ip), (b, b_ip)):
        with rtnl(end.netns) as ipr:
            index = require_index(ipr, end.ifname, end.netns)
            ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
            macs[end] = ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")
    for end, peer, peer_ip in ((a, b, b_ip), (b, a, a_ip)):
        with rtnl(end.netns) as ipr:
            index = require_index(ipr, end.ifname, end.netns)
            ipr.neigh("add", dst=peer_ip, lladdr=macs[peer], ifindex=index, state=NUD_PERMANENT)


@dataclass
class ProbeResult:
    """What a UDP probe saw; delays in ms, in arrival order."""

    sent: int
    send_ns: list[int]
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (seq, recv ns)

    @property
    def received(self) -> int:
        return len(self.arrivals)

    @property
    def lost(self) -> int:
        return self.sent - len({seq for seq, _ in self.arrivals})

    @property
    def delays_ms(self) -> list[float]:
        return [(t - self.send_ns[seq]) / 1e6 for seq, t in self.arrivals]

    def delays_by_seq(self) -> dict[int, float]:
        return {seq: (t - self.send_ns[seq]) / 1e6 for seq, t in self.arrivals}

    @property
    def reordered(self) -> int:
        """Arrivals carrying a lower sequence number than an earlier arrival."""
        count, highest = 0, -1
        for seq, _ in self.arrivals:
            if seq < highest:
                count += 1
            highest = max(highest, seq)
        return count

    def median_ms(self) -> float:
        return statistics.median(self.delays_ms)

    def percentile_ms(self, pct: float) -> float:
        values = sorted(self.delays_ms)
        return values[min(len(values) - 1, int(len(values) * pct / 100.0))]

    def loss_runs(self) -> list[int]:
        """Lengths of runs of consecutive lost sequence numbers."""
        got = {seq for seq, _ in self.arrivals}
        runs, current = [], 0
        for seq in range(self.sent):
            if seq in got:
                if current:
                    runs.append(current)
                current = 0
            else:
                current += 1
        if current:
            runs.append(current)
        return runs


class UdpProbe:
    """Paced UDP datagrams from one namespace to another, with one-way delays."""

    def __init__(self, src_netns: str, dst_netns: str, dst_ip: str, *, port: int = 47000,
                 pps: float = 2000.0, count: int = 2000, size: int = 64,
                 drain_s: float = 0.5) -> None:
        if size < _HEADER.size:
            raise ImpairmentError(f"probe size must be >= {_HEADER.size}")
        self.dst = (dst_ip, port)
        self.pps, self.count, self.size, self.drain_s = pps, count, size, drain_s
        self.rx = socket_in_netns(dst_netns)
        self.tx = socket_in_netns(src_netns)
        enlarge_receive_buffer(self.rx, 8 << 20)
        self.rx.bind(self.dst)
        self.rx.settimeout(0.05)
        self.tx.connect(self.dst)
        self._done_sending = threading.Event()

    def _receive(self, result: ProbeResult) -> None:
        deadline = None
        while len(result.arrivals) < self.count:
            if self._done_sending.is_set():
                deadline = deadline or time.monotonic() + self.drain_s
                if time.monotonic() > deadline:
                    return
            try:
                data = self.rx.recv(65536)
            except TimeoutError:
                continue
            now = time.monotonic_ns()
            seq, _ = _HEADER.unpack_from(data)
            result.arrivals.append((seq, now))

    def run(self) -> ProbeResult:
        """Send ``count`` datagrams at ``pps``; returns after the drain time."""
        result = ProbeResult(sent=self.count, send_ns=[0] * self.count)
        receiver = threading.Thread(target=self._receive, args=(result,), daemon=True)
        receiver.start()
        pad = b"\0" * (self.size - _HEADER.size)
        interval_ns = int(1e9 / self.pps)
        start = time.monotonic_ns()
        try:
            for seq in range(self.count):
                wait = start + seq * interval_ns - time.monotonic_ns()
                if wait > 0:
                    time.sleep(wait / 1e9)
                sent_at = time.monotonic_ns()
                result.send_ns[seq] = sent_at
                self.tx.send(_HEADER.pack(seq, sent_at) + pad)
        finally:
            self._done_sending.set()
            receiver.join()
            self.close()
        return result

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


def tcp_transfer(src_netns: str, dst_netns: str, dst_ip: str, nbytes: int, *,
                 port: int = 47001, timeout: float = 30.0) -> float:
    """Send ``nbytes`` over TCP and check all arrived; returns the seconds it took."""
    server = socket_in_netns(dst_netns, kind=socket.SOCK_STREAM)
    client = socket_in_netns(src_netns, kind=socket.SOCK_STREAM)
    received: list[int] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(timeout)
            total = 0
            while chunk := conn.recv(1 << 16):
                total += len(chunk)
            received.append(total)
            conn.sendall(struct.pack("!Q", total))

    try:
        server.bind((dst_ip, port))
        server.listen(1)
        server.settimeout(timeout)
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client.settimeout(timeout)
        start = time.monotonic()
        client.connect((dst_ip, port))
        block = bytes(range(256)) * 256
        left = nbytes
        while left > 0:
            left -= client.send(block[: min(left, len(block))])
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < 8 and (chunk := client.recv(8 - len(reply))):
            reply += chunk
        echoed = struct.unpack("!Q", reply)[0] if len(reply) == 8 else -1
        elapsed = time.monotonic() - start
        thread.join(timeout)
    except OSError as exc:
        raise ImpairmentError(f"TCP transfer failed: {exc}") from exc
    finally:
        client.close()
        server.close()
    if echoed != nbytes or received != [nbytes]:
        raise ImpairmentError(f"TCP transfer lost data: sent {nbytes}, got {echoed}")
    return elapsed
