"""Which endpoints a node proxies to and which VIPs it announces (Local, Cluster, shared VIP)."""

from __future__ import annotations

from ipaddress import IPv4Address

from lab.apps.agent.spec import AgentPod, AgentService
from lab.apps.agent.state import desired_state, service_rules, status_document
from lab.render.serviceproxy import Endpoint, render_service_rules

VIP = IPv4Address("192.0.2.53")
OTHER_VIP = IPv4Address("192.0.2.80")
PODS = (
    AgentPod("p1", IPv4Address("10.64.0.2"), 8080, True),
    AgentPod("p2", IPv4Address("10.64.0.3"), 8080, True),
    AgentPod("q1", IPv4Address("10.64.1.2"), 8080, False),
)


def svc(name: str, policy: str, vip: IPv4Address = VIP, port: int = 53,
        protocol: str = "udp") -> AgentService:
    return AgentService(name, vip, protocol, port, policy)


def ready(*names: str) -> dict[str, bool]:
    return {p.name: p.name in names for p in PODS}


def test_local_uses_only_ready_local_pods_and_announces_while_one_is_ready() -> None:
    services = [svc("dns", "Local")]
    state = desired_state(services, PODS, ready("p2", "q1"))
    assert state.endpoints == {"dns": (Endpoint(IPv4Address("10.64.0.3"), True),)}
    assert state.vips == {VIP}
    none_local = desired_state(services, PODS, ready("q1"))
    assert none_local.endpoints == {"dns": ()}
    assert none_local.vips == frozenset()


def test_cluster_uses_every_ready_pod_local_first_and_always_announces() -> None:
    services = [svc("dns", "Cluster")]
    state = desired_state(services, PODS, ready("q1", "p1"))
    assert state.endpoints["dns"] == (Endpoint(IPv4Address("10.64.0.2"), True),
                                      Endpoint(IPv4Address("10.64.1.2"), False))
    assert desired_state(services, PODS, ready()).vips == {VIP}


def test_a_shared_vip_is_announced_if_any_of_its_services_wants_it() -> None:
    services = [svc("dns", "Local"), svc("web", "Cluster", port=80, protocol="tcp"),
                svc("api", "Local", vip=OTHER_VIP, port=443, protocol="tcp")]
    state = desired_state(services, PODS, ready("q1"))
    assert state.vips == {VIP}  # web (Cluster) keeps it; api (Local) has no local pod
    local_only = [services[0], services[2]]
    assert desired_state(local_only, PODS, ready("p1")).vips == {VIP, OTHER_VIP}
    assert desired_state(local_only, PODS, ready("q1")).vips == frozenset()


def test_local_endpoint_keeps_the_vip_announced_without_a_ready_pod() -> None:
    """`announce_with: local-endpoint` (the check by the endpoint's node): the VIP stays
    announced while the proxy has no ready endpoint to send its traffic to."""
    services = [svc("dns", "Local")]
    state = desired_state(services, PODS, ready("q1"), "local-endpoint")
    assert state.vips == {VIP} and state.endpoints["dns"] == ()
    assert desired_state(services, PODS, ready("q1")).vips == frozenset()
    remote_only = tuple(p for p in PODS if not p.local)
    assert desired_state(services, remote_only, ready(), "local-endpoint").vips == frozenset()


def test_unknown_pods_count_as_unready() -> None:
    assert desired_state([svc("dns", "Local")], PODS, {}).vips == frozenset()


def test_rules_drop_a_service_without_endpoints() -> None:
    services = [svc("dns", "Local")]
    rules = service_rules(services, desired_state(services, PODS, ready()).endpoints)
    assert rules[0].endpoints == ()
    text = render_service_rules("n1", rules)
    assert 'drop comment "no ready endpoint"' in text
    with_pod = service_rules(services, desired_state(services, PODS, ready("p1")).endpoints)
    assert "dnat ip to 10.64.0.2:53" in render_service_rules("n1", with_pod)


def test_status_document() -> None:
    services = [svc("dns", "Local")]
    state = desired_state(services, PODS, ready("p1"))
    doc = status_document("n1", 42, ready("p1"), {VIP}, state.endpoints)
    assert doc == {"node": "n1", "t_ns": 42,
                   "pods": {"p1": "ready", "p2": "unready", "q1": "unready"},
                   "announced": ["192.0.2.53"], "endpoints": {"dns": ["10.64.0.2"]},
                   "unready_why": {}, "drain": None}
