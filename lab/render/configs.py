"""Render a LabPlan into the files each daemon runs: FRR, GoBGP, nftables service proxy.

Decisions are made in Python (``lab.render.frrpolicy``, here); Jinja2 templates only print them,
with StrictUndefined so a missing value is an error rather than an empty line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import tomli_w

from lab.plan.model import LabPlan, NodePlan, PodPlan, Role, ServicePlan
from lab.render.frrpolicy import frr_config
from lab.render.serviceproxy import Endpoint, ServiceRules, render_service_rules

FRR_VERSION = "8.4.4"
ALL_FRR_DAEMONS = ("zebra", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "pimd",
                   "ldpd", "nhrpd", "eigrpd", "babeld", "sharpd", "pbrd", "bfdd", "fabricd",
                   "vrrpd", "pathd", "staticd")
@dataclass(frozen=True)
class RenderedLab:
    """node name -> file name -> text."""

    files: Mapping[str, Mapping[str, str]]

    def write(self, out_dir: Path) -> list[Path]:
        written = []
        for node, files in sorted(self.files.items()):
            folder = out_dir / node
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in sorted(files.items()):
                path = folder / name
                path.write_text(text, encoding="utf-8")
                written.append(path)
        return written


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("lab.render", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # configuration files, not HTML
    )


_ENV = _environment()


def render_template(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(**context)


def frr_daemons(node: NodePlan) -> list[str]:
    """The FRR daemons a node runs, in start order (none for clients)."""
    if not node.runs_frr:
        return []
    if node.role == Role.K8S_NODE and node.speaker == "gobgp":
        # bfdd alone: its peers name their local address, not their interface, which only
        # zebra could resolve; the node installs no routes (lab.render.frrpolicy)
        return ["bfdd"]
    daemons = ["zebra", "bgpd"]
    if any(line.strip().startswith("ip route") for line in node.frr_raw):
        daemons.append("staticd")  # only raw lines can ask for static routes
    if node.timers is not None and node.timers.bfd is not None:
        daemons.append("bfdd")
    return daemons


def render_frr_conf(plan: LabPlan, node: NodePlan) -> str:
    return render_template("frr.conf.j2", cfg=frr_config(plan, node), frr_version=FRR_VERSION)


def render_daemons(node: NodePlan) -> str:
    return render_template("daemons.j2", hostname=node.name, all_daemons=ALL_FRR_DAEMONS,
                           enabled=frr_daemons(node))


def gobgp_config(plan: LabPlan, node: NodePlan, sessions_down: bool = False) -> dict[str, Any]:
    """gobgpd's configuration as data (dumped to TOML, never templated); ``sessions_down``:
    every neighbor administratively down, until enabled through the API."""
    assert node.asn is not None and node.router_id is not None
    neighbors = []
    listen = [str(node.router_id)]
    for session in plan.sessions_of(node.name):
        local, _, _, peer, peer_address, peer_asn = session.side(node.name)
        timers = session.timers
        if str(local) not in listen:
            listen.append(str(local))  # gobgpd listens only on the addresses listed
        family: dict[str, Any] = {"config": {"afi-safi-name": f"{session.family}-unicast"}}
        restart: dict[str, Any] = {}
        if timers.graceful_restart is not None:
            family["mp-graceful-restart"] = {"config": {"enabled": True}}
            # notification-enabled (RFC 8538): gobgpd sends a Cease when it stops, which
            # without it ends graceful restart at once and the leaf drops the routes
            restart = {"graceful-restart": {"config": {
                "enabled": True, "restart-time": timers.graceful_restart.restart_time_s,
                "deferral-time": timers.graceful_restart.deferral_time_s,
                "notification-enabled": True}}}
        neighbors.append({
            "config": {"neighbor-address": str(peer_address), "peer-as": peer_asn,
                       "description": peer, **({"admin-down": True} if sessions_down else {})},
            "timers": {"config": {"connect-retry": timers.connect_retry_s,
                                  "hold-time": timers.hold_s,
                                  "keepalive-interval": timers.keepalive_s}},
            "transport": {"config": {"local-address": str(local),
                                     "passive-mode": session.listener == node.name}},
            "afi-safis": [family],
            **restart,
        })
    return {
        "global": {
            "config": {"as": node.asn, "router-id": str(node.router_id),
                       "local-address-list": listen},
            # No global import policy: in GoBGP it also filters the node's own paths. The
            # leaf sends nodes nothing (DENY-ALL out), so the node learns nothing anyway.
        },
        "neighbors": neighbors,
    }


def render_gobgpd_toml(plan: LabPlan, node: NodePlan, sessions_down: bool = False) -> str:
    header = f"# gobgpd for {node.name} (rendered by anycast-lab; do not edit)\n"
    return header + tomli_w.dumps(gobgp_config(plan, node, sessions_down))


def default_endpoints(plan: LabPlan, node: NodePlan,
                      service: ServicePlan) -> list[Endpoint]:
    """Endpoints with every pod ready: Local uses the node's pods, Cluster every pod."""
    local = [pod_endpoint(p, True) for p in node.pods]
    if service.traffic_policy == "Local":
        return local
    assert node.cluster is not None
    others = [pod_endpoint(p, False) for name in plan.cluster(node.cluster).nodes
              if name != node.name for p in plan.node(name).pods]
    return local + others


def pod_endpoint(pod: PodPlan, local: bool) -> Endpoint:
    return Endpoint(pod.address.ip, local, pod.address6.ip if pod.address6 else None)


def render_service_proxy(plan: LabPlan, node: NodePlan,
                         endpoints: Mapping[str, Sequence[Endpoint]] | None = None) -> str:
    """The node's nftables ruleset; by default every pod is ready."""
    assert node.cluster is not None
    rules = []
    for service in plan.services_of_cluster(node.cluster):
        chosen = (endpoints[service.name] if endpoints is not None and service.name in endpoints
                  else default_endpoints(plan, node, service))
        rules.append(ServiceRules(service.name, service.vip, service.protocol, service.port,
                                  tuple(chosen), service.vip6, service.load_balancing))
    return render_service_rules(
        node.name, rules, node.pod_gateway.ip if node.pod_gateway is not None else None,
        node.pod_gateway6.ip if node.pod_gateway6 is not None else None)


def render_node(plan: LabPlan, node: NodePlan) -> dict[str, str]:
    files: dict[str, str] = {}
    if node.runs_frr:
        files["frr.conf"] = render_frr_conf(plan, node)
        files["daemons"] = render_daemons(node)
        files["vtysh.conf"] = "service integrated-vtysh-config\n"
    if node.role == Role.K8S_NODE:
        if node.speaker == "gobgp":
            files["gobgpd.toml"] = render_gobgpd_toml(plan, node)
        files["service-proxy.nft"] = render_service_proxy(plan, node)
    return files


def render_lab(plan: LabPlan) -> RenderedLab:
    return RenderedLab({node.name: render_node(plan, node) for node in plan.nodes
                        if node.role != Role.CLIENT})
