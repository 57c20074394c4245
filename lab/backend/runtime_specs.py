"""Spec files for the programs that run inside a lab: the anycast server of each pod and the
agent of each cluster node (`python -m lab.apps.server --spec`,
`python -m lab.apps.agent --spec`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.backend import workloads
from lab.backend.names import node_dir, pod_dir
from lab.plan.model import HEALTH_PORT, LabPlan, NodePlan, PodPlan


def server_spec(lab: str, lab_directory: Path, plan: LabPlan, pod: PodPlan) -> dict[str, Any]:
    return {
        "lab": lab, "site": pod.site, "cluster": pod.cluster, "node": pod.node, "pod": pod.name,
        "address": str(pod.address.ip),
        # a service with a workload is answered by the user's server instead
        "services": [{"name": s.name, "protocol": s.protocol, "port": s.port}
                     for s in plan.services_of_cluster(pod.cluster) if s.workload is None],
        "health_port": HEALTH_PORT,
        "unready_flag": str(pod_dir(lab_directory, pod.name) / "unready"),
    } | ({"address6": str(pod.address6.ip)} if pod.address6 is not None else {})


def agent_spec(lab: str, lab_directory: Path, plan: LabPlan, node: NodePlan) -> dict[str, Any]:
    assert node.cluster is not None
    cluster = plan.cluster(node.cluster)
    services = plan.services_of_cluster(node.cluster)
    needs_remote = any(s.traffic_policy == "Cluster" for s in services)
    pods = [{"name": p.name, "address": str(p.address.ip), "health_port": HEALTH_PORT,
             "local": p.node == node.name}
            | ({"address6": str(p.address6.ip)} if p.address6 is not None else {})
            | ({"checks": checks} if (checks := workloads.agent_checks(lab_directory, plan, p))
               else {})
            for name in cluster.nodes if name == node.name or needs_remote
            for p in plan.node(name).pods]
    folder = node_dir(lab_directory, node.name)
    readiness = cluster.readiness
    return {
        "lab": lab, "node": node.name, "cluster": node.cluster, "speaker": node.speaker,
        "announce_with": cluster.announce_with,
        "control_plane_delay_ms": round(cluster.control_plane_delay_ms),
        "gobgp_api": "127.0.0.1:50051", "vty_socket_dir": str(folder), "asn": node.asn,
        "pod_cidr": str(node.pod_cidr),
        **({"pod_cidr6": str(node.pod_cidr6)} if node.pod_cidr6 is not None else {}),
        **{key: str(gateway.ip) for key, gateway in (("source", node.pod_gateway),
                                                     ("source6", node.pod_gateway6))
           if gateway is not None},
        "readiness": {"period_ms": round(readiness.period_ms),
                      "timeout_ms": round(readiness.timeout_ms),
                      "failure_threshold": readiness.failure_threshold,
                      "success_threshold": readiness.success_threshold},
        "services": [{"name": s.name, "protocol": s.protocol, "port": s.port,
                      "traffic_policy": s.traffic_policy, "load_balancing": s.load_balancing}
                     | {key: str(vip) for key, vip in (("vip", s.vip), ("vip6", s.vip6))
                        if vip is not None} for s in services],
        "pods": pods,
        "events": str(folder / "agent-events.jsonl"),
        "nft": "/usr/sbin/nft",
    }
