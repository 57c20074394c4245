"""How the containerlab backend names a lab's containers, namespaces and files.

Lab L deploys as containerlab lab ``L`` with prefix ``anylab``: node N is container
``anylab-L-N`` and containerlab links its network namespace at ``/run/netns/anylab-L-N``.
Every container carries the label ``anylab.lab=L``, which finds them without a state file.
The link emulator (links with delay or loss on kernels without sch_netem) is a container of
its own, node ``link_emulator`` (containerlab node names start with a letter or digit; '_'
is not allowed in plan node names, so it names no plan node).
"""

from __future__ import annotations

from pathlib import Path

from lab.backend.names import lab_dir
from lab.backend.netns.names import EMULATOR_NODE

CLAB_PREFIX = "anylab"
EMULATOR_CLAB_NODE = "link_emulator"
LAB_LABEL = "anylab.lab"
NODE_LABEL = "anylab.node"
ROLE_LABEL = "anylab.role"


def clab_node(node: str) -> str:
    """The containerlab node of a plan node (or of the lab's emulator)."""
    return EMULATOR_CLAB_NODE if node == EMULATOR_NODE else node


def container_name(lab: str, node: str) -> str:
    return f"{CLAB_PREFIX}-{lab}-{clab_node(node)}"


def link_pid(link: Path) -> int | None:
    """The first process of a container, from the namespace link containerlab made for it
    (``/run/netns/NAME -> /proc/PID/ns/net``); None when there is none."""
    try:
        return int(link.readlink().parts[2])
    except (OSError, IndexError, ValueError):
        return None


def deploy_netns(lab: str) -> str:
    """The namespace containerlab runs in while it deploys the lab: it makes each veth pair
    in its own namespace before moving the ends into the containers, and that is never the
    host's. (A '.' is allowed in neither lab nor node names: no container has this name.)"""
    return f"{CLAB_PREFIX}-{lab}.deploy"


def topology_path(lab: str) -> Path:
    """The lab's containerlab topology file (containerlab keeps its own files beside it, in
    ``clab-L/``)."""
    return lab_dir(lab) / f"{lab}.clab.yml"
