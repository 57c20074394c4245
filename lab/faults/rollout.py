"""``rolling-update``: one cluster's pods replaced as a Deployment's rolling update does it.

The replicas are the cluster's pods (nodes x pods_per_node). Each pod is a slot (its
namespace); a new pod takes its slot's other address (the pod CIDR holds two per slot, the
revisions alternate between them), its own server bound there, and joins the cluster's pod
list (``pods.json`` beside each agent's spec: lab.apps.agent.podlist) unready, until its
node's agent finds it ready (status.json). Old pods are deleted in the order a ReplicaSet
prefers, spread over the nodes (each node's first pod, then each node's second, ...); each new
pod goes to the node of the old pod it replaces. Each round, as the Deployment controller:
- scale up while old + new pods < replicas + surge (``rollout_step``);
- scale down while old + ready new pods - 1 >= replicas - unavailable.

A deleted pod is marked terminating in the pod list at once (its agent takes it out of the
endpoints, after the cluster's control-plane delay, and kube-proxy-like keeps its TCP
connections); its preStop hook sleeps ``pre_stop``, then its server gets SIGTERM and drains
(no new connection, the open ones served), and SIGKILL ``termination_grace`` after the
deletion began. Once it is gone its address leaves the pod's interface and it leaves the list.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any, TypeVar

from lab.apps.agent.podlist import PODS_FILE, write_pod_list
from lab.atomicfile import write_atomic
from lab.backend.inspect import agent_status
from lab.backend.names import node_dir, pod_dir
from lab.backend.state import ProcessRecord
from lab.errors import BackendError, CommandError
from lab.faults.primitives import LabHandle
from lab.plan.model import PodPlan, RolloutPlan
from lab.plan.naming import POD_IFNAME, pod_instance_name
from lab.proc import run

POLL_S = 0.02
STALL_S = 60.0  # beyond pre_stop and the grace period: no progress this long is a failure
SERVER = "server"


def rollout_step(replicas: int, surge: int, unavailable: int, old: int, new: int,
                 new_ready: int) -> tuple[int, int]:
    """(pods to create, old pods to delete) now, as Kubernetes' Deployment controller
    computes them; ``old`` and ``new`` count pods not terminating."""
    create = max(0, min(replicas - new, replicas + surge - old - new))
    delete = max(0, min(old, old + new_ready - (replicas - unavailable)))
    return create, delete


def slot_order(pods: list[PodPlan]) -> list[PodPlan]:
    """The cluster's pods in the order they are replaced: spread over the nodes."""
    return sorted(pods, key=lambda p: (p.index, p.node))


@dataclass
class PodInstance:
    """One pod of a slot at one revision."""

    slot: PodPlan
    revision: int
    per_node: int
    server: ProcessRecord | None = None
    times: dict[str, int] = field(default_factory=dict)  # created, ready, deleted, ...

    @property
    def name(self) -> str:
        return pod_instance_name(self.slot.name, self.revision)

    @property
    def bank(self) -> int:
        return (self.revision - 1) % 2

    @property
    def address(self) -> IPv4Interface:
        return _in_bank(self.slot.address, self.bank * self.per_node)

    @property
    def address6(self) -> IPv6Interface | None:
        base = self.slot.address6
        return None if base is None else _in_bank(base, self.bank * self.per_node)

    def describe(self) -> dict[str, Any]:
        return {"pod": self.name, "address": str(self.address.ip), **self.times}


Interface = TypeVar("Interface", IPv4Interface, IPv6Interface)


def _in_bank(base: Interface, offset: int) -> Interface:
    """The slot's address ``offset`` further on, in the same prefix."""
    return type(base)((base.ip + offset, base.network.prefixlen))


class Rollout:
    """The state of one rolling update and the actions that move it on."""

    def __init__(self, handle: LabHandle, cluster: str, policy: RolloutPlan) -> None:
        self.handle = handle
        self.plan = handle.plan
        self.cluster = self.plan.cluster(cluster)
        self.policy = policy
        self.slots = slot_order([pod for node in self.cluster.nodes
                                 for pod in self.plan.node(node).pods])
        per_node = len(self.plan.node(self.cluster.nodes[0]).pods)
        self.replicas = len(self.slots)
        self.surge, self.unavailable = policy.limits(self.replicas)
        self.revision = read_revision(self.state_file) + 1
        self.old = [PodInstance(s, self.revision - 1, per_node) for s in self.slots]
        self.new: list[PodInstance] = []
        self.terminating: list[PodInstance] = []
        self.gone: list[PodInstance] = []
        self.per_node = per_node
        self.changed_ns = time.monotonic_ns()
        # each node's agent spec lists the pods it knows (its own; all for Cluster services)
        self.agent_pods = {node: json.loads((self.node_folder(node) / "agent.json").read_text(
            encoding="utf-8"))["pods"] for node in self.cluster.nodes}

    @property
    def state_file(self) -> Path:
        return self.handle.state.directory / "rollouts" / f"{self.cluster.name}.json"

    @property
    def done(self) -> bool:
        return not self.old and not self.terminating and all(
            "ready_ns" in p.times for p in self.new) and len(self.new) == self.replicas

    def run(self) -> dict[str, Any]:
        for old in self.old:
            old.server = next(iter(self.handle.processes(old.slot.name, (SERVER,))), None)
        try:
            while not self.done:
                self.round()
                time.sleep(POLL_S)
        finally:
            self.end_terminations()
        self.state_file.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(self.state_file, json.dumps({"revision": self.revision}))
        return {"revision": self.revision, "replicas": self.replicas, "max_surge": self.surge,
                "max_unavailable": self.unavailable, "pre_stop_ms": self.policy.pre_stop_ms,
                "termination_grace_ms": self.policy.termination_grace_ms,
                "new": [p.describe() for p in self.new],
                "old": [p.describe() for p in self.gone],
                # the runner expects these servers gone (lab.run.runner._check_processes)
                "stopped_pids": [p.server.pid for p in self.gone if p.server is not None]}

    def round(self) -> None:
        now = time.monotonic_ns()
        self.observe_readiness(now)
        create, delete = rollout_step(self.replicas, self.surge, self.unavailable,
                                      len(self.old), len(self.new),
                                      sum("ready_ns" in p.times for p in self.new))
        changed = False
        for _ in range(create):
            self.create(self.slots[len(self.new)])
            changed = True
        for _ in range(delete):
            self.delete(self.old.pop(0), now)
            changed = True
        changed |= self.advance_terminations(now)
        if changed:
            self.publish()
            self.changed_ns = now
        limit_s = STALL_S + (self.policy.pre_stop_ms + self.policy.termination_grace_ms) / 1e3
        if now - self.changed_ns > limit_s * 1e9:
            waiting = [p.name for p in self.new if "ready_ns" not in p.times]
            raise BackendError(f"the rolling update of {self.cluster.name} made no progress in "
                               f"{limit_s:.0f} s; new pods not ready: {', '.join(waiting)}")

    def observe_readiness(self, now: int) -> None:
        waiting = [p for p in self.new if "ready_ns" not in p.times]
        for node in {p.slot.node for p in waiting}:
            pods = agent_status(self.handle.state, node).get("pods", {})
            for pod in waiting:
                if pod.slot.node == node and pods.get(pod.name) == "ready":
                    pod.times["ready_ns"] = now
                    self.changed_ns = now

    def create(self, slot: PodPlan) -> None:
        pod = PodInstance(slot, self.revision, self.per_node)
        self.set_addresses(pod, present=True)
        folder = pod_dir(self.handle.state.directory, slot.name)
        spec = json.loads((folder / "server.json").read_text(encoding="utf-8"))
        spec["address"] = str(pod.address.ip)
        if pod.address6 is not None:
            spec["address6"] = str(pod.address6.ip)
        # the slot's spec from now on: a pod restarted later (pod-kill's undo) is this one
        write_atomic(folder / "server.json", json.dumps(spec, indent=1))
        backend = self.handle.backend
        pod.server = backend.start_in_node(
            self.handle.state, slot.name, SERVER,
            backend.app_argv("server", folder / "server.json"),
            folder / f"server-r{self.revision}.log")
        self.handle.replace_process(None, pod.server)
        pod.times["created_ns"] = time.monotonic_ns()
        self.new.append(pod)

    def delete(self, pod: PodInstance, now: int) -> None:
        pod.times["deleted_ns"] = now
        self.terminating.append(pod)

    def advance_terminations(self, now: int) -> bool:
        """preStop over: SIGTERM; grace over: SIGKILL; server gone: address and pod gone."""
        changed = False
        for pod in list(self.terminating):
            if pod.server is None or not self._alive(pod.server):
                self.remove(pod, now)
                changed = True
                continue
            since_ms = (now - pod.times["deleted_ns"]) / 1e6
            if "sigterm_ns" not in pod.times and since_ms >= self.policy.pre_stop_ms:
                self.signal(pod, signal.SIGTERM)
                pod.times["sigterm_ns"] = now
            if "sigkill_ns" not in pod.times and since_ms >= self.policy.termination_grace_ms:
                self.signal(pod, signal.SIGKILL)
                pod.times["sigkill_ns"] = now
        return changed

    def end_terminations(self) -> None:
        """Every pod still terminating killed and removed (the end, or a failed rollout)."""
        for pod in list(self.terminating):
            if pod.server is not None and self._alive(pod.server):
                self.signal(pod, signal.SIGKILL)
                deadline = time.monotonic() + 2.0
                while self._alive(pod.server) and time.monotonic() < deadline:
                    time.sleep(POLL_S)
            self.remove(pod, time.monotonic_ns())
        self.publish()

    def remove(self, pod: PodInstance, now: int) -> None:
        pod.times["gone_ns"] = now
        self.set_addresses(pod, present=False)
        self.terminating.remove(pod)
        self.gone.append(pod)

    def _alive(self, record: ProcessRecord) -> bool:
        return record in self.handle.backend.processes(self.handle.state, record.node,
                                                       (SERVER,))

    def signal(self, pod: PodInstance, sig: signal.Signals) -> None:
        assert pod.server is not None
        self.handle.backend.signal([pod.server], sig)

    def set_addresses(self, pod: PodInstance, present: bool) -> None:
        verb = "add" if present else "del"
        argvs = [["ip", "address", verb, str(pod.address), "dev", POD_IFNAME]]
        if pod.address6 is not None:
            argvs.append(["ip", "-6", "address", verb, str(pod.address6), "dev", POD_IFNAME,
                             *(["nodad"] if present else [])])
        for argv in argvs:
            try:
                run(self.handle.backend.exec_argv(self.handle.state, pod.slot.name, argv))
            except CommandError as exc:
                raise BackendError(f"cannot {verb} {argv[-3]} in pod {pod.slot.name}: "
                                   f"{exc}") from exc

    def publish(self) -> None:
        """Every node's pod list: the slots its agent knows, each with its pods now."""
        by_slot: dict[str, list[tuple[PodInstance, bool]]] = {}
        for pod in self.old + self.new:
            by_slot.setdefault(pod.slot.name, []).append((pod, False))
        for pod in self.terminating:
            by_slot.setdefault(pod.slot.name, []).append((pod, True))
        for node, known in self.agent_pods.items():
            entries = []
            for entry in known:
                for pod, terminating in sorted(by_slot.get(entry["name"], []),
                                               key=lambda item: item[0].revision):
                    listed = dict(entry, name=pod.name, address=str(pod.address.ip))
                    if pod.address6 is not None:
                        listed["address6"] = str(pod.address6.ip)
                    entries.append((listed, terminating))
            write_pod_list(self.node_folder(node) / PODS_FILE, entries)

    def node_folder(self, node: str) -> Path:
        return node_dir(self.handle.state.directory, node)


def read_revision(path: Path) -> int:
    """The cluster's revision: 1 until its first rolling update."""
    try:
        revision = json.loads(path.read_text()).get("revision", 1)
    except (OSError, ValueError, AttributeError):
        return 1
    return revision if isinstance(revision, int) and revision >= 1 else 1
