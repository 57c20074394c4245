"""What a node should do given its pods' readiness: endpoints to proxy to, VIPs to announce.

Pure functions (kube-proxy's endpoint selection and kube-router/MetalLB's announcement rule):
- Local: a service's endpoints are the node's ready pods, and the node announces the VIP while
  it has at least one;
- Cluster: the endpoints are every ready pod of the cluster (the node's own flagged local), and
  the node announces the VIP always;
- several services may share a VIP (different ports): the VIP is announced if any wants it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lab.apps.agent.spec import AgentPod, AgentService, address_order
from lab.plan.model import IPAddress
from lab.render.serviceproxy import Endpoint, ServiceRules


@dataclass(frozen=True)
class DesiredState:
    endpoints: Mapping[str, tuple[Endpoint, ...]]  # service name -> ready endpoints
    vips: frozenset[IPAddress]


def service_endpoints(service: AgentService, pods: Sequence[AgentPod],
                      ready: Mapping[str, bool]) -> tuple[Endpoint, ...]:
    """Ready endpoints in a stable order: the node's own pods first, then the others."""
    local = [Endpoint(p.address, True, p.address6) for p in pods
             if p.local and ready.get(p.name, False)]
    if service.traffic_policy == "Local":
        return tuple(local)
    others = [Endpoint(p.address, False, p.address6) for p in pods
              if not p.local and ready.get(p.name, False)]
    return tuple(local + others)


def wants_vip(service: AgentService, endpoints: Sequence[Endpoint], has_local_pod: bool,
              announce_with: str = "ready-endpoint") -> bool:
    """Cluster: always. Local: with a ready local endpoint, or with ``local-endpoint``
    while the node has a local pod at all: an unready pod keeps the VIP announced while
    the proxy has nowhere to send its traffic (the blackhole of docs/speakers.md)."""
    if service.traffic_policy == "Cluster":
        return True
    if announce_with == "local-endpoint":
        return has_local_pod
    return any(ep.local for ep in endpoints)


def desired_state(services: Sequence[AgentService], pods: Sequence[AgentPod],
                  ready: Mapping[str, bool],
                  announce_with: str = "ready-endpoint") -> DesiredState:
    endpoints = {s.name: service_endpoints(s, pods, ready) for s in services}
    has_local_pod = any(p.local for p in pods)
    vips = frozenset(v for s in services
                     if wants_vip(s, endpoints[s.name], has_local_pod, announce_with)
                     for v in s.vips)
    return DesiredState(endpoints, vips)


def service_rules(services: Sequence[AgentService],
                  endpoints: Mapping[str, tuple[Endpoint, ...]]) -> list[ServiceRules]:
    return [ServiceRules(s.name, s.vip, s.protocol, s.port, endpoints.get(s.name, ()), s.vip6,
                         s.load_balancing)
            for s in services]


def endpoint_addresses(endpoints: Mapping[str, tuple[Endpoint, ...]]) -> dict[str, list[str]]:
    """Each service's endpoint addresses (an endpoint's IPv4 address, then its IPv6 one)."""
    return {name: [str(a) for ep in eps for a in (ep.address, ep.address6) if a is not None]
            for name, eps in endpoints.items()}


def status_document(node: str, t_ns: int, ready: Mapping[str, bool],
                    announced: Iterable[IPAddress],
                    endpoints: Mapping[str, tuple[Endpoint, ...]],
                    unready_why: Mapping[str, str] | None = None,
                    drain: str | None = None) -> dict[str, object]:
    """The agent's status.json: readiness per pod, announced VIPs, endpoints per service,
    for each unready pod what its last probe said, and the drain in force (its method)."""
    return {
        "node": node,
        "t_ns": t_ns,
        "pods": {name: "ready" if ok else "unready" for name, ok in ready.items()},
        "announced": [str(v) for v in sorted(announced, key=address_order)],
        "endpoints": endpoint_addresses(endpoints),
        "unready_why": dict(sorted((unready_why or {}).items())),
        "drain": drain,
    }
