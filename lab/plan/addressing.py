"""Address allocation from the topology's pools: aligned blocks handed out in order."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network


class PoolExhaustedError(ValueError):
    pass


class PoolAllocator:
    """Hands out aligned blocks from one pool, in order (so allocation is deterministic)."""

    def __init__(self, name: str, pool: IPv4Network) -> None:
        self.name = name
        self.pool = pool
        self.next = int(pool.network_address)

    def block(self, prefixlen: int) -> IPv4Network:
        size = 2 ** (32 - prefixlen)
        start = -(-self.next // size) * size  # round up to the block's alignment
        if start + size > int(self.pool.broadcast_address) + 1:
            raise PoolExhaustedError(f"pool {self.name} {self.pool} is exhausted")
        self.next = start + size
        return IPv4Network((start, prefixlen))

    def host(self) -> IPv4Address:
        return self.block(32).network_address

    def p2p(self) -> tuple[IPv4Interface, IPv4Interface]:
        """A /31 (RFC 3021): the lower address for the first end, the upper for the second."""
        net = self.block(31)
        return IPv4Interface((net[0], 31)), IPv4Interface((net[1], 31))
