"""What a client's prober asks of a lab's services, from the plan: one target per VIP of each
UDP service (with the service's DNS question when its pods run a DNS server), and the
instances a real server's identity names (the pods, by name)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from lab.measure.probe.dns import DnsQuery
from lab.measure.probe.udp import ProbeTarget
from lab.plan.model import IPAddress, LabPlan, ServicePlan, family_of
from lab.plan.naming import pod_of_instance


def client_vips(plan: LabPlan, client: str, service: ServicePlan) -> list[IPAddress]:
    """The service's VIPs in the families the client has (IPv4 first)."""
    families = plan.node(client).families
    return [vip for vip in service.vips if family_of(vip) in families]


def udp_targets(plan: LabPlan, client: str,
                services: Sequence[ServicePlan]) -> list[ProbeTarget]:
    """A target per VIP the client can reach of every UDP service among ``services``."""
    return [ProbeTarget(s.name, str(vip), s.port, dns=dns_query(s)) for s in services
            if s.protocol == "udp" for vip in client_vips(plan, client, s)]


def dns_query(service: ServicePlan) -> DnsQuery | None:
    ask = service.dns_probe
    return DnsQuery(ask.name, ask.rr_type, ask.identity) if ask is not None else None


class PodInstances(Mapping[str, Mapping[str, str]]):
    """Identity text -> the answering instance's site, cluster, node and pod: a real server
    names itself by its pod's name (README, "Your own server behind the VIP"), and a pod a
    rolling update made by its own (``POD-rN``: lab.plan.naming), in its slot's place."""

    def __init__(self, plan: LabPlan) -> None:
        self._pods = {pod.name: pod for pod in plan.pods()}

    def __getitem__(self, name: str) -> Mapping[str, str]:
        pod = self._pods[pod_of_instance(name)]
        return {"site": pod.site, "cluster": pod.cluster, "node": pod.node, "pod": name}

    def __iter__(self) -> Iterator[str]:
        return iter(self._pods)

    def __len__(self) -> int:
        return len(self._pods)


def instances(plan: LabPlan) -> PodInstances:
    return PodInstances(plan)


__all__ = ["PodInstances", "client_vips", "dns_query", "instances", "udp_targets"]
