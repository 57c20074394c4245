"""A cluster's pods as its API server lists them after a rollout: a JSON file beside the agent's
spec, written by the ``rolling-update`` fault (lab.faults.rollout). Without the file the spec's
pods are the list.

``{"pods": [{"pod": {...}, "terminating": false}, ...]}``: each ``pod`` has the spec's form (a
new pod has a name and an address of its own); a ``terminating`` pod is being deleted: it is
no endpoint and no reason to announce, while its server still answers the connections it has
until it exits (kube-proxy forgets only its UDP flows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.apps.agent.events import write_json_atomic
from lab.apps.agent.spec import AgentPod, read_pod
from lab.apps.server.spec import read_spec_document

PODS_FILE = "pods.json"
ENTRY_FIELDS = ("pod", "terminating")


@dataclass(frozen=True)
class PodList:
    pods: tuple[AgentPod, ...]
    terminating: frozenset[str] = frozenset()

    @property
    def serving(self) -> tuple[AgentPod, ...]:
        """The pods that may be endpoints (not terminating)."""
        return tuple(p for p in self.pods if p.name not in self.terminating)


def write_pod_list(path: Path, entries: Sequence[tuple[dict[str, Any], bool]]) -> None:
    """Each pod (the agent spec's form) and whether it is terminating."""
    write_json_atomic(path, {"pods": [{"pod": pod, "terminating": terminating}
                                      for pod, terminating in entries]})


def read_pod_list(path: Path) -> PodList | None:
    """The list in the file; None without a file. A malformed file raises SpecError
    (lab.apps.server.spec)."""
    if not path.exists():
        return None
    reader, document = read_spec_document(path)
    top = reader.mapping(document, "", ("pods",))
    pods, terminating = [], set()
    for where, item in reader.items(top, "pods"):
        entry = reader.mapping(item, where, ENTRY_FIELDS)
        pod = read_pod(reader, f"{where}.pod", entry.get("pod"))
        pods.append(pod)
        if reader.boolean(entry, "terminating", where):
            terminating.add(pod.name)
    if len({p.name for p in pods}) != len(pods):
        reader.fail("pods", "a pod is listed twice")
    reader.check()
    return PodList(tuple(pods), frozenset(terminating))
