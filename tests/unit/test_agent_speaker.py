"""Reading what a speaker originates: gobgp's RIB JSON and FRR's running configuration."""

from __future__ import annotations

import json
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from lab.apps.agent.speaker import FrrSpeaker, GobgpSpeaker, parse_frr_networks, parse_gobgp_rib
from lab.errors import CommandError

# As printed by gobgp 3.10 (`gobgp global rib -a ipv4 -j`): a local path and a learned one.
GOBGP_RIB = json.dumps({
    "192.0.2.53/32": [{"nlri": {"prefix": "192.0.2.53/32"}, "age": 1795739122, "best": True,
                       "attrs": [{"type": 1, "value": 2}, {"type": 3, "nexthop": "0.0.0.0"}],
                       "stale": False}],
    "10.64.0.0/24": [{"nlri": {"prefix": "10.64.0.0/24"}, "best": True, "attrs": []}],
    "203.0.113.0/24": [{"nlri": {"prefix": "203.0.113.0/24"}, "best": True, "attrs": [],
                        "source-id": "10.0.0.0", "neighbor-ip": "10.0.0.0"}],
})

FRR_RUNNING = """Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults datacenter
hostname n1
!
router bgp 65101
 bgp router-id 10.0.0.1
 neighbor 10.0.0.0 remote-as 65001
 !
 address-family ipv4 unicast
  network 10.64.0.0/24
  network 192.0.2.53/32
  neighbor 10.0.0.0 activate
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8::/64
 exit-address-family
exit
!
router bgp 65101 vrf blue
 address-family ipv4 unicast
  network 198.51.100.0/24
 exit-address-family
exit
!
end
"""


def test_gobgp_rib_lists_only_local_paths() -> None:
    assert parse_gobgp_rib(GOBGP_RIB) == {IPv4Network("192.0.2.53/32"),
                                          IPv4Network("10.64.0.0/24")}
    assert parse_gobgp_rib("{}") == frozenset()
    assert parse_gobgp_rib("") == frozenset()
    with pytest.raises(ValueError):
        parse_gobgp_rib("[]")


def test_frr_networks_of_the_default_vrf_both_families() -> None:
    assert parse_frr_networks(FRR_RUNNING, 65101) == {IPv4Network("10.64.0.0/24"),
                                                      IPv4Network("192.0.2.53/32"),
                                                      IPv6Network("2001:db8::/64")}
    assert parse_frr_networks(FRR_RUNNING, 65102) == frozenset()


def test_an_unreachable_gobgpd_is_a_command_error(tmp_path: Path) -> None:
    fake = tmp_path / "gobgp"
    fake.write_text("#!/bin/sh\necho 'failed to connect' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(CommandError, match="failed to connect"):
        GobgpSpeaker("127.0.0.1", 50051, cli=str(fake)).announced()


def test_frr_commands(tmp_path: Path) -> None:
    log = tmp_path / "argv"
    fake = tmp_path / "vtysh"
    fake.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {log}\necho >> {log}\n'
                    "case \"$*\" in *'no network'*) echo \"% Can't find static route "
                    "specified\"; exit 1;; esac\n")
    fake.chmod(0o755)
    speaker = FrrSpeaker(tmp_path, 65101, vtysh=str(fake))
    speaker.announce(IPv4Network("192.0.2.53/32"))
    speaker.withdraw(IPv4Network("192.0.2.53/32"))  # already gone: not an error
    lines = log.read_text().splitlines()
    assert lines[0] == (f"--vty_socket|{tmp_path}|-c|configure terminal|-c|router bgp 65101|"
                        "-c|address-family ipv4 unicast|-c|network 192.0.2.53/32|")
    assert lines[1].endswith("-c|no network 192.0.2.53/32|")
