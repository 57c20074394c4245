"""A containerlab export split over several hosts, joined by containerlab ``vxlan`` links.

Placement: the sites go to the hosts in turn, in the order of the topology (site 1 to host 1,
site 2 to host 2, ..., wrapping around); a site's routers, cluster nodes and pods stay
together. A node without a site (a transit, a client) goes with the nearest node that has a site,
following links outward (a transit with the first site it links to, a client with its
transit's). The link emulator's half-links stay on the host of the link's first end,
so each host that has emulated links runs a ``link_emulator`` of its own.

A link whose ends land on two hosts becomes one ``vxlan`` link in each host's file: the local
end, the other host's address, a VNI of its own (from ``VNI_BASE``, in link order) and UDP
port ``VXLAN_PORT``. Each host's file is a containerlab lab of its own, named
``LAB-h1``, ``LAB-h2``, ...
"""

from __future__ import annotations

import copy
from collections import deque
from ipaddress import ip_address
from typing import Any

from lab.backend.bringup import impaired_links
from lab.backend.containerlab.names import EMULATOR_CLAB_NODE
from lab.errors import InputError, InputIssue
from lab.impair.userspace import port_names
from lab.plan.model import LabPlan

VNI_BASE = 10000
VXLAN_PORT = 14789  # containerlab's default for vxlan links
Endpoint = dict[str, str]


def check_hosts(hosts: list[str]) -> list[str]:
    """Two or more distinct IP addresses, or an InputError that says what is wrong."""
    issues = []
    for host in hosts:
        try:
            ip_address(host)
        except ValueError:
            issues.append(InputIssue("--split", None, host, f"{host!r} is not an IP address",
                                     "give each host's address on the network that joins "
                                     "them, e.g. --split 10.0.0.1,10.0.0.2"))
    if len(hosts) < 2 or len(set(hosts)) != len(hosts):
        issues.append(InputIssue("--split", None, ",".join(hosts),
                                 "a split needs two or more distinct hosts",
                                 "e.g. --split 10.0.0.1,10.0.0.2"))
    if issues:
        raise InputError(issues)
    return hosts


def placement(plan: LabPlan, hosts: int) -> dict[str, int]:
    """Plan node or pod -> host index; also each emulator port (``link_emulator:PORT``) ->
    the host of its link's first end."""
    sites = [site.name for site in plan.sites]
    place: dict[str, int] = {}
    for node in plan.nodes:
        if node.site is not None:
            place[node.name] = sites.index(node.site) % hosts
            for pod in node.pods:
                place[pod.name] = place[node.name]
    neighbours: dict[str, list[str]] = {}
    for link in plan.links:
        neighbours.setdefault(link.a.node, []).append(link.b.node)
        neighbours.setdefault(link.b.node, []).append(link.a.node)
    anchored = dict(place)  # placed by their site
    for node in plan.nodes:
        if node.name not in place:
            place[node.name] = _nearest_placed(node.name, neighbours, anchored)
    for link in impaired_links(plan):
        for port in port_names(link.id):
            place[f"{EMULATOR_CLAB_NODE}:{port}"] = place[link.a.node]
    return place


def _nearest_placed(start: str, neighbours: dict[str, list[str]],
                    place: dict[str, int]) -> int:
    seen, queue = {start}, deque([start])
    while queue:
        current = queue.popleft()
        for peer in neighbours.get(current, []):
            if peer in place:
                return place[peer]
            if peer not in seen:
                seen.add(peer)
                queue.append(peer)
    return 0


def _host_of(end: Endpoint, place: dict[str, int]) -> int:
    if end["node"] == EMULATOR_CLAB_NODE:
        return place[f"{EMULATOR_CLAB_NODE}:{end['interface']}"]
    return place[end["node"]]


def split_topology(plan: LabPlan, document: dict[str, Any],
                   hosts: list[str]) -> list[dict[str, Any]]:
    """One topology document per host (in the order of ``hosts``)."""
    place = placement(plan, len(hosts))
    parts = []
    for index in range(len(hosts)):
        part = copy.deepcopy(document)
        part["name"] = f"{document['name']}-h{index + 1}"
        part["topology"]["links"] = []
        parts.append(part)
    vni = VNI_BASE
    for link in document["topology"]["links"]:
        a, b = link["endpoints"]
        host_a, host_b = _host_of(a, place), _host_of(b, place)
        if host_a == host_b:
            parts[host_a]["topology"]["links"].append(copy.deepcopy(link))
            continue
        for end, here, there in ((a, host_a, host_b), (b, host_b, host_a)):
            parts[here]["topology"]["links"].append(
                {"type": "vxlan", "endpoint": dict(end), "remote": hosts[there], "vni": vni,
                 "dst-port": VXLAN_PORT, "mtu": link["mtu"]})
        vni += 1
    for index, part in enumerate(parts):
        used = {e["node"] for link in part["topology"]["links"]
                for e in link.get("endpoints") or [link["endpoint"]]}
        nodes = part["topology"]["nodes"]
        for name in list(nodes):
            keep = (name in used) if name == EMULATOR_CLAB_NODE else place[name] == index
            if not keep:
                del nodes[name]
    return parts
