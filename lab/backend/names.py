"""Names and places of a lab: namespaces, state directory, the process tag.

Every namespace of lab L is called ``al.L.NODE``; lab and node names cannot contain a dot,
so the prefix ``al.L.`` selects exactly one lab's namespaces. Every process a lab starts
carries ``ANYLAB_LAB=L`` in its environment, so leftovers can be found without their PIDs.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from lab.errors import LabError

# used with fullmatch: `$` alone would also accept a trailing newline ("lab\n"), which would
# split the `ip -batch` lines that create and delete the lab's namespaces
LAB_NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,23}")
NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "al."
TAG_VARIABLE = "ANYLAB_LAB"
HIDDEN_NODE = "_emu"  # the impairment emulator's namespace; '_' is not allowed in node names


def state_root() -> Path:
    return Path(os.environ.get("ANYLAB_STATE_DIR", "/run/anylab"))


def check_lab_name(name: str) -> str:
    if not LAB_NAME_PATTERN.fullmatch(name):
        raise LabError(f"invalid lab name {name!r}: use 1-24 lowercase letters, digits or '-', "
                       "starting with a letter")
    return name


def lab_dir(lab: str) -> Path:
    return state_root() / check_lab_name(lab)


def netns_prefix(lab: str) -> str:
    return f"{NETNS_PREFIX}{lab}."


def netns_name(lab: str, node: str) -> str:
    return f"{netns_prefix(lab)}{node}"


def hidden_netns(lab: str) -> str:
    return netns_name(lab, HIDDEN_NODE)


def lab_namespaces(lab: str) -> list[str]:
    """Namespaces of this lab that exist now."""
    prefix = netns_prefix(lab)
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def all_lab_names() -> list[str]:
    """Labs with a state directory or at least one namespace on this machine."""
    names: set[str] = set()
    root = state_root()
    if root.is_dir():
        names.update(p.name for p in root.iterdir()
                     if p.is_dir() and LAB_NAME_PATTERN.fullmatch(p.name))
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            parts = entry.name.split(".")
            if len(parts) >= 3 and entry.name.startswith(NETNS_PREFIX):
                names.add(parts[1])
    return sorted(names)


def tag_environment(lab: str, node: str | None = None) -> dict[str, str]:
    """The environment of every process a lab starts: the caller's plus the lab's tag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYLAB_")}
    env[TAG_VARIABLE] = lab
    if node is not None:
        env["ANYLAB_NODE"] = node
    return env


def mac_address(lab: str, node: str, ifname: str) -> str:
    """The MAC of a node's interface: locally administered, unicast, derived from the names,
    so both ends of a link know each other's without asking (see lab.backend.netspec)."""
    digest = hashlib.blake2s(f"{lab}/{node}/{ifname}".encode(), digest_size=5).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest))
