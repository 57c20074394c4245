"""Dual-stack labs: the topology's IPv6 fields, the plan's IPv6 addresses and sessions, and the
configurations rendered from them (FRR, GoBGP, the nftables service proxy)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from lab import pipeline
from lab.plan.model import IPV4, IPV6, LinkKind, Role
from lab.plan.planner import build_plan
from lab.render.configs import gobgp_config, render_frr_conf, render_service_proxy
from tests.unit.test_validation import issues_of, mini, validate_data

REPO = Path(__file__).resolve().parents[2]
DUAL_MINI = REPO / "topologies" / "two-sites-dual.yaml"
DUAL_REFERENCE = REPO / "topologies" / "three-sites-dual.yaml"


def dual(**changes: Any) -> dict[str, Any]:
    data = mini(**changes)
    if "services" not in changes:
        data["services"][0]["vip6"] = "2001:db8:53::53"
    return data


# ------------------------------------------------------------------------------- topology


def test_a_vip6_makes_the_lab_dual_stack() -> None:
    assert validate_data(mini()).families == ("ipv4",)
    assert validate_data(dual()).families == ("ipv4", "ipv6")


def test_an_ipv6_only_service_is_accepted() -> None:
    topo = validate_data(mini(services=[{"name": "dns", "vip6": "2001:db8:53::53",
                                         "port": 53}]))
    assert topo.services[0].vip is None
    assert topo.families == ("ipv4", "ipv6")


def test_a_service_without_any_vip_is_refused() -> None:
    (issue,) = issues_of(mini(services=[{"name": "dns", "port": 53}]))
    assert issue.path == "services[0]"
    assert "needs `vip:`, `vip6:` or both" in issue.message
    assert "vip6: 2001:db8:53::53" in issue.hint


@pytest.mark.parametrize(
    ("vip6", "fragment"),
    [("192.0.2.53", "is an IPv4 address; write it as `vip:`"),
     ("2001:db8::/64", "is a prefix"), ("2001:db8::zz", "is not an IP address"),
     ("ff02::1", "not a unicast address"), ("fe80::1", "not a unicast address"),
     ("2001:db8:ffff::9", "inside the loopbacks pool")])
def test_bad_vip6(vip6: str, fragment: str) -> None:
    data = dual()
    data["services"][0]["vip6"] = vip6
    (issue,) = issues_of(data)
    assert issue.path == "services[0].vip6"
    assert fragment in issue.message


def test_ipv6_pools_are_checked_like_ipv4_ones() -> None:
    issues = issues_of(dual(addressing={"ipv6": {"wan": "10.0.0.0/8",
                                                 "pods": "2001:db8:1::1/64"}}))
    by_path = {issue.path: issue.message for issue in issues}
    assert by_path["addressing.ipv6.wan"] == "'10.0.0.0/8' is not an IPv6 prefix"
    assert "has host bits set; the prefix is '2001:db8:1::/64'" in by_path[
        "addressing.ipv6.pods"]
    (overlap,) = issues_of(dual(addressing={"ipv6": {"fabric": "2001:db8:ffff::/64"}}))
    assert overlap.path == "addressing.ipv6.fabric"
    assert overlap.message.startswith(
        "pool ipv6.fabric (2001:db8:ffff::/64) overlaps pool ipv6.loopbacks")


def test_an_ipv6_pod_pool_too_small_for_the_nodes() -> None:
    (issue,) = issues_of(dual(addressing={"ipv6": {"pods": "2001:db8:4000::/63"}}))
    assert issue.path == "addressing.ipv6.pods"
    assert "needs" in issue.message


def test_ipv6_families_need_an_ipv6_vip() -> None:
    data = mini()
    data["wan_links"][0]["families"] = ["ipv6"]
    data["clients"][0]["families"] = ["ipv4", "ipv6"]
    issues = issues_of(data)
    assert [i.path for i in issues] == ["wan_links[0].families", "clients[0].families"]
    assert all("this lab carries no IPv6" in i.message for i in issues)


def test_a_family_listed_twice_or_unknown() -> None:
    data = dual()
    data["sites"][0]["uplinks"][0]["families"] = ["ipv4", "ipv4"]
    data["clients"][0]["families"] = ["ipx"]
    issues = issues_of(data)
    assert {i.path for i in issues} == {"sites[0].uplinks[0].families",
                                        "clients[0].families[0]"}


# ------------------------------------------------------------------------------- plan


def test_every_link_has_an_ipv6_127_and_a_session_per_family() -> None:
    plan = pipeline.plan(DUAL_MINI)
    assert plan.families == (IPV4, IPV6)
    uplink = plan.link("east--alpha-s1")
    assert uplink.families == (IPV4,) and uplink.a.address6 is None
    for link in plan.links:
        if link is uplink:
            continue
        assert link.families == (IPV4, IPV6)
        assert link.a.address6 is not None and link.b.address6 is not None
        assert link.a.address6.network.prefixlen == 127
        assert link.a.address6.network == link.b.address6.network
    v6 = {s.id for s in plan.sessions if s.family == IPV6}
    v4 = {s.id for s in plan.sessions if s.family == IPV4}
    assert "east--alpha-s1/v6" not in v6 and "east--alpha-s1" in v4
    assert v6 == {f"{i}/v6" for i in v4} - {"east--alpha-s1/v6"}
    for session in plan.sessions:
        assert session.a_address.version == session.b_address.version
        assert (session.a_address.version == 6) == (session.family == IPV6)


def test_nodes_pods_and_clients_get_ipv6() -> None:
    plan = pipeline.plan(DUAL_MINI)
    node = plan.node("alpha-k8s-n1")
    assert node.pod_cidr6 == ipaddress.IPv6Network("2001:db8:4000::/64")
    assert node.pod_gateway6 == ipaddress.IPv6Interface("2001:db8:4000::1/64")
    (pod,) = node.pods
    assert pod.address6 == ipaddress.IPv6Interface("2001:db8:4000::2/64")
    assert pod.gateway6 == ipaddress.IPv6Address("2001:db8:4000::1")
    assert [str(r.prefix) for r in node.routes] == ["0.0.0.0/0", "::/0"]
    client = plan.node("east-c1")
    assert client.families == (IPV4, IPV6)
    assert [str(r.prefix) for r in client.routes] == ["0.0.0.0/0", "::/0"]
    assert plan.node("alpha-s1").loopback6 is not None
    assert plan.pools["ipv6.pods"] == ipaddress.IPv6Network("2001:db8:4000::/40")


def test_an_ipv4_only_client_has_no_ipv6_route() -> None:
    data = dual()
    data["clients"][0]["families"] = ["ipv4"]
    plan = build_plan(validate_data(data))
    client = plan.node("east-c1")
    assert client.families == (IPV4,)
    assert [str(r.prefix) for r in client.routes] == ["0.0.0.0/0"]
    assert client.interfaces[0].address6 is None


def test_ipv4_only_labs_have_no_ipv6_anywhere() -> None:
    plan = build_plan(validate_data(mini()))
    assert plan.families == (IPV4,)
    assert all(s.family == IPV4 for s in plan.sessions)
    assert all(link.a.address6 is None for link in plan.links)
    assert not any(key.startswith("ipv6.") for key in plan.pools)


def test_the_reference_lab_moves_one_clients_ipv6_catchment_by_its_wan_links() -> None:
    plan = pipeline.plan(DUAL_REFERENCE)
    toward = {link.id: link.families for link in plan.links
              if link.kind == LinkKind.WAN and "in-west" in link.id}
    assert toward == {"in-west--ap-south": (IPV4,), "in-west--eu-west": (IPV6,)}
    assert plan.node("in-c1").families == (IPV4, IPV6)


# ------------------------------------------------------------------------------- render


def test_frr_gets_an_ipv6_address_family_with_its_own_prefix_lists() -> None:
    plan = pipeline.plan(DUAL_MINI)
    leaf = render_frr_conf(plan, plan.node("alpha-l1"))
    assert "ipv6 prefix-list NODE-PREFIXES6 seq 5 permit 2001:db8:10::10/128" in leaf
    assert "ipv6 prefix-list NODE-PREFIXES6 seq 15 permit 2001:db8:4000::/64" in leaf
    assert " match ipv6 address prefix-list NODE-PREFIXES6" in leaf
    v6_block = leaf[leaf.index(" address-family ipv6 unicast"):]
    assert "  network 2001:db8:ffff::3/128" in v6_block
    assert "  neighbor 2001:db8:fffe::9 route-map FROM-NODES in" in v6_block
    assert "10.254.0.9 activate" not in v6_block
    transit = render_frr_conf(plan, plan.node("east"))
    assert "ipv6 prefix-list CLIENT-NETS6 seq 5 permit 2001:db8:fffc::/127" in transit
    assert "neighbor 100.64.0.3 description alpha-s1" in transit  # IPv4 only
    assert transit.count("description alpha-s1") == 1


def test_frr_speaker_nodes_originate_their_ipv6_pod_cidr() -> None:
    plan = pipeline.plan(DUAL_MINI)
    node = plan.node("beta-k8s-n1")
    assert node.speaker == "frr"
    text = render_frr_conf(plan, node)
    assert f"  network {node.pod_cidr6}" in text


def test_ipv4_labs_render_no_ipv6_lines() -> None:
    plan = build_plan(validate_data(mini()))
    for node in plan.nodes_with_role(Role.LEAF, Role.SPINE, Role.TRANSIT):
        assert "ipv6" not in render_frr_conf(plan, node)


def test_gobgp_listens_on_its_ipv6_session_address() -> None:
    plan = pipeline.plan(DUAL_MINI)
    node = plan.node("alpha-k8s-n1")
    config = gobgp_config(plan, node)
    (v6,) = [s for s in plan.sessions_of(node.name) if s.family == IPV6]
    assert str(v6.b_address) in config["global"]["config"]["local-address-list"]
    names = [n["afi-safis"][0]["config"]["afi-safi-name"] for n in config["neighbors"]]
    assert names == ["ipv4-unicast", "ipv6-unicast"]


def test_the_service_proxy_dnats_each_family_to_the_pods_own_addresses() -> None:
    plan = pipeline.plan(DUAL_MINI)
    node = plan.node("alpha-k8s-n1")
    (pod,) = node.pods
    text = render_service_proxy(plan, node)
    assert "table inet anylab_svc {" in text
    assert "ip6 daddr 2001:db8:10::10 udp dport 7 counter jump svc6-echo" in text
    assert f"dnat ip6 to [{pod.address6.ip if pod.address6 else ''}]:7" in text
    assert f"dnat ip to {pod.address.ip}:7" in text


def test_uplinks_of_the_dual_reference_lab_and_transits() -> None:
    plan = pipeline.plan(DUAL_REFERENCE)
    uplinks = [link for link in plan.links if link.kind == LinkKind.UPLINK]
    assert uplinks and all(link.families == (IPV4, IPV6) for link in uplinks)


# ------------------------------------------------------------------------------- faults

DUAL_FAULTS = """\
name: fake-dual-faults
description: the faults that act per family, on the dual-stack mini lab
topology: {topology}
probe: {{interval: 1ms, flows: 1, tcp_flows: 0}}
settle: 0s
tail: 0s
steps:
  - {{fault: uplink-shutdown, target: beta, transit: west, family: ipv6, duration: 10ms}}
  - {{fault: site-drain, target: beta, family: ipv6, at: 20ms, duration: 10ms}}
  - {{fault: bgp-session-shutdown, target: beta-s1--beta-l1, at: 40ms, duration: 10ms}}
"""


def test_faults_act_on_the_family_they_are_given(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.backend.fake import FakeBackend
    from lab.run.measurement import NoMeasurement
    from lab.run.runner import RunOptions, run_scenario

    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ANYLAB_EVIDENCE_DIR", str(tmp_path / "evidence"))
    path = tmp_path / "dual.yaml"
    path.write_text(DUAL_FAULTS.format(topology=DUAL_MINI))
    backend = FakeBackend()
    result = run_scenario(RunOptions(path, name="fake", runs_root=tmp_path / "runs"),
                          lambda _m: None, backend=backend, measurement=NoMeasurement)
    assert result.complete
    commands = [" | ".join(e[2]) if isinstance(e[2], list) else str(e[2])
                for e in backend.journal if e[0] == "vtysh"]
    # uplink-shutdown: only the IPv6 session of beta-s1 to west, shut and re-enabled
    assert [c for c in commands if "neighbor 2001:db8:fffd::" in c and "shutdown" in c] and \
        not [c for c in commands if "neighbor 100.64.0." in c and "shutdown" in c]
    # site-drain of IPv6: the IPv6 entry of TO-WAN (20) only, and the IPv6 table re-sent
    assert any("route-map TO-WAN permit 20" in c for c in commands)
    assert not any("route-map TO-WAN permit 10" in c for c in commands)
    assert any("clear bgp ipv6 unicast * soft out" in c for c in commands)
    # bgp-session-shutdown without a family: both sessions of the link
    leaf_link = [c for c in commands if "neighbor 10.254.0." in c or "neighbor 2001:db8:fffe::"
                 in c]
    assert any("2001:db8:fffe::" in c for c in leaf_link) and any("10.254.0." in c
                                                                 for c in leaf_link)


@pytest.mark.parametrize(("step", "message"), [
    ("{fault: node-crash, target: alpha-k8s-n1, family: ipv6, duration: 1s}",
     "node-crash acts on every family"),
    ("{fault: uplink-shutdown, target: alpha, transit: west, duration: 1s}",
     "unknown uplink of alpha to a transit 'west'"),
    ("{fault: site-drain, target: alpha, transit: east, duration: 1s}",
     "`transit:` does not apply to site-drain"),
    ("{fault: bgp-session-shutdown, target: east--alpha-s1, family: ipv6, duration: 1s}",
     "link east--alpha-s1 carries no ipv6 session"),
])
def test_family_and_transit_are_checked_against_the_lab(tmp_path: Path, step: str,
                                                        message: str) -> None:
    from lab.errors import ScenarioError
    from lab.scenario.load import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntopology: {DUAL_MINI}\nsteps:\n  - {step}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert message in caught.value.issues[0].message


def test_an_ipv6_fault_on_an_ipv4_lab_is_refused(tmp_path: Path) -> None:
    from lab.errors import ScenarioError
    from lab.scenario.load import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntopology: {REPO / 'topologies' / 'two-sites-mini.yaml'}\n"
                    "steps:\n  - {fault: site-drain, target: alpha, family: ipv6}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (issue,) = caught.value.issues
    assert issue.path == "steps[0].family" and "carries no ipv6" in issue.message
    assert "three-sites-dual" in issue.hint


# ------------------------------------------------------------------------------- probes


def test_prober_records_of_both_families_give_a_family_column(tmp_path: Path) -> None:
    from lab.measure.probe.udp import load_udp_probes

    lines = ["P 1 77 1000000 1 2000000000 10000000", "T 0 dns 192.0.2.53 53",
             "T 1 dns 2001:db8:53::53 53", "F 0 0 40000", "F 1 0 40001", "S 0 10000000",
             'I 0 {"site":"nyc"}', 'I 1 {"site":"ams"}', "R 0 0 0 0 150000 0",
             "R 1 0 0 2000 160000 1", "X 20000000 1 2 0 2 0 0 0 0"]
    path = tmp_path / "c1.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    frame = load_udp_probes(path, "c1", 0)
    assert list(frame["family"]) == ["ipv4", "ipv6"]
    assert list(frame["site"]) == ["nyc", "ams"]
    assert list(frame["service"]) == ["dns", "dns"]


def test_tcp_flows_take_an_ipv6_vip(tmp_path: Path) -> None:
    import json

    from lab.measure.probe.tcpspec import load_tcp_flows_spec

    flow = {"client": "c1", "netns": "x", "service": "web", "port": 80, "flow": 0}
    path = tmp_path / "tcp.json"
    path.write_text(json.dumps({"lab": "l", "events": "e", "flows": [
        {**flow, "vip": "192.0.2.80"}, {**flow, "vip": "2001:db8:80::80"}]}))
    spec = load_tcp_flows_spec(path)
    assert [f.family for f in spec.flows] == ["ipv4", "ipv6"]  # flow 0 of each family


# ------------------------------------------------------------------------------- node agent


def test_the_agent_spec_of_a_dual_stack_node_carries_both_families(tmp_path: Path) -> None:
    import json
    from ipaddress import IPv6Address, IPv6Network

    from lab.apps.agent.spec import load_agent_spec
    from lab.apps.agent.state import desired_state, service_rules
    from lab.backend.runtime_specs import agent_spec
    from lab.render.serviceproxy import render_service_rules

    plan = pipeline.plan(DUAL_MINI)
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(agent_spec("demo", tmp_path, plan, plan.node("alpha-k8s-n1"))))
    spec = load_agent_spec(path)
    assert spec.pod_cidr6 == IPv6Network("2001:db8:4000::/64")
    assert spec.families == ("ipv4", "ipv6")
    assert IPv6Address("2001:db8:10::10") in spec.vips
    assert spec.pods[0].address6 == IPv6Address("2001:db8:4000::2")
    state = desired_state(spec.services, spec.pods, {spec.pods[0].name: True})
    assert IPv6Address("2001:db8:80::80") in state.vips
    ruleset = render_service_rules(spec.node, service_rules(spec.services, state.endpoints))
    assert "dnat ip6 to [2001:db8:4000::2]:80" in ruleset
    unready = desired_state(spec.services, spec.pods, {spec.pods[0].name: False})
    assert not unready.vips  # a Local service withdraws both VIPs together


def test_the_gobgp_speaker_uses_the_prefix_family(tmp_path: Path) -> None:
    from ipaddress import ip_network

    from lab.apps.agent.speaker import GobgpSpeaker

    log = tmp_path / "argv"
    fake = tmp_path / "gobgp"
    fake.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {log}\necho >> {log}\necho "{{}}"\n')
    fake.chmod(0o755)
    speaker = GobgpSpeaker("127.0.0.1", 50051, cli=str(fake), families=("ipv4", "ipv6"))
    speaker.announce(ip_network("2001:db8:10::10/128"))
    speaker.withdraw(ip_network("192.0.2.10/32"))
    assert speaker.announced() == frozenset()
    lines = log.read_text().splitlines()
    assert lines[0].endswith("global|rib|add|-a|ipv6|2001:db8:10::10/128|")
    assert lines[1].endswith("global|rib|del|-a|ipv4|192.0.2.10/32|")
    assert [line.split("|")[-3] for line in lines[2:]] == ["ipv4", "ipv6"]  # both read back


def test_the_server_answers_on_both_addresses(tmp_path: Path) -> None:
    import socket
    from ipaddress import IPv4Address, IPv6Address

    from lab.apps.server.spec import ServerSpec, ServiceSpec
    from tests.unit.podserver import running_server

    if not Path("/proc/net/if_inet6").exists():
        pytest.skip("no IPv6 here")
    spec = ServerSpec("l", "s", "c", "n", "p", IPv4Address("127.0.0.1"),
                      (ServiceSpec("echo", "udp", 0),), 0, tmp_path / "unready",
                      address6=IPv6Address("::1"))
    with running_server(spec) as server:  # port 0: the IPv6 socket takes the IPv4 one's port
        assert "ready on 127.0.0.1 and ::1: udp/" in server.ready_line
        port = server.ports["echo"]
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2)
                sock.sendto(b"x", (address, port))
                assert b'"pod":"p"' in sock.recv(1024)


def test_link_local_next_hops_get_permanent_neighbour_entries() -> None:
    from lab.backend.netns.netspec import build_network_spec, link_local

    assert link_local("02:11:22:33:44:55") == "fe80::11:22ff:fe33:4455"  # EUI-64, U/L bit
    plan = pipeline.plan(DUAL_MINI)
    spec = build_network_spec("demo", plan, {})
    leaf = [n for n in spec.neighbours if n.ns.endswith("alpha-l1") and n.ifname == "alpha-k8s-n1"]
    assert sorted(n.address for n in leaf)[:2] == ["10.254.0.9", "2001:db8:fffe::9"]
    assert any(n.address.startswith("fe80::") for n in leaf)
    uplink = [n for n in spec.neighbours if n.ns.endswith(".east") and n.ifname == "alpha-s1"]
    assert [n.address for n in uplink] == ["100.64.0.3"]  # an IPv4-only link
    sysctls = next(v for ns, v in spec.sysctls.items() if ns.endswith("alpha-l1"))
    assert sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert sysctls["net/ipv6/conf/default/accept_dad"] == "0"
    assert sysctls["net/ipv6/conf/all/keep_addr_on_down"] == "1"
    v4_only = build_network_spec("demo", build_plan(validate_data(mini())), {})
    assert all(v["net/ipv6/conf/all/disable_ipv6"] == "1" for v in v4_only.sysctls.values())


def test_an_ipv6_only_service_renders_ipv6_rules_only() -> None:
    plan = build_plan(validate_data(mini(services=[
        {"name": "dns", "vip6": "2001:db8:53::53", "port": 53}])))
    node = plan.node("alpha-k8s-n1")
    ruleset = render_service_proxy(plan, node)
    assert "ip6 daddr 2001:db8:53::53 udp dport 53" in ruleset
    assert "ip daddr" not in ruleset
    leaf = render_frr_conf(plan, plan.node("alpha-l1"))
    assert "ipv6 prefix-list NODE-PREFIXES6 seq 5 permit 2001:db8:53::53/128" in leaf
    from lab.backend.inspect import client_targets

    assert {(c, s.name, f) for c, s, f in client_targets(plan)} == {("east-c1", "dns", "ipv6")}
