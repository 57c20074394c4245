"""A lab plan as a containerlab topology: a pure function of the plan.

Every plan node (router, cluster node, client) and every pod is a ``kind: linux`` node; every
plan link is a ``veth`` link with the plan's interface names, MACs and an MTU of 1500; a pod
is linked to its node (the node's pod bridge is built at deploy). Links with delay, jitter,
loss or rate go through the link emulator node (``link_emulator``) when the kernel has no
sch_netem: each becomes two links, one per end, to the emulator's ports (the pairs are
``lab.backend.wiring``'s, as on Mininet). Nodes bind their
folder of the lab (configuration, logs, vty sockets) at the path the lab's programs use; a
cluster node also binds its pods' workload folders (for ``exec`` readiness checks).

Kept away from what clabernetes (containerlab on Kubernetes) rejects, where it costs nothing:
no ``stages``, no ``exec`` hooks, no management network. What remains is listed in
docs/containerlab.md (host binds of the node folders).
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from lab.backend import workloads
from lab.backend.bringup import impaired_links
from lab.backend.containerlab.images import IDLE_COMMAND
from lab.backend.containerlab.names import (
    CLAB_PREFIX,
    EMULATOR_CLAB_NODE,
    LAB_LABEL,
    NODE_LABEL,
    ROLE_LABEL,
)
from lab.backend.names import node_dir, pod_dir
from lab.backend.wiring import LINK_MTU, Wire, plan_wires
from lab.plan.model import LabPlan, NodePlan, Role

# what the lab's programs need; `privileged: true` cannot start on machines whose capability
# bounding set lacks CAP_SYS_RESOURCE, and none of them needs more
CAPABILITIES = ("NET_ADMIN", "NET_RAW", "SYS_ADMIN")
HEADER = """\
# containerlab topology of anycast lab {lab!r} (topology {topology!r}), written by anylab.
# Nodes run unprivileged with the capabilities FRR, GoBGP and nftables need ({caps}):
# privileged containers cannot start where the capability bounding set lacks
# CAP_SYS_RESOURCE. No management network (network-mode: none): every node has only its
# lab links. `anylab up --backend containerlab` deploys it and starts the lab's programs.
"""


def node_role(node: NodePlan) -> str:
    """The image role of a plan node."""
    if node.role == Role.K8S_NODE:
        return "node"
    if node.role == Role.CLIENT:
        return "client"
    return "router"


def export_topology(lab: str, plan: LabPlan, images: dict[str, str], lab_root: PurePosixPath,
                    emulated: bool) -> dict[str, Any]:
    """The topology document. ``images``: role -> image; ``lab_root``: the lab's folder as
    the containers see it (node folders are bound below it); ``emulated``: links with
    impairments go through the emulator node."""
    nodes: dict[str, dict[str, Any]] = {}
    for node in plan.nodes:
        binds = [_bind(lab_root, node_dir(Path(), node.name))]
        # the node's agent runs `exec` readiness checks of its pods' workloads, which may
        # name their files ({dir})
        binds += [_bind(lab_root, workloads.pod_folder(Path(), pod.name)) for pod in node.pods
                  if workloads.pod_workloads(plan, pod)]
        nodes[node.name] = _node(lab, node.name, node_role(node), images, binds)
        for pod in node.pods:
            nodes[pod.name] = _node(lab, pod.name, "pod", images,
                                    [_bind(lab_root, pod_dir(Path(), pod.name))])
    emulator = EMULATOR_CLAB_NODE if emulated and impaired_links(plan) else None
    links = [_veth(wire) for wire in plan_wires(lab, plan, emulator)]
    if emulator:
        nodes[emulator] = _node(lab, emulator, "client", images, [])
    return {
        "name": lab,
        "prefix": CLAB_PREFIX,
        "mgmt": {"skip-when-unused": True},
        "topology": {
            "kinds": {"linux": {"network-mode": "none", "privileged": False,
                                "cap-add": list(CAPABILITIES),
                                # idle, whatever the image would start (a stock FRR image
                                # starts its daemons): the lab starts the programs
                                "entrypoint": IDLE_COMMAND[0],
                                "cmd": shlex.join(IDLE_COMMAND[1:]),
                                # containerlab's default ("always") brings the containers
                                # back when the engine restarts (a reboot) without their
                                # links or programs; `down` removes them where they stopped
                                "restart-policy": "no"}},
            "nodes": nodes,
            "links": links,
        },
    }


def _bind(lab_root: PurePosixPath, relative: Path) -> str:
    return f"{relative.as_posix()}:{lab_root / relative.as_posix()}"


def _node(lab: str, name: str, role: str, images: dict[str, str],
          binds: list[str]) -> dict[str, Any]:
    node: dict[str, Any] = {"kind": "linux", "image": images[role],
                            "labels": {LAB_LABEL: lab, NODE_LABEL: name, ROLE_LABEL: role}}
    if binds:
        node["binds"] = binds
    return node


def _veth(wire: Wire) -> dict[str, Any]:
    def endpoint(node: str, ifname: str, mac: str | None) -> dict[str, str]:
        point = {"node": node, "interface": ifname}
        if mac is not None:
            point["mac"] = mac
        return point

    return {"type": "veth", "mtu": LINK_MTU,
            "endpoints": [endpoint(wire.a, wire.a_ifname, wire.a_mac),
                          endpoint(wire.b, wire.b_ifname, wire.b_mac)]}


def render_topology(lab: str, plan: LabPlan, document: dict[str, Any]) -> str:
    header = HEADER.format(lab=lab, topology=plan.topology, caps=", ".join(CAPABILITIES))
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
