"""Names and places of a lab, whatever its backend: the lab name, its state directory, the
process tag and derived MAC addresses.

Every process a lab starts carries ``ANYLAB_LAB=L`` in its environment, so leftovers can be
found without their PIDs. How a backend names its own objects (namespaces, containers) is
that backend's business (``lab.backend.netns.names``).
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
TAG_VARIABLE = "ANYLAB_LAB"


def state_root() -> Path:
    return Path(os.environ.get("ANYLAB_STATE_DIR", "/run/anylab"))


def check_lab_name(name: str) -> str:
    if not LAB_NAME_PATTERN.fullmatch(name):
        raise LabError(f"invalid lab name {name!r}: use 1-24 lowercase letters, digits or '-', "
                       "starting with a letter")
    return name


def lab_dir(lab: str) -> Path:
    return state_root() / check_lab_name(lab)


def state_labs() -> list[str]:
    """Labs with a state directory on this machine."""
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and LAB_NAME_PATTERN.fullmatch(p.name))


def pod_dir(lab_directory: Path, pod: str) -> Path:
    return lab_directory / "pods" / pod


def node_dir(lab_directory: Path, node: str) -> Path:
    return lab_directory / "nodes" / node


def tag_environment(lab: str, node: str | None = None) -> dict[str, str]:
    """The environment of every process a lab starts: the caller's plus the lab's tag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYLAB_")}
    env[TAG_VARIABLE] = lab
    if node is not None:
        env["ANYLAB_NODE"] = node
    return env


def mac_address(lab: str, node: str, ifname: str) -> str:
    """The MAC of a node's interface: locally administered, unicast, derived from the names,
    so both ends of a link know each other's without asking (see lab.backend.netns.netspec)."""
    digest = hashlib.blake2s(f"{lab}/{node}/{ifname}".encode(), digest_size=5).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest))
