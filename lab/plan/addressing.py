"""Address allocation from the topology's pools: aligned blocks handed out in order."""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_interface,
)
from typing import Generic, TypeVar

Network = TypeVar("Network", IPv4Network, IPv6Network)


class PoolExhaustedError(ValueError):
    pass


class PoolAllocator(Generic[Network]):
    """Hands out aligned blocks from one pool (IPv4 or IPv6), in order, so allocation is
    deterministic."""

    def __init__(self, name: str, pool: Network) -> None:
        self.name = name
        self.pool: Network = pool
        self.next = int(pool.network_address)

    def block(self, prefixlen: int) -> Network:
        size = 2 ** (self.pool.max_prefixlen - prefixlen)
        start = -(-self.next // size) * size  # round up to the block's alignment
        if start + size > int(self.pool.broadcast_address) + 1:
            raise PoolExhaustedError(f"pool {self.name} {self.pool} is exhausted")
        self.next = start + size
        return type(self.pool)((start, prefixlen))

    def host(self) -> IPv4Address | IPv6Address:
        """A one-address block (/32, /128)."""
        return self.block(self.pool.max_prefixlen).network_address

    def p2p(self) -> tuple[IPv4Interface | IPv6Interface, IPv4Interface | IPv6Interface]:
        """A point-to-point pair, /31 (RFC 3021) or /127 (RFC 6164): the lower address for the
        first end, the upper for the second."""
        net = self.block(self.pool.max_prefixlen - 1)
        return (ip_interface((net[0], net.prefixlen)), ip_interface((net[1], net.prefixlen)))
