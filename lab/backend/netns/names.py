"""How the netns backend names a lab's namespaces.

Every namespace of lab L is called ``al.L.NODE``; lab and node names cannot contain a dot, so
the prefix ``al.L.`` selects exactly one lab's namespaces. The impairment emulator of a lab
lives in ``al.L._emu`` ('_' is not allowed in node names, so it names no node).
"""

from __future__ import annotations

from lab.netns import NETNS_DIR

NETNS_PREFIX = "al."
# the link emulator's place in a lab, named like a node ('_' is not allowed in node names)
EMULATOR_NODE = "_emu"


def netns_prefix(lab: str) -> str:
    return f"{NETNS_PREFIX}{lab}."


def netns_name(lab: str, node: str) -> str:
    return f"{netns_prefix(lab)}{node}"


def hidden_netns(lab: str) -> str:
    return netns_name(lab, EMULATOR_NODE)


def lab_namespaces(lab: str) -> list[str]:
    """Namespaces of this lab that exist now."""
    prefix = netns_prefix(lab)
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def namespace_labs() -> list[str]:
    """Labs with at least one namespace on this machine."""
    if not NETNS_DIR.is_dir():
        return []
    names = set()
    for entry in NETNS_DIR.iterdir():
        parts = entry.name.split(".")
        if len(parts) >= 3 and entry.name.startswith(NETNS_PREFIX):
            names.add(parts[1])
    return sorted(names)
