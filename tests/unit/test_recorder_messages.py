"""Route, nexthop and link messages -> recorder rows (no root: messages are built with
pyroute2's classes or taken from bytes captured from a Linux 6.18 kernel)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from lab.measure.recorder.messages import (
    RTM_DELLINK,
    RTM_DELNEXTHOP,
    RTM_DELROUTE,
    RTM_NEWLINK,
    RTM_NEWNEXTHOP,
    RTM_NEWROUTE,
    Hop,
    LinkMessage,
    Nexthop,
    NexthopMessage,
    NexthopTable,
    RouteMessage,
    dump_request,
    group_members,
    live_gateways,
    parse_link,
    parse_nexthop,
    parse_route,
    sort_addresses,
    split_messages,
)
from lab.measure.recorder.tracker import FibTracker, rows_of

VIP = "192.0.2.53/32"
WATCHED = frozenset({VIP})

# Captured: `ip nexthop add id 20 via 10.0.0.2 dev d0; ... id 21 via 10.1.0.2 dev d1;
# ip nexthop add id 22 group 20/21; ip route add 192.0.2.53/32 nhid 22 proto bgp metric 20`,
# answers to RTM_GETNEXTHOP / RTM_GETROUTE dumps (nexthop_compat_mode 1).
CAPTURED_NH20 = bytes.fromhex(
    "300000006800020007000000d067000002fd00000000000008000100140000000800050003000000"
    "080006000a000002")
CAPTURED_GROUP22 = bytes.fromhex(
    "440000006800020007000000d0670000000000000000000008000100160000000600030000000000"
    "140002001400000000000000150000000000000008000e0000000080")
CAPTURED_ROUTE = bytes.fromhex(
    "600000001800020007000000d067000002200000feba00010000000008000f00fe00000008000100"
    "c0000235080006001400000008001e0016000000240009001000000003000000080005000a000002"
    "1000000002000000080005000a010002")


def route_msg(dst: str = "192.0.2.53", dst_len: int = 32, *, kind: int = RTM_NEWROUTE,
              gateway: str | None = None, multipath: list[str] | None = None,
              nhid: int | None = None, table: int = 254, proto: int = 186,
              metric: int = 20, oif: int = 2, rtm_flags: int = 0, seq: int = 0,
              pid: int = 0, family: int = socket.AF_INET) -> bytes:
    msg: Any = RouteMessage()
    msg["header"].update(type=kind, flags=0, sequence_number=seq, pid=pid)
    msg.update(family=family, dst_len=dst_len, table=min(table, 252), proto=proto,
               type=1, scope=0, flags=rtm_flags)
    attrs: list[Any] = [["RTA_TABLE", table], ["RTA_DST", dst], ["RTA_PRIORITY", metric]]
    if gateway is not None:
        attrs += [["RTA_GATEWAY", gateway], ["RTA_OIF", oif]]
    if multipath is not None:
        attrs.append(["RTA_MULTIPATH", [{"oif": oif + i, "attrs": [["RTA_GATEWAY", g]]}
                                        for i, g in enumerate(multipath)]])
    if nhid is not None:
        attrs.append(["RTA_NH_ID", nhid])
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def nexthop_msg(nhid: int, *, gateway: str | None = None, group: list[int] | None = None,
                oif: int | None = 2, kind: int = RTM_NEWNEXTHOP) -> bytes:
    msg: Any = NexthopMessage()
    msg["header"].update(type=kind, flags=0, sequence_number=0, pid=0)
    msg.update(family=socket.AF_INET if group is None else socket.AF_UNSPEC)
    attrs: list[Any] = [["NHA_ID", nhid]]
    if group is not None:
        attrs.append(["NHA_GROUP", b"".join(struct.pack("=IBBH", m, 0, 0, 0) for m in group)])
    else:
        attrs += [["NHA_OIF", oif], ["NHA_GATEWAY", gateway]]
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


def link_msg(index: int, flags: int, kind: int = RTM_NEWLINK) -> bytes:
    msg: Any = LinkMessage()
    msg["header"].update(type=kind, flags=0, sequence_number=0, pid=0)
    msg.update(family=0, index=index, flags=flags, change=0xFFFFFFFF)
    msg["attrs"] = [["IFLA_IFNAME", f"eth{index}"]]
    msg.encode()
    return bytes(msg.data)


UP_RUNNING = 0x1 | 0x40 | 0x10000


def replay(*datagrams: bytes, compat: bool = True) -> list[dict[str, Any]]:
    return rows_of("r1", [VIP], ((i * 1000, d) for i, d in enumerate(datagrams)), compat)


def brief(rows: list[dict[str, Any]]) -> list[tuple[str, list[str], str | None]]:
    return [(r["action"], r["nexthops"], r.get("cause")) for r in rows]


# -- parsing ---------------------------------------------------------------------------------
def test_single_gateway_route() -> None:
    change = parse_route(route_msg(gateway="10.0.0.2"), WATCHED)
    assert change is not None
    assert (change.prefix, change.hops, change.proto, change.metric, change.deleted) == (
        VIP, (Hop("10.0.0.2", 2),), "bgp", 20, False)
    assert change.route_type == "unicast"


def test_multipath_route_sorted_numerically() -> None:
    change = parse_route(route_msg(multipath=["10.0.0.10", "10.0.0.9", "10.0.0.10"]), WATCHED)
    assert change is not None and change.hops is not None
    assert live_gateways(change.hops) == ("10.0.0.9", "10.0.0.10")


def test_nexthop_id_only_route_needs_the_table() -> None:
    change = parse_route(route_msg(nhid=12), WATCHED)
    assert change is not None
    assert change.hops is None and change.nhid == 12


@pytest.mark.parametrize("kwargs", [
    {"dst": "192.0.2.54"}, {"dst_len": 31, "dst": "192.0.2.52"}, {"table": 255},
    {"table": 1000},
])
def test_other_routes_are_ignored(kwargs: dict[str, Any]) -> None:
    assert parse_route(route_msg(gateway="10.0.0.2", **kwargs), WATCHED) is None


def test_delete_and_table_above_255() -> None:
    change = parse_route(route_msg(kind=RTM_DELROUTE, gateway="10.0.0.2"), WATCHED)
    assert change is not None and change.deleted
    assert parse_route(route_msg(gateway="10.0.0.2", table=1000),
                       frozenset({VIP})) is None


def test_captured_route_with_nexthop_object_and_expanded_paths() -> None:
    change = parse_route(CAPTURED_ROUTE, WATCHED)
    assert change is not None and change.hops is not None
    assert change.nhid == 22 and change.proto == "bgp" and change.metric == 20
    assert change.hops == (Hop("10.0.0.2", 3), Hop("10.1.0.2", 2))


def test_captured_nexthops() -> None:
    deleted, nh20 = parse_nexthop(CAPTURED_NH20)
    assert not deleted and nh20 == Nexthop(20, "10.0.0.2", oif=3)
    _, group = parse_nexthop(CAPTURED_GROUP22)
    assert group.nhid == 22 and group.members == (20, 21) and group.gateway is None


def test_built_nexthop_messages_round_trip() -> None:
    deleted, nexthop = parse_nexthop(nexthop_msg(7, group=[3, 4, 5], kind=RTM_DELNEXTHOP))
    assert deleted and nexthop.members == (3, 4, 5)
    assert group_members(None) == ()


def test_link_messages() -> None:
    assert parse_link(link_msg(4, UP_RUNNING)) == (4, True, True)
    assert parse_link(link_msg(4, 0x1)) == (4, True, False)
    assert parse_link(link_msg(4, UP_RUNNING, RTM_DELLINK)) == (4, False, False)


def test_split_messages_and_dump_request() -> None:
    data = CAPTURED_NH20 + CAPTURED_GROUP22 + CAPTURED_ROUTE
    assert [(k, s) for k, s, _, _ in split_messages(data)] == [(104, 7), (104, 7), (24, 7)]
    request = dump_request(26, 5)
    kind, seq, _, message = next(split_messages(request))
    assert (kind, seq, len(message)) == (26, 5, 28)
    assert list(split_messages(b"\x00" * 20)) == []


def test_sort_addresses_mixed_families() -> None:
    assert sort_addresses(["fe80::1", "10.0.0.10", "10.0.0.9"]) == (
        "10.0.0.9", "10.0.0.10", "fe80::1")


# -- nexthop table --------------------------------------------------------------------------
def test_nexthop_table_groups_and_deletions() -> None:
    table = NexthopTable()
    for nexthop in (Nexthop(10, "10.0.0.3", oif=2), Nexthop(11, "10.0.0.2", oif=3),
                    Nexthop(12, members=(10, 11))):
        table.update(False, nexthop)
    assert table.resolve(12) == (Hop("10.0.0.3", 2), Hop("10.0.0.2", 3))
    assert table.users_of(10) == {10, 12}
    table.update(True, Nexthop(10))
    assert table.resolve(12) == (Hop("10.0.0.2", 3),)
    assert table.flush_device(3) == {11, 12}
    assert 12 not in table and table.resolve(12) is None  # emptied group is deleted


# -- tracker ----------------------------------------------------------------------------------
def test_add_replace_multipath_delete() -> None:
    rows = replay(route_msg(gateway="10.0.0.2"), route_msg(multipath=["10.0.0.3", "10.0.0.2"]),
                  route_msg(gateway="10.9.9.9", dst="192.0.2.54"),
                  route_msg(kind=RTM_DELROUTE, multipath=["10.0.0.3", "10.0.0.2"]))
    assert brief(rows) == [("add", ["10.0.0.2"], None),
                           ("add", ["10.0.0.2", "10.0.0.3"], None),
                           ("del", ["10.0.0.2", "10.0.0.3"], None)]
    assert [r["t_ns"] for r in rows] == [0, 1000, 3000]
    assert rows[0] == {"t_ns": 0, "router": "r1", "prefix": VIP, "action": "add",
                       "nexthops": ["10.0.0.2"], "proto": "bgp", "type": "unicast",
                       "metric": 20, "nhid": None}


def test_route_by_nexthop_id_resolves_group_members() -> None:
    rows = replay(nexthop_msg(10, gateway="10.0.0.2"), nexthop_msg(11, gateway="10.0.0.3"),
                  nexthop_msg(12, group=[10, 11]), route_msg(nhid=12), compat=False)
    assert brief(rows) == [("add", ["10.0.0.2", "10.0.0.3"], None)]
    assert rows[0]["nhid"] == 12


def test_nexthop_replace_without_compat_mode_changes_routes() -> None:
    setup = (nexthop_msg(10, gateway="10.0.0.2"), nexthop_msg(11, gateway="10.0.0.3"),
             nexthop_msg(12, group=[10, 11]), route_msg(nhid=12))
    rows = replay(*setup, nexthop_msg(12, group=[10]), nexthop_msg(12, group=[10]),
                  compat=False)
    assert brief(rows)[1:] == [("add", ["10.0.0.2"], "nexthop")]  # once: no change, no row
    # compat mode: the kernel re-announces the route itself, the tracker writes nothing
    assert brief(replay(*setup, nexthop_msg(12, group=[10]), compat=True))[1:] == []


@pytest.mark.parametrize("compat", [True, False])
def test_nexthop_deletions_remove_paths_then_route(compat: bool) -> None:
    rows = replay(nexthop_msg(10, gateway="10.0.0.2"), nexthop_msg(11, gateway="10.0.0.3"),
                  nexthop_msg(12, group=[10, 11]), route_msg(nhid=12),
                  nexthop_msg(10, kind=RTM_DELNEXTHOP, gateway="10.0.0.2"),
                  nexthop_msg(12, group=[11]),
                  nexthop_msg(11, kind=RTM_DELNEXTHOP, gateway="10.0.0.3"),
                  nexthop_msg(12, kind=RTM_DELNEXTHOP, group=[11]), compat=compat)
    assert brief(rows) == [("add", ["10.0.0.2", "10.0.0.3"], None),
                           ("add", ["10.0.0.3"], "nexthop"),
                           ("del", ["10.0.0.3"], "nexthop")]


def test_link_down_flushes_nexthop_objects_and_plain_paths() -> None:
    rows = replay(nexthop_msg(10, gateway="10.0.0.2", oif=2),
                  nexthop_msg(11, gateway="10.1.0.2", oif=3),
                  nexthop_msg(12, group=[10, 11]), route_msg(nhid=12),
                  route_msg(dst="192.0.2.53", multipath=["10.0.0.9", "10.1.0.9"], oif=2,
                            metric=30),
                  link_msg(2, 0),                 # d0 administratively down
                  link_msg(3, 0x1),               # d1 loses its carrier
                  link_msg(2, UP_RUNNING))        # d0 up again
    assert brief(rows) == [
        ("add", ["10.0.0.2", "10.1.0.2"], None),
        ("add", ["10.0.0.9", "10.1.0.9"], None),
        ("add", ["10.1.0.2"], "link-down"),       # nexthop object on d0 deleted
        ("add", ["10.1.0.9"], "link-down"),       # plain route: d0 path dead
        ("del", ["10.1.0.2"], "link-down"),       # d1 carrier: group emptied, route gone
        ("add", ["10.0.0.9", "10.1.0.9"], "link-up"),  # plain route: dead path back
    ]
    assert [r["metric"] for r in rows] == [20, 30, 20, 30, 20, 30]


def test_link_down_flushes_single_path_route() -> None:
    rows = replay(route_msg(gateway="10.0.0.2", oif=5), link_msg(5, 0),
                  link_msg(5, UP_RUNNING))
    assert brief(rows) == [("add", ["10.0.0.2"], None), ("del", ["10.0.0.2"], "link-down")]


def test_dump_replies_are_present_rows_and_resync_deletes_missing() -> None:
    rows: list[dict[str, Any]] = []
    tracker = FibTracker("r1", [VIP], True, rows.append)
    reply = route_msg(gateway="10.0.0.2", seq=9, pid=77)
    done = struct.pack("=IHHIIi", 20, 3, 2, 9, 77, 0)
    assert tracker.handle(reply + done, 5, port=77, dump_seq=9) is True
    assert not tracker.handle(route_msg(gateway="10.0.0.2", seq=9, pid=78), 6, 77, 9)
    tracker.seen_in_dump = set()
    tracker.forget_missing(7)
    assert brief(rows) == [("present", ["10.0.0.2"], None), ("add", ["10.0.0.2"], None),
                           ("del", ["10.0.0.2"], "resync")]


def test_prefilter_skips_other_prefixes_without_decoding(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import lab.measure.recorder.tracker as tracker_module

    calls: list[bytes] = []
    real = parse_route

    def counting(message: bytes, prefixes: frozenset[str]) -> Any:
        calls.append(message)
        return real(message, prefixes)

    monkeypatch.setattr(tracker_module, "parse_route", counting)
    rows = replay(route_msg(gateway="10.0.0.2", dst="10.1.2.3"),
                  route_msg(gateway="10.0.0.2"))
    assert len(calls) == 1 and len(rows) == 1


def test_default_route_can_be_watched() -> None:
    rows = rows_of("r1", ["0.0.0.0/0"], [(1, route_msg(dst="0.0.0.0", dst_len=0,
                                                       gateway="10.0.0.1"))])
    assert brief(rows) == [("add", ["10.0.0.1"], None)]


def test_ipv6_routes_are_recorded_with_their_link_local_next_hops() -> None:
    watched = frozenset({"2001:db8:53::53/128"})
    message = route_msg("2001:db8:53::53", 128, family=socket.AF_INET6,
                        multipath=["fe80::2", "fe80::1"])
    change = parse_route(message, watched)
    assert change is not None and change.prefix == "2001:db8:53::53/128"
    assert live_gateways(change.hops or ()) == ("fe80::1", "fe80::2")
    assert parse_route(route_msg("2001:db8:54::53", 128, family=socket.AF_INET6,
                                 gateway="fe80::1"), watched) is None


def test_the_tracker_watches_ipv6_prefixes() -> None:
    vip6 = "2001:db8:53::53/128"
    added = route_msg("2001:db8:53::53", 128, family=socket.AF_INET6, gateway="fe80::1")
    removed = route_msg("2001:db8:53::53", 128, family=socket.AF_INET6, kind=RTM_DELROUTE)
    rows = rows_of("r1", [vip6, VIP], [(0, added), (1000, removed)], True)
    assert [(r["prefix"], r["action"], r["nexthops"]) for r in rows] == [
        (vip6, "add", ["fe80::1"]), (vip6, "del", [])]
