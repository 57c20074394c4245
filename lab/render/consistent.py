"""Consistent endpoint selection for the service proxy (`load_balancing: consistent`).

The proxy hashes a new flow's addresses and ports with nftables' ``jhash`` (one seed for the
whole lab) to one of ``TABLE_SIZE`` slots, and each slot belongs to one endpoint: the one with
the highest rendezvous score for that slot (highest random weight hashing). So:
- every node with the same endpoints builds the same table: a flow that the fabric moves to
  another node (traffic policy Cluster) reaches the same pod;
- an endpoint that leaves takes only its own slots with it and one that arrives takes slots
  only from the others, evenly: no other flow changes pod. Maglev's table (Cilium's
  ``loadBalancer.algorithm: maglev``, IPVS ``mh``) balances a little better but moves a few
  other slots too.
Only new flows are hashed; conntrack keeps established ones where they are, as with ``random``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

TABLE_SIZE = 1021  # a prime, like Maglev's tables; plenty of slots for 64 pods per service
HASH_SEED = 0x616E796C  # jhash's seed: the same on every node


@lru_cache(maxsize=4096)
def _scores(key: str, size: int) -> tuple[int, ...]:
    """The endpoint's rendezvous score for every slot (stable across runs and hosts)."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return tuple(int.from_bytes(hashlib.blake2b(slot.to_bytes(4, "big"), digest_size=8,
                                                key=digest).digest(), "big")
                 for slot in range(size))


def slot_owners(keys: Sequence[str], size: int = TABLE_SIZE) -> list[int]:
    """For each slot, the index in ``keys`` of the endpoint that owns it (empty without any).

    An endpoint's key must name it the same way on every node (its address)."""
    if not keys:
        return []
    scores = [_scores(key, size) for key in keys]
    return [max(range(len(keys)), key=lambda i: (scores[i][slot], keys[i]))
            for slot in range(size)]
