"""Resilient next-hop groups (``defaults.ecmp_groups``): the topology setting, the plan, and the
``ip`` commands that keep a router's groups in step with FRR's routes."""

from __future__ import annotations

from typing import Any

from lab.apps.ecmpgroups.groups import (
    FIRST_GROUP_ID,
    FIRST_NEXTHOP_ID,
    TABLE,
    GroupSettings,
    RouterGroups,
)
from lab.plan.model import ResilientGroups, Role
from lab.plan.planner import build_plan
from tests.unit.test_validation import issues_of, mini, validate_data

NH, GROUP = FIRST_NEXTHOP_ID, FIRST_GROUP_ID
VIP, VIP6 = "192.0.2.53/32", "2001:db8:53::53/128"


def _groups() -> RouterGroups:
    return RouterGroups((VIP, VIP6), GroupSettings(64, 1.0, 0.0),
                        {2: "eth-a", 3: "eth-b", 4: "eth-c"})


def _row(action: str, prefix: str = VIP, **extra: Any) -> dict[str, Any]:
    return {"prefix": prefix, "action": action, "metric": 20, **extra}


def test_a_route_gets_a_resilient_group_in_the_table_and_keeps_it_when_a_hop_goes() -> None:
    groups = _groups()
    assert groups.setup() == [
        f"rule add to {VIP} lookup {TABLE} pref 4242",
        f"-6 rule add to {VIP6} lookup {TABLE} pref 4242"]
    hops = [("10.0.0.1", 2), ("10.0.0.3", 3), ("10.0.0.5", 4)]
    arguments = "type resilient buckets 64 idle_timer 1 unbalanced_timer 0"
    assert groups.update(_row("present"), hops) == [
        f"nexthop replace id {NH} via 10.0.0.1 dev eth-a",
        f"nexthop replace id {NH + 1} via 10.0.0.3 dev eth-b",
        f"nexthop replace id {NH + 2} via 10.0.0.5 dev eth-c",
        f"nexthop replace id {GROUP} group {NH}/{NH + 1}/{NH + 2} {arguments}",
        f"route replace {VIP} nhid {GROUP} table {TABLE}"]
    assert groups.update(_row("add"), hops) == []  # nothing changed
    # a hop goes: the same group loses that member (its buckets go to the others)
    assert groups.update(_row("add"), [hops[0], hops[2]]) == [
        f"nexthop replace id {GROUP} group {NH}/{NH + 2} {arguments}"]
    # it comes back: the same nexthop object, the group grows again
    assert groups.update(_row("add"), hops) == [
        f"nexthop replace id {GROUP} group {NH}/{NH + 1}/{NH + 2} {arguments}"]
    assert groups.update(_row("del"), []) == [f"route del {VIP} table {TABLE}"]
    assert groups.update(_row("del"), []) == []


def test_other_prefixes_device_routes_and_dead_paths_are_left_alone() -> None:
    groups = _groups()
    assert groups.update(_row("add", "198.51.100.0/24"), [("10.0.0.1", 2)]) == []
    assert groups.update(_row("add"), [(None, 2), ("10.0.0.9", 99)]) == []  # no usable path
    commands = groups.update(_row("add", VIP6), [("fe80::1", 2)])
    assert commands[-1] == f"-6 route replace {VIP6} nhid {GROUP + 1} table {TABLE}"


def test_after_the_kernel_changed_nexthops_everything_is_set_again() -> None:
    groups = _groups()
    hops = [("10.0.0.1", 2), ("10.0.0.3", 3)]
    groups.update(_row("present"), hops)
    groups.forget()
    commands = groups.update(_row("add", cause="link-up"), hops)
    assert len(commands) == 4 and commands[-1].startswith(f"route replace {VIP}")


def test_the_topology_asks_for_resilient_groups_per_role() -> None:
    data = mini()
    data["defaults"] = {"ecmp_groups": {"spine": {"buckets": 256, "idle_timer": "2s"},
                                        "leaf": {"type": "hash-threshold"}}}
    plan = build_plan(validate_data(data))
    spines = plan.nodes_with_role(Role.SPINE)
    assert spines and all(n.resilient == ResilientGroups(256, 2.0, 0.0) for n in spines)
    assert all(n.resilient is None for n in plan.nodes if n.role != Role.SPINE)
    assert "resilient" in plan.to_dict()["nodes"][
        [n.name for n in plan.nodes].index(spines[0].name)]
    assert all("resilient" not in n for n in build_plan(validate_data(mini())).to_dict()[
        "nodes"])


def test_bad_group_settings_are_reported_with_their_paths() -> None:
    data = mini()
    data["defaults"] = {"ecmp_groups": {"spine": {"buckets": 1, "type": "magic"},
                                        "pod": {}}}
    paths = {issue.path for issue in issues_of(data)}
    assert {"defaults.ecmp_groups.spine.buckets", "defaults.ecmp_groups.spine.type"} <= paths
    assert any(p.startswith("defaults.ecmp_groups") and "pod" in p for p in paths), paths
