"""The service proxy's nftables ruleset (kube-proxy nftables model).

Traffic to VIP:port is DNATed to one of the ready endpoints, picked with ``numgen random``
per new connection; endpoints on other nodes (traffic policy Cluster) are also masqueraded so
replies come back through this node. Used both at render time (every pod ready) and by the
node agent whenever readiness changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

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


@dataclass(frozen=True)
class ServiceRules:
    name: str
    vip: IPv4Address
    protocol: str
    port: int
    endpoints: tuple[Endpoint, ...]


def render_service_rules(node: str, services: Sequence[ServiceRules]) -> str:
    """The whole ruleset for one node; applying it replaces the previous one atomically."""
    context = [{
        "vip": svc.vip, "protocol": svc.protocol, "port": svc.port, "chain": f"svc-{svc.name}",
        "endpoints": [{"address": ep.address, "local": ep.local,
                       "chain": f"ep-{svc.name}-{i}"} for i, ep in enumerate(svc.endpoints)],
    } for svc in services]
    return _ENV.get_template("service-proxy.nft.j2").render(
        node=node, table=SERVICE_TABLE, services=context, masquerade_mark=MASQUERADE_MARK)
