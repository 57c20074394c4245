"""``rolling-update``: one cluster's pods replaced as a Deployment's rolling update does it.

The replicas are the cluster's pods (nodes x pods_per_node). Each pod is a slot (its
namespace); a new pod takes its slot's other address (the pod CIDR holds two per slot, the
revisions alternate between them: lab.faults.revisions), its own server bound there and the
services' own servers (``workload:``, with the new pod's placeholders), and joins the pod
list (``pods.json`` beside each agent's spec: lab.apps.agent.podlist) unready, until its
node's agent finds it ready (status.json). Old pods are deleted in the order a ReplicaSet
prefers, spread over the nodes (each node's first pod, then each node's second, ...); each new
pod goes to the node of the old pod it replaces. Each round, as the Deployment controller:
- scale up while old + new pods < replicas + surge (``rollout_step``);
- scale down while old + ready new pods - 1 >= replicas - unavailable.

A deleted pod is marked terminating in the pod list at once (its agent takes it out of the
endpoints, after the cluster's control-plane delay, and kube-proxy-like keeps its TCP
connections); its preStop hook sleeps ``pre_stop``, then its servers get SIGTERM (the
built-in one drains: no new connection, the open ones served; a workload does what its
program does on SIGTERM), and SIGKILL ``termination_grace`` after the deletion began. Once
they are gone its address leaves the pod's interface and it leaves the list.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any

from lab.apps.agent.podlist import PODS_FILE, write_pod_list
from lab.atomicfile import write_atomic
from lab.backend import workloads
from lab.backend.inspect import agent_status
from lab.backend.names import mac_address, node_dir, pod_dir
from lab.backend.state import ProcessRecord
from lab.errors import BackendError, CommandError
from lab.faults.primitives import LabHandle
from lab.faults.revisions import pod_at, read_revision, write_revision
from lab.plan.model import LabPlan, PodPlan, RolloutPlan
from lab.plan.naming import POD_BRIDGE, POD_IFNAME, pod_instance_name
from lab.proc import run

POLL_S = 0.02
STALL_S = 60.0  # beyond pre_stop and the grace period: no progress this long is a failure
SERVER = "server"
KINDS = (SERVER, workloads.KIND)


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
    plan: PodPlan  # the slot with this pod's addresses
    server: ProcessRecord | None = None
    workloads: list[ProcessRecord] = field(default_factory=list)
    times: dict[str, int] = field(default_factory=dict)  # created, ready, deleted, ...

    @classmethod
    def of(cls, plan: LabPlan, slot: PodPlan, revision: int) -> PodInstance:
        return cls(slot, revision, pod_at(plan, slot, revision))

    @property
    def name(self) -> str:
        return pod_instance_name(self.slot.name, self.revision)

    @property
    def processes(self) -> list[ProcessRecord]:
        return ([self.server] if self.server is not None else []) + self.workloads

    def describe(self) -> dict[str, Any]:
        return {"pod": self.name, "address": str(self.plan.address.ip), **self.times}


class Rollout:
    """The state of one rolling update and the actions that move it on."""

    def __init__(self, handle: LabHandle, cluster: str, policy: RolloutPlan) -> None:
        self.handle = handle
        self.plan = handle.plan
        self.cluster = self.plan.cluster(cluster)
        self.policy = policy
        self.slots = slot_order([pod for node in self.cluster.nodes
                                 for pod in self.plan.node(node).pods])
        self.replicas = len(self.slots)
        self.surge, self.unavailable = policy.limits(self.replicas)
        self.revision = read_revision(self.lab_directory, cluster) + 1
        self.old = [PodInstance.of(self.plan, s, self.revision - 1) for s in self.slots]
        self.new: list[PodInstance] = []
        self.terminating: list[PodInstance] = []
        self.gone: list[PodInstance] = []
        self.changed_ns = time.monotonic_ns()
        # each node's agent spec lists the pods it knows (its own; all for Cluster services)
        self.agent_pods = {node: json.loads((self.node_folder(node) / "agent.json").read_text(
            encoding="utf-8"))["pods"] for node in self.cluster.nodes}

    @property
    def lab_directory(self) -> Path:
        return self.handle.state.directory

    @property
    def done(self) -> bool:
        return not self.old and not self.terminating and all(
            "ready_ns" in p.times for p in self.new) and len(self.new) == self.replicas

    def run(self) -> dict[str, Any]:
        for old in self.old:
            running = self.handle.processes(old.slot.name, KINDS)
            old.server = next((r for r in running if r.kind == SERVER), None)
            old.workloads = [r for r in running if r.kind == workloads.KIND]
        try:
            while not self.done:
                self.round()
                time.sleep(POLL_S)
        finally:
            self.end_terminations()
        write_revision(self.lab_directory, self.cluster.name, self.revision)
        return {"revision": self.revision, "replicas": self.replicas, "max_surge": self.surge,
                "max_unavailable": self.unavailable, "pre_stop_ms": self.policy.pre_stop_ms,
                "termination_grace_ms": self.policy.termination_grace_ms,
                "new": [p.describe() for p in self.new],
                "old": [p.describe() for p in self.gone],
                # the runner expects these servers gone (lab.run.runner._check_processes)
                "stopped_pids": [r.pid for p in self.gone for r in p.processes]}

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
        pod = PodInstance.of(self.plan, slot, self.revision)
        self.set_addresses(pod, present=True)
        folder = pod_dir(self.lab_directory, slot.name)
        spec = json.loads((folder / "server.json").read_text(encoding="utf-8"))
        spec["pod"] = pod.name  # the name its answers carry
        spec["address"] = str(pod.plan.address.ip)
        if pod.plan.address6 is not None:
            spec["address6"] = str(pod.plan.address6.ip)
        # the slot's spec from now on: a pod restarted later (pod-kill's undo) is this one
        write_atomic(folder / "server.json", json.dumps(spec, indent=1))
        backend = self.handle.backend
        pod.server = backend.start_in_node(
            self.handle.state, slot.name, SERVER,
            backend.app_argv("server", folder / "server.json"),
            folder / f"server-r{self.revision}.log")
        self.handle.replace_process(None, pod.server)
        workloads.write_pod_files(self.lab_directory, self.plan, pod.plan, self.revision)
        pod.workloads = workloads.start_pod(backend, self.handle.state, self.plan, pod.plan,
                                            self.revision)
        for record in pod.workloads:
            self.handle.replace_process(None, record)
        pod.times["created_ns"] = time.monotonic_ns()
        self.new.append(pod)

    def delete(self, pod: PodInstance, now: int) -> None:
        pod.times["deleted_ns"] = now
        self.terminating.append(pod)

    def advance_terminations(self, now: int) -> bool:
        """preStop over: SIGTERM; grace over: SIGKILL; servers gone: address and pod gone."""
        changed = False
        for pod in list(self.terminating):
            if not self._alive(pod):
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
            if self._alive(pod):
                self.signal(pod, signal.SIGKILL)
                deadline = time.monotonic() + 2.0
                while self._alive(pod) and time.monotonic() < deadline:
                    time.sleep(POLL_S)
            self.remove(pod, time.monotonic_ns())
        self.publish()

    def remove(self, pod: PodInstance, now: int) -> None:
        pod.times["gone_ns"] = now
        self.set_addresses(pod, present=False)
        self.terminating.remove(pod)
        self.gone.append(pod)

    def _running(self, pod: PodInstance) -> list[ProcessRecord]:
        alive = self.handle.processes(pod.slot.name, KINDS)
        return [record for record in pod.processes if record in alive]

    def _alive(self, pod: PodInstance) -> bool:
        return bool(self._running(pod))

    def signal(self, pod: PodInstance, sig: signal.Signals) -> None:
        self.handle.backend.signal(self._running(pod), sig)

    def set_addresses(self, pod: PodInstance, present: bool) -> None:
        """The pod's addresses on its interface, and its node's permanent neighbour entries
        for them (as every pod has: lab.backend.netns.netspec says why)."""
        verb = "add" if present else "del"
        # a new pod's IPv4 address is a /32 of its own: in the slot's prefix it would be a
        # secondary address of the first pod's, and when that primary goes the kernel
        # promotes it, losing now and then a packet that arrives meanwhile (seen in tests)
        ipv4 = (pod.plan.address if pod.revision == 1
                else IPv4Interface((pod.plan.address.ip, 32)))
        addresses: list[IPv4Interface | IPv6Interface] = [ipv4] + (
            [pod.plan.address6] if pod.plan.address6 is not None else [])
        mac = mac_address(self.handle.state.lab, pod.slot.name, POD_IFNAME)
        for address in addresses:
            nodad = ["nodad"] if present and address.version == 6 else []
            self._exec(pod.slot.name, ["ip", "address", verb, str(address), "dev", POD_IFNAME,
                                       *nodad], check=True)
            host = str(address.ip)
            neighbour = (["replace", host, "lladdr", mac, "nud", "permanent"] if present
                         else ["del", host])
            # gone already is as good as deleted
            self._exec(pod.slot.node, ["ip", "neigh", *neighbour, "dev", POD_BRIDGE],
                       check=present)

    def _exec(self, node: str, argv: list[str], check: bool) -> None:
        try:
            run(self.handle.backend.exec_argv(self.handle.state, node, argv), check=check)
        except CommandError as exc:
            raise BackendError(f"{' '.join(argv)} failed in {node}: {exc}") from exc

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
                    listed = dict(entry, name=pod.name, address=str(pod.plan.address.ip))
                    if pod.plan.address6 is not None:
                        listed["address6"] = str(pod.plan.address6.ip)
                    if "checks" in entry:  # the workloads' checks, with this pod's {dir}
                        listed["checks"] = workloads.agent_checks(
                            self.lab_directory, self.plan, pod.plan, pod.revision)
                    entries.append((listed, terminating))
            write_pod_list(self.node_folder(node) / PODS_FILE, entries)

    def node_folder(self, node: str) -> Path:
        return node_dir(self.lab_directory, node)
