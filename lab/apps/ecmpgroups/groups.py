"""Resilient next-hop groups that follow the routes FRR installs (pure logic, no sockets).

FRR installs a VIP learned over several equal-cost paths as a kernel multipath route
(hash-threshold: removing one next hop shifts the others' shares of the hash space, so flows
of healthy next hops move). A router whose role asks for resilient groups
(``defaults.ecmp_groups``) gets a second copy of each VIP route in a table of its own
(``TABLE``), through a resilient group whose members are the main route's gateways, and a
rule (``RULE_PREFERENCE``) that looks the VIPs up there first. When FRR changes the main route
the group's members are replaced: the kernel keeps every bucket of a remaining member where it
was, hands the removed member's buckets to the others, and gives a new member only buckets
that have been idle for the idle timer. When FRR removes the route, the copy goes and lookups
fall through to the main table.

``RouterGroups.update`` turns one recorder row (lab.measure.recorder.tracker) into lines for
``ip -batch``; ``RouterGroups.setup`` gives the rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TABLE = 4242
RULE_PREFERENCE = 4242
# far above the ids zebra counts up from, below the range of protocols' own groups (1 << 28)
FIRST_NEXTHOP_ID = 200_000_000
FIRST_GROUP_ID = 201_000_000


@dataclass(frozen=True)
class GroupSettings:
    buckets: int
    idle_timer_s: float
    unbalanced_timer_s: float

    def arguments(self) -> str:
        return (f"type resilient buckets {self.buckets} idle_timer {self.idle_timer_s:g} "
                f"unbalanced_timer {self.unbalanced_timer_s:g}")


@dataclass
class RouterGroups:
    """The groups of one router: ``interfaces`` maps interface indexes to names."""

    prefixes: Sequence[str]
    settings: GroupSettings
    interfaces: Mapping[int, str]
    _nexthops: dict[tuple[str, str], int] = field(default_factory=dict)
    _members: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def setup(self) -> list[str]:
        """The rules that send lookups of the VIPs to the groups' table first."""
        return [f"{_family(p)}rule add to {p} lookup {TABLE} pref {RULE_PREFERENCE}"
                for p in self.prefixes]

    def update(self, row: Mapping[str, Any], hops: Sequence[tuple[str | None, int | None]]
               ) -> list[str]:
        """The ``ip -batch`` lines for one route row (``add``/``present``/``del`` of a
        watched prefix) whose live paths are ``hops`` (gateway, output interface index)."""
        prefix = str(row["prefix"])
        if prefix not in self.prefixes:
            return []
        paths = sorted({(gw, self.interfaces[oif]) for gw, oif in hops
                        if gw is not None and oif is not None and oif in self.interfaces})
        if row["action"] == "del" or not paths:
            if self._members.pop(prefix, None) is None:
                return []
            return [f"{_family(prefix)}route del {prefix} table {TABLE}"]
        batch = []
        members = []
        for gateway, ifname in paths:
            key = (gateway, ifname)
            if key not in self._nexthops:
                self._nexthops[key] = FIRST_NEXTHOP_ID + len(self._nexthops)
                batch.append(f"nexthop replace id {self._nexthops[key]} via {gateway} "
                                f"dev {ifname}")
            members.append(self._nexthops[key])
        group = FIRST_GROUP_ID + list(self.prefixes).index(prefix)
        if self._members.get(prefix) == tuple(members):
            return batch
        batch.append(f"nexthop replace id {group} group "
                        f"{'/'.join(str(m) for m in members)} {self.settings.arguments()}")
        if prefix not in self._members:
            batch.append(f"{_family(prefix)}route replace {prefix} nhid {group} "
                            f"table {TABLE}")
        self._members[prefix] = tuple(members)
        return batch

    def forget(self) -> None:
        """The kernel changed nexthop objects itself (an interface went down: its nexthops
        are deleted, and groups left empty with their routes): every object is set again at
        the next update."""
        self._nexthops.clear()
        self._members.clear()


def _family(prefix: str) -> str:
    return "-6 " if ipaddress.ip_network(prefix).version == 6 else ""


__all__ = [
    "FIRST_GROUP_ID",
    "FIRST_NEXTHOP_ID",
    "RULE_PREFERENCE",
    "TABLE",
    "GroupSettings",
    "RouterGroups",
]
