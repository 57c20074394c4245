"""Names of generated nodes. A node's name is also the interface name its neighbours use for
the link to it, so every name must fit Linux's 15-character interface-name limit."""

from __future__ import annotations

IFNAME_MAX = 15
POD_BRIDGE = "br-pods"
POD_IFNAME = "eth0"


def spine_name(site: str, index: int) -> str:
    return f"{site}-s{index}"


def leaf_name(site: str, index: int) -> str:
    return f"{site}-l{index}"


def border_name(site: str, index: int) -> str:
    return f"{site}-b{index}"


def k8s_node_name(cluster: str, index: int) -> str:
    return f"{cluster}-n{index}"


def pod_name(cluster: str, node_index: int, pod_index: int) -> str:
    return f"{cluster}-n{node_index}-p{pod_index}"


def pod_instance_name(pod: str, revision: int) -> str:
    """The name of a pod's replacement after ``revision - 1`` rolling updates (the first
    revision is the pod itself): lab.faults.rollout."""
    return pod if revision == 1 else f"{pod}-r{revision}"


def pod_of_instance(name: str) -> str:
    """The pod (its slot) that a replacement's name belongs to."""
    head, separator, revision = name.rpartition("-r")
    return head if separator and revision.isdigit() else name


def pod_veth_name(pod_index: int) -> str:
    """The node-side end of a pod's veth (unique within the node's namespace)."""
    return f"pod{pod_index}"
