"""`load_balancing: consistent`: the slot table every node builds alike, and its ruleset."""

from __future__ import annotations

import re
from collections import Counter
from ipaddress import IPv4Address

import pytest

from lab.apps.agent.spec import AgentPod, AgentService
from lab.apps.agent.state import desired_state, service_rules
from lab.render.consistent import TABLE_SIZE, slot_owners
from lab.render.serviceproxy import Endpoint, ServiceRules, render_service_rules

KEYS = [f"10.64.{i}.2" for i in range(8)]


def owners_by_key(keys: list[str]) -> list[str]:
    return [keys[i] for i in slot_owners(keys)]


def test_every_slot_has_an_owner_and_the_load_is_even() -> None:
    owners = owners_by_key(KEYS)
    assert len(owners) == TABLE_SIZE
    share = TABLE_SIZE / len(KEYS)
    assert all(0.75 * share <= n <= 1.25 * share for n in Counter(owners).values())
    assert slot_owners([]) == []


def test_the_table_does_not_depend_on_the_order_of_the_endpoints() -> None:
    assert owners_by_key(KEYS) == owners_by_key(list(reversed(KEYS)))


def test_an_endpoint_that_leaves_takes_only_its_own_slots() -> None:
    before = owners_by_key(KEYS)
    for gone in KEYS:
        after = owners_by_key([k for k in KEYS if k != gone])
        changed = {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
        assert changed == {i for i, owner in enumerate(before) if owner == gone}


def test_an_endpoint_that_arrives_takes_slots_only_for_itself() -> None:
    before = owners_by_key(KEYS)
    after = owners_by_key([*KEYS, "10.64.9.2"])
    assert all(a == b or b == "10.64.9.2" for a, b in zip(before, after, strict=True))
    assert Counter(after)["10.64.9.2"] > 0


def slot_targets(ruleset: str, chain: str) -> list[str]:
    """Slot -> DNAT target, read back from a rendered ruleset."""
    body = re.search(rf"chain {chain} {{\n\t\t(.*)\n", ruleset)
    assert body is not None, ruleset
    hashed = re.fullmatch(r"jhash ip saddr \. (\w+) sport \. ip daddr \. \w+ dport mod (\d+) "
                          r"seed (0x[0-9a-f]+) vmap \{ (.*) \}", body.group(1))
    assert hashed is not None, body.group(1)
    assert int(hashed.group(2)) == TABLE_SIZE
    targets = dict(re.findall(r"chain (ep-\S+) \{\n\t\tmeta l4proto \w+ counter "
                              r"(?:meta mark set \S+ )?dnat ip to (\S+)\n", ruleset))
    entries = [e.split(" : jump ") for e in hashed.group(4).split(", ")]
    assert [int(slot) for slot, _ in entries] == list(range(TABLE_SIZE))
    return [targets[name] for _, name in entries]


def test_every_node_of_a_cluster_service_maps_a_slot_to_the_same_pod() -> None:
    """Cluster policy: each node lists its own pods first, yet the tables agree."""
    service = AgentService("dns", IPv4Address("192.0.2.53"), "udp", 53, "Cluster",
                           load_balancing="consistent")
    tables = []
    for node in range(3):
        pods = [AgentPod(f"n{n}-p{p}", IPv4Address(f"10.64.{n}.{p + 2}"), 8080, n == node)
                for n in range(3) for p in range(2)]
        state = desired_state([service], pods, {p.name: True for p in pods})
        ruleset = render_service_rules(f"n{node}", service_rules([service], state.endpoints))
        tables.append(slot_targets(ruleset, "svc-dns"))
    assert tables[0] == tables[1] == tables[2]
    assert len(set(tables[0])) == 6


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_random_stays_kube_proxys_numgen(protocol: str) -> None:
    endpoints = (Endpoint(IPv4Address("10.64.0.2"), True),)
    rules = ServiceRules("web", IPv4Address("192.0.2.80"), protocol, 80, endpoints)
    text = render_service_rules("n1", [rules])
    assert "numgen random mod 1 vmap" in text and "jhash" not in text
    consistent = ServiceRules("web", IPv4Address("192.0.2.80"), protocol, 80, endpoints,
                              load_balancing="consistent")
    assert set(slot_targets(render_service_rules("n1", [consistent]), "svc-web")) \
        == {"10.64.0.2:80"}
