"""Which pod a slot holds after rolling updates (lab.faults.rollout).

A slot is a pod's namespace; its pod CIDR holds two addresses per slot, and revisions
alternate between them: revision 1 (the pod of the plan) takes the first bank, 2 the second,
3 the first again. A cluster's revision is recorded in the lab's state once a rollout ends.
"""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import TypeVar

from lab.atomicfile import write_atomic
from lab.plan.model import LabPlan, PodPlan

Interface = TypeVar("Interface", IPv4Interface, IPv6Interface)


def revision_file(lab_directory: Path, cluster: str) -> Path:
    return lab_directory / "rollouts" / f"{cluster}.json"


def read_revision(lab_directory: Path, cluster: str) -> int:
    """The cluster's revision: 1 until its first rolling update."""
    try:
        revision = json.loads(revision_file(lab_directory, cluster).read_text()).get(
            "revision", 1)
    except (OSError, ValueError, AttributeError):
        return 1
    return revision if isinstance(revision, int) and revision >= 1 else 1


def write_revision(lab_directory: Path, cluster: str, revision: int) -> None:
    path = revision_file(lab_directory, cluster)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_atomic(path, json.dumps({"revision": revision}))


def _in_bank(base: Interface, offset: int) -> Interface:
    """The slot's address ``offset`` further on, in the same prefix."""
    return type(base)((base.ip + offset, base.network.prefixlen))


def pod_at(plan: LabPlan, slot: PodPlan, revision: int) -> PodPlan:
    """The slot with the addresses its pod has at ``revision`` (its name stays the slot's:
    lab.plan.naming.pod_instance_name names the pod)."""
    offset = (revision - 1) % 2 * len(plan.node(slot.node).pods)
    return replace(slot, address=_in_bank(slot.address, offset),
                   address6=None if slot.address6 is None else _in_bank(slot.address6, offset))


def current_pod(plan: LabPlan, lab_directory: Path, slot: str) -> tuple[PodPlan, int]:
    """The pod the slot holds now and its revision."""
    pod = plan.pod(slot)
    revision = read_revision(lab_directory, pod.cluster)
    return pod_at(plan, pod, revision), revision
