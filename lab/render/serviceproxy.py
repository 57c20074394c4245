"""The service proxy's nftables ruleset (kube-proxy nftables model).

Traffic to VIP:port is DNATed to one of the ready endpoints, picked with ``numgen random``
per new connection; endpoints on other nodes (traffic policy Cluster) are also masqueraded so
replies come back through this node. One `inet` table holds both families: traffic to the
IPv6 VIP goes to the endpoints' IPv6 addresses, in chains of its own. Used both at render
time (every pod ready) and by the node agent whenever readiness changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import jinja2

SERVICE_TABLE = "anylab_svc"
MASQUERADE_MARK = "0x00004000"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("lab.render", "templates"), undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    autoescape=False,  # an nftables ruleset, not HTML
)


@dataclass(frozen=True)
class Endpoint:
    """A pod the service proxy may send a service's traffic to."""

    address: IPv4Address
    local: bool
    address6: IPv6Address | None = None  # a dual-stack pod's


@dataclass(frozen=True)
class ServiceRules:
    name: str
    vip: IPv4Address | None
    protocol: str
    port: int
    endpoints: tuple[Endpoint, ...]
    vip6: IPv6Address | None = None


def _family_rules(svc: ServiceRules) -> list[dict[str, Any]]:
    """Per VIP: the chain that picks an endpoint and one chain per endpoint, in that family."""
    rules = []
    if svc.vip is not None:
        rules.append({"keyword": "ip", "vip": svc.vip, "chain": f"svc-{svc.name}",
                      "endpoints": [{"target": f"{ep.address}:{svc.port}", "local": ep.local,
                                     "chain": f"ep-{svc.name}-{i}"}
                                    for i, ep in enumerate(svc.endpoints)]})
    if svc.vip6 is not None:
        with_v6 = [ep for ep in svc.endpoints if ep.address6 is not None]
        rules.append({"keyword": "ip6", "vip": svc.vip6, "chain": f"svc6-{svc.name}",
                      "endpoints": [{"target": f"[{ep.address6}]:{svc.port}", "local": ep.local,
                                     "chain": f"ep6-{svc.name}-{i}"}
                                    for i, ep in enumerate(with_v6)]})
    return rules


def render_service_rules(node: str, services: Sequence[ServiceRules]) -> str:
    """The whole ruleset for one node; applying it replaces the previous one atomically."""
    context = [{"protocol": svc.protocol, "port": svc.port, **rules}
               for svc in services for rules in _family_rules(svc)]
    return _ENV.get_template("service-proxy.nft.j2").render(
        node=node, table=SERVICE_TABLE, services=context, masquerade_mark=MASQUERADE_MARK)
