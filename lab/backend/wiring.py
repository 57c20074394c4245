"""The veth pairs of a lab, for backends whose engine makes the links (containerlab, Mininet):
a pure function of the plan.

Every plan link is one pair with the plan's interface names and, at each lab end, the MAC its
peer's permanent neighbour entry names; a pod is linked to its node (the node's pod bridge is
built at deploy). With ``emulator`` set, links with delay, jitter, loss or rate go through
that node (the link emulator): each becomes two pairs, one per end, to the emulator's ports,
which keep a MAC of the kernel's choice (``port_mac`` None) unless the engine needs one.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.backend.bringup import impaired_links
from lab.backend.names import mac_address
from lab.impair.userspace import port_names
from lab.plan import naming
from lab.plan.model import LabPlan

LINK_MTU = 1500


@dataclass(frozen=True)
class Wire:
    """One veth pair: ``(node, ifname)`` at each end and the MAC of each (None: the
    kernel's choice)."""

    a: str
    a_ifname: str
    a_mac: str | None
    b: str
    b_ifname: str
    b_mac: str | None


def _wire(lab: str, a: tuple[str, str], b: tuple[str, str], b_is_port: bool = False,
          port_macs: bool = False) -> Wire:
    b_mac = mac_address(lab, *b) if not b_is_port or port_macs else None
    return Wire(a[0], a[1], mac_address(lab, *a), b[0], b[1], b_mac)


def plan_wires(lab: str, plan: LabPlan, emulator: str | None,
               port_macs: bool = False) -> list[Wire]:
    """Every veth pair of the lab; ``emulator``: the node impaired links go through (None:
    they are direct). ``port_macs``: give the emulator's ports a MAC of the lab's too."""
    emulated = {link.id for link in impaired_links(plan)} if emulator else set()
    wires = []
    for link in plan.links:
        a, b = (link.a.node, link.a.ifname), (link.b.node, link.b.ifname)
        if emulator and link.id in emulated:
            for end, port in zip((a, b), port_names(link.id), strict=True):
                wires.append(_wire(lab, end, (emulator, port), True, port_macs))
        else:
            wires.append(_wire(lab, a, b))
    for node in plan.nodes:
        for pod in node.pods:
            wires.append(_wire(lab, (node.name, pod.node_ifname), (pod.name, naming.POD_IFNAME)))
    return wires
