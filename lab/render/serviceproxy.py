"""The service proxy's nftables ruleset (kube-proxy nftables model).

Traffic to VIP:port is DNATed to one of the ready endpoints, picked per new connection with
``numgen random`` (``load_balancing: random``, kube-proxy's) or through a table of slots that
every node builds alike (``consistent``: lab.render.consistent). Endpoints on other nodes
(traffic policy Cluster) are also SNATed so replies come back through this node. One
`inet` table holds both families: traffic to the IPv6 VIP goes to the endpoints' IPv6
addresses, in chains of its own. Used both at render time (every pod ready) and by the node
agent whenever readiness changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import jinja2

from lab.render.consistent import HASH_SEED, TABLE_SIZE, slot_owners

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
    load_balancing: str = "random"  # "random" | "consistent"


def _family_rules(svc: ServiceRules) -> list[dict[str, Any]]:
    """Per VIP: the chain that picks an endpoint and one chain per endpoint, in that family."""
    rules = []
    if svc.vip is not None:
        rules.append(_picker(svc, "ip", svc.vip, f"svc-{svc.name}", [
            (str(ep.address), f"{ep.address}:{svc.port}", ep.local, f"ep-{svc.name}-{i}")
            for i, ep in enumerate(svc.endpoints)]))
    if svc.vip6 is not None:
        with_v6 = [ep for ep in svc.endpoints if ep.address6 is not None]
        rules.append(_picker(svc, "ip6", svc.vip6, f"svc6-{svc.name}", [
            (str(ep.address6), f"[{ep.address6}]:{svc.port}", ep.local, f"ep6-{svc.name}-{i}")
            for i, ep in enumerate(with_v6)]))
    return rules


def _picker(svc: ServiceRules, keyword: str, vip: IPv4Address | IPv6Address, chain: str,
            endpoints: list[tuple[str, str, bool, str]]) -> dict[str, Any]:
    """One family's rules; each endpoint is (key, DNAT target, local, chain name)."""
    consistent = svc.load_balancing == "consistent"
    owners = slot_owners([key for key, *_ in endpoints]) if consistent else []
    return {"keyword": keyword, "vip": vip, "chain": chain,
            "endpoints": [{"target": target, "local": local, "chain": name}
                          for _key, target, local, name in endpoints],
            "slots": [endpoints[i][3] for i in owners]}


def service_rules_template() -> jinja2.Template:
    """The ruleset's template, compiled at its first use in a process (lab.apps.launcher
    compiles it before it forks the agents, which then share it)."""
    return _ENV.get_template("service-proxy.nft.j2")


def render_service_rules(node: str, services: Sequence[ServiceRules],
                         source: IPv4Address | None = None,
                         source6: IPv6Address | None = None) -> str:
    """The whole ruleset for one node; applying it replaces the previous one atomically.

    Flows to other nodes' pods leave SNATed to ``source``/``source6``, the node's address
    that the fabric reaches (masquerade would take the outgoing link's, known only to the
    node's leaf); without them, masqueraded."""
    context = [{"protocol": svc.protocol, "port": svc.port, **rules}
               for svc in services for rules in _family_rules(svc)]
    return service_rules_template().render(
        node=node, table=SERVICE_TABLE, services=context, masquerade_mark=MASQUERADE_MARK,
        table_size=TABLE_SIZE, seed=f"{HASH_SEED:#x}", source=source, source6=source6)
