#!/usr/bin/env python3
"""Fabricate a realistic anycast-lab run directory (docs/run-format.md) without a lab.

The reference lab (topologies/three-sites.yaml: nyc/ams/sin, 4-node clusters behind 4 leafs and 2
spines, transits us-east/eu-west/ap-south, two clients per region) is modelled as a sequence of
routing states; each UDP probe flow and TCP flow is hashed (ECMP) onto a node of the site its
transit prefers, so a fault moves exactly the flows a real fabric would move. Scenarios:

- ``node-crash`` (silent: the node is frozen) on nyc-k8s-n1 at t=5 s, undone at t=12 s; the leaf
  detects it by BFD (300 ms x 3) or by the BGP hold timer (keepalive 1 s, hold 3 s), so the flows
  hashed to that node lose ~0.9 s (BFD) or 2-3 s (hold);
- ``site-isolate`` of nyc (its WAN uplinks blackholed): us clients fail over to ams after BFD
  detection and come back after the undo.

summary.json is written by the runner's own code (``lab.measure.metrics.summary``) from the
fabricated records, as for a real run. Usage::

    python scripts/make_sample_run.py tests/data/sample-runs/20261127-004500-node-crash-bfd
    python scripts/make_sample_run.py OUT --scenario node-crash --detection hold --trials 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lab.measure.metrics.summary import summarize_run

NS_MS = 1_000_000
NS_S = 1_000_000_000
SITES = ("nyc", "ams", "sin")
REGION_SITE = {"us-east": "nyc", "eu-west": "ams", "ap-south": "sin"}
WAN_MS = {frozenset(("us-east", "eu-west")): 38.0, frozenset(("eu-west", "ap-south")): 82.0,
          frozenset(("us-east", "ap-south")): 110.0}
WAN_JITTER_MS = {frozenset(("us-east", "eu-west")): 1.0, frozenset(("eu-west", "ap-south")): 2.0,
                 frozenset(("us-east", "ap-south")): 2.0}
CLIENTS = {"us-c1": ("us-east", 4.0), "us-c2": ("us-east", 12.0), "eu-c1": ("eu-west", 3.0),
           "eu-c2": ("eu-west", 9.0), "ap-c1": ("ap-south", 5.0), "ap-c2": ("ap-south", 15.0)}
SERVICES = {"dns": ("192.0.2.53", "udp", 53), "web": ("192.0.2.80", "tcp", 80)}
NODES = 4
PODS = 2
T0_NS = 7_310_000_000_000  # the lab host's CLOCK_MONOTONIC when the run started
WALL_T0_NS = 1_795_740_300_000_000_000  # 2026-11-27T00:45:00Z
SETTLE_S = 3.0


def node_name(site: str, n: int) -> str:
    return f"{site}-k8s-n{n}"


def site_index(site: str) -> int:
    return SITES.index(site)


def spine_to_leaf_addr(site: str, spine: int, leaf: int) -> tuple[str, str]:
    """(spine side, leaf side) of a spine-leaf /31, as the planner numbers them."""
    base = 16 * site_index(site) + 8 * (spine - 1) + 2 * (leaf - 1)
    return f"10.254.0.{base}", f"10.254.0.{base + 1}"


def leaf_to_node_addr(site: str, n: int) -> tuple[str, str]:
    base = 48 + 8 * site_index(site) + 2 * (n - 1)
    return f"10.254.0.{base}", f"10.254.0.{base + 1}"


def transit_to_spine_addr(site: str, spine: int) -> tuple[str, str]:
    base = 6 + 4 * site_index(site) + 2 * (spine - 1)
    return f"100.64.0.{base}", f"100.64.0.{base + 1}"


def stable_hash(*parts: object) -> int:
    """A deterministic hash (Python's own is salted per process)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class NetState:
    """Where the VIP leads, as seen from each region, from some instant on."""

    home: dict[str, str]  # region -> site its transit sends VIP traffic to
    nodes: dict[str, tuple[int, ...]]  # site -> nodes in the spines' ECMP set
    dead: frozenset[str] = frozenset()  # nodes that drop everything
    detour: frozenset[str] = frozenset()  # dead nodes whose leaf already routes around them
    cut: frozenset[str] = frozenset()  # regions whose VIP traffic is blackholed


@dataclass(frozen=True)
class Answer:
    site: str
    node: str
    pod: str
    rtt_ms: float
    jitter_ms: float


def answer(state: NetState, client: str, h: int) -> Answer | None:
    region, access_ms = CLIENTS[client]
    if region in state.cut:
        return None
    site = state.home[region]
    nodes = state.nodes[site]
    n = nodes[h % len(nodes)]
    name = node_name(site, n)
    if name in state.detour:  # the leaf sends it back up; the spines hash it again
        alive = [m for m in nodes if m != n]
        n = alive[(h // 7) % len(alive)]
        name = node_name(site, n)
    if name in state.dead:
        return None
    site_region = next(r for r, s in REGION_SITE.items() if s == site)
    wan = frozenset((region, site_region))
    one_way = access_ms + 1.0 + WAN_MS.get(wan, 0.0)
    pod = f"{site}-k8s-n{n}-p{(h // 16) % PODS + 1}"
    return Answer(site, name, pod, round(2 * one_way + 0.15, 3), WAN_JITTER_MS.get(wan, 0.0))


@dataclass
class TrialPlan:
    trial: int
    start_ns: int
    end_ns: int
    states: list[tuple[int, NetState]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    routes: list[tuple[int, str, str]] = field(default_factory=list)  # t, router, nexthops


def initial_state() -> NetState:
    return NetState(home=dict(REGION_SITE), nodes={s: tuple(range(1, NODES + 1)) for s in SITES})


def initial_fib(state: NetState) -> dict[str, list[str]]:
    fib: dict[str, list[str]] = {}
    for region, site in state.home.items():
        fib[region] = [transit_to_spine_addr(site, s)[1] for s in (1, 2)]
    for site in SITES:
        for spine in (1, 2):
            fib[f"{site}-s{spine}"] = [spine_to_leaf_addr(site, spine, n)[1]
                                       for n in state.nodes[site]]
        for n in range(1, NODES + 1):
            fib[f"{site}-l{n}"] = [leaf_to_node_addr(site, n)[1]]
    return fib


def ev(t_ns: int, trial: int, source: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"t_ns": int(t_ns), "trial": trial, "source": source, "kind": kind, **extra}


def session_events(t_ns: int, trial: int, pairs: Sequence[tuple[str, str]], up: bool,
                   reason: str, bfd: bool) -> list[dict[str, Any]]:
    out = []
    for i, (router, peer) in enumerate(pairs):
        t = t_ns + i * 180_000
        if bfd:
            out.append(ev(t, trial, "bfd", "bfd_up" if up else "bfd_down", router=router,
                          peer=peer, reason="up" if up else "control-detection-time-expired"))
        out.append(ev(t + (2_500_000 if up else 400_000), trial, "bgp",
                      "session_up" if up else "session_down", router=router, peer=peer,
                      reason=reason))
    return out


def plan_node_crash(plan: TrialPlan, rng: np.random.Generator, settings: Settings) -> None:
    """nyc-k8s-n1 frozen, then thawed; nyc-l1 detects it by BFD or by the hold timer."""
    detection = settings.detection
    t_fault = plan.start_ns + int(settings.fault_at_s * NS_S)
    t_undo = plan.start_ns + int(settings.undo_at_s * NS_S)
    victim, leaf = "nyc-k8s-n1", "nyc-l1"
    if detection == "bfd":
        detect = int((900 - rng.uniform(0, 60)) * NS_MS)
        reason = "BFD peer down"
    else:
        detect = int((3000 - rng.uniform(0, 1000)) * NS_MS)
        reason = "Hold Timer Expired"
    t_detect = t_fault + detect
    t_leaf = t_detect + int(rng.uniform(2.0, 4.0) * NS_MS)
    t_spines = t_leaf + int(rng.uniform(5.0, 12.0) * NS_MS)
    base = initial_state()
    crashed = replace(base, dead=frozenset({victim}))
    plan.states += [(t_fault, crashed), (t_leaf, replace(crashed, detour=frozenset({victim}))),
                    (t_spines, replace(base, nodes={**base.nodes, "nyc": (2, 3, 4)}))]
    plan.events.append(ev(t_fault, plan.trial, "injector", "fault", step=0, fault="node-crash",
                          target=victim, done_ns=t_fault + 2_140_000, cycle=0,
                          details={"frozen_pids": [4711, 4712, 4730, 4731],
                                   "interfaces": ["nyc-l1"]}))
    plan.events += session_events(t_detect, plan.trial, [(leaf, victim)], False, reason,
                                  bfd=detection == "bfd")
    spine_side = [spine_to_leaf_addr("nyc", s, 1)[0] for s in (1, 2)]
    plan.routes.append((t_leaf, leaf, ",".join(spine_side)))
    for s in (1, 2):
        hops = [spine_to_leaf_addr("nyc", s, n)[1] for n in (2, 3, 4)]
        plan.routes.append((t_spines + s * 410_000, f"nyc-s{s}", ",".join(hops)))
    t_up = t_undo + int(rng.uniform(1900, 2300) * NS_MS)
    plan.events.append(ev(t_undo, plan.trial, "injector", "undo", step=0, fault="node-crash",
                          target=victim, done_ns=t_undo + 1_870_000, cycle=0,
                          details={"thawed_pids": [4711, 4712, 4730, 4731],
                                   "at_trial_end": False}))
    plan.events += session_events(t_up, plan.trial, [(leaf, victim)], True, "Established",
                                  bfd=detection == "bfd")
    for service in SERVICES:
        plan.events.append(ev(t_up + 3_000_000, plan.trial, "agent", "announce", node=victim,
                              service=service, vip=SERVICES[service][0]))
    t_back = t_up + int(rng.uniform(8, 20) * NS_MS)
    plan.states.append((t_back, base))
    plan.routes.append((t_back, leaf, leaf_to_node_addr("nyc", 1)[1]))
    for s in (1, 2):
        hops = [spine_to_leaf_addr("nyc", s, n)[1] for n in range(1, NODES + 1)]
        plan.routes.append((t_back + int(rng.uniform(3, 9) * NS_MS), f"nyc-s{s}",
                            ",".join(hops)))


def plan_site_isolate(plan: TrialPlan, rng: np.random.Generator, settings: Settings) -> None:
    """nyc's WAN uplinks blackholed: us-east fails over to eu-west (ams) once BFD on the WAN
    sessions (always on in the reference lab) notices."""
    t_fault = plan.start_ns + int(settings.fault_at_s * NS_S)
    t_undo = plan.start_ns + int(settings.undo_at_s * NS_S)
    base = initial_state()
    t_detect = t_fault + int((900 - rng.uniform(0, 80)) * NS_MS)
    t_fib = t_detect + int(rng.uniform(3.0, 6.0) * NS_MS)
    plan.states += [(t_fault, replace(base, cut=frozenset({"us-east"}))),
                    (t_fib, replace(base, home={**base.home, "us-east": "ams"}))]
    plan.events.append(ev(t_fault, plan.trial, "injector", "fault", step=0,
                          fault="site-isolate", target="nyc", done_ns=t_fault + 3_900_000,
                          cycle=0, details={"links": ["us-east--nyc-s1", "us-east--nyc-s2"]}))
    pairs = [("us-east", "nyc-s1"), ("nyc-s1", "us-east"), ("us-east", "nyc-s2"),
             ("nyc-s2", "us-east")]
    plan.events += session_events(t_detect, plan.trial, pairs, False, "BFD peer down", True)
    plan.routes.append((t_fib, "us-east", "100.64.0.1"))
    plan.events.append(ev(t_undo, plan.trial, "injector", "undo", step=0, fault="site-isolate",
                          target="nyc", done_ns=t_undo + 3_100_000, cycle=0,
                          details={"links": ["us-east--nyc-s1", "us-east--nyc-s2"],
                                   "at_trial_end": False}))
    t_up = t_undo + int(rng.uniform(1500, 2500) * NS_MS)
    plan.events += session_events(t_up, plan.trial, pairs, True, "Established", True)
    t_back = t_up + int(rng.uniform(30, 60) * NS_MS)
    plan.states.append((t_back, base))
    plan.routes.append((t_back, "us-east", ",".join(transit_to_spine_addr("nyc", s)[1]
                                                    for s in (1, 2))))


@dataclass(frozen=True)
class Settings:
    scenario: str
    detection: str
    trials: int
    flows: int
    tcp_flows: int
    interval_ms: float
    duration_s: float
    services: tuple[str, ...]
    seed: int
    background_loss: float = 0.0
    fault_at_s: float = 5.0
    undo_at_s: float = 12.0

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.detection}"


SCENARIOS = {"node-crash": plan_node_crash, "site-isolate": plan_site_isolate}


def plan_trials(settings: Settings, rng: np.random.Generator) -> list[TrialPlan]:
    plans = []
    start = T0_NS + 2 * NS_S
    for trial in range(settings.trials):
        end = start + int(settings.duration_s * NS_S)
        plan = TrialPlan(trial, start, end, states=[(start, initial_state())])
        plan.events.append(ev(start, trial, "runner", "trial_start"))
        plan.events.append(ev(start + int(SETTLE_S * NS_S), trial, "runner", "settled"))
        SCENARIOS[settings.scenario](plan, rng, settings)
        plan.events.append(ev(end, trial, "runner", "trial_end"))
        plan.states.sort(key=lambda item: item[0])
        plans.append(plan)
        start = end + int(rng.uniform(3.0, 4.0) * NS_S)  # recovery between trials
    return plans


def lane_probes(plan: TrialPlan, settings: Settings, client: str, service: str, flow: int,
                rng: np.random.Generator) -> dict[str, Any]:
    """The probes of one client/service/flow in one trial: sends every interval, each
    answered (or lost) according to the routing state at its send instant."""
    interval_ns = int(settings.interval_ms * NS_MS)
    count = int((plan.end_ns - plan.start_ns) // interval_ns)
    seq = np.arange(count, dtype=np.int64)
    phase = int(rng.integers(0, interval_ns))
    send = plan.start_ns + phase + seq * interval_ns
    h = stable_hash(client, service, plan.trial, "udp") + flow  # new source ports per trial
    answers = [answer(state, client, h) for _, state in plan.states]
    index = np.searchsorted([t for t, _ in plan.states], send, side="right") - 1
    lost = np.array([a is None for a in answers])[index]
    lost |= rng.random(count) < settings.background_loss
    base = np.array([a.rtt_ms if a else np.nan for a in answers])[index]
    jitter = np.array([a.jitter_ms if a else 0.0 for a in answers])[index]
    noise = (np.abs(rng.normal(0.0, 1.0, count)) * jitter + rng.exponential(0.04, count)
             + (rng.random(count) < 1e-3) * rng.uniform(1.0, 5.0, count))
    rtt_ns = np.round((base + noise) * 100) * 10_000  # 10 us resolution keeps the file small
    recv = np.where(lost, np.nan, send + rtt_ns)
    names = {key: np.array([getattr(a, key) if a else None for a in answers], dtype=object)
             for key in ("site", "node", "pod")}
    nothing = np.full(count, None, dtype=object)
    cols = {key: np.where(lost, nothing, values[index]) for key, values in names.items()}
    cols["cluster"] = np.array([f"{s}-k8s" if s else None for s in cols["site"]], dtype=object)
    recv_arr = pa.array(recv, mask=lost, type=pa.float64()).cast(pa.int64())
    rtt_arr = pa.array(np.where(lost, np.nan, rtt_ns / NS_MS), mask=lost, type=pa.float64())
    return {"trial": np.full(count, plan.trial, dtype=np.int16), "client": [client] * count,
            "service": [service] * count, "flow": np.full(count, flow, dtype=np.int16),
            "seq": seq, "send_ns": send, "recv_ns": recv_arr, "rtt_ms": rtt_arr, **cols}


PROBE_SCHEMA = pa.schema([
    ("trial", pa.int16()), ("client", pa.string()), ("service", pa.string()),
    ("flow", pa.int16()), ("seq", pa.int64()), ("send_ns", pa.int64()), ("recv_ns", pa.int64()),
    ("rtt_ms", pa.float64()), ("site", pa.string()), ("cluster", pa.string()),
    ("node", pa.string()), ("pod", pa.string())])
ROUTE_SCHEMA = pa.schema([
    ("trial", pa.int16()), ("t_ns", pa.int64()), ("router", pa.string()),
    ("prefix", pa.string()), ("action", pa.string()), ("nexthops", pa.string()),
    ("n_nexthops", pa.int16())])


def probe_table(plans: list[TrialPlan], settings: Settings,
                rng: np.random.Generator) -> pa.Table:
    tables = []
    for plan in plans:
        for client in CLIENTS:
            for service in settings.services:
                for flow in range(settings.flows):
                    lane = lane_probes(plan, settings, client, service, flow, rng)
                    tables.append(pa.table(lane, schema=PROBE_SCHEMA))
    return pa.concat_tables(tables)  # per trial, client, service and flow, as the runner writes


def route_table(plans: list[TrialPlan]) -> pa.Table:
    """Every change, per service prefix, plus the recorder's initial dump before trial 0."""
    rows: list[tuple[int, int, str, str, str]] = []
    dump_ns = plans[0].start_ns - int(1.2 * NS_S)
    for router, dumped in sorted(initial_fib(initial_state()).items()):
        rows.append((0, dump_ns, router, ",".join(sorted(dumped)), "add"))
    for plan in plans:
        rows += [(plan.trial, t, router, ",".join(sorted(h.split(","))), "add")
                 for t, router, h in plan.routes]
    out: dict[str, list[Any]] = {name: [] for name in ROUTE_SCHEMA.names}
    for trial, t, router, hops, action in sorted(rows, key=lambda r: (r[1], r[2])):
        for k, (_, (vip, _, _)) in enumerate(sorted(SERVICES.items())):
            values = (trial, t + k * 37_000, router, f"{vip}/32", action, hops,
                      len(hops.split(",")) if hops else 0)
            for name, value in zip(ROUTE_SCHEMA.names, values, strict=True):
                out[name].append(value)
    return pa.table(out, schema=ROUTE_SCHEMA)


def tcp_events(plans: list[TrialPlan], settings: Settings,
               rng: np.random.Generator) -> list[dict[str, Any]]:
    """Long-lived TCP flows to the tcp services: reset when ECMP or catchment moves them to
    another node, timed out when they stall for a second, reconnected 100 ms later."""
    out: list[dict[str, Any]] = []
    tcp_services = [s for s, (_, proto, _) in SERVICES.items() if proto == "tcp"]
    for plan in plans:
        for client in CLIENTS:
            for service in tcp_services:
                for flow in range(settings.tcp_flows):
                    out += _tcp_flow(plan, client, service, flow, rng)
    return out


def _tcp_flow(plan: TrialPlan, client: str, service: str, flow: int,
              rng: np.random.Generator) -> list[dict[str, Any]]:
    h = stable_hash(client, service, plan.trial, "tcp", flow)  # ephemeral ports
    keys = {"client": client, "service": service, "flow": flow}

    def connected(t: int, a: Answer) -> dict[str, Any]:
        return ev(t, plan.trial, "tcp", "flow_connected", **keys, site=a.site, node=a.node,
                  pod=a.pod)

    def broken(t: int, a: Answer, reason: str) -> dict[str, Any]:
        return ev(t, plan.trial, "tcp", "flow_broken", **keys, reason=reason, site=a.site,
                  node=a.node)

    current = answer(plan.states[0][1], client, h)
    assert current is not None
    out = [connected(plan.start_ns + int(rng.uniform(20, 80) * NS_MS), current)]
    stalled_since: int | None = None
    reconnect_at: int | None = None  # a new connection is being opened until then
    for t, state in plan.states[1:]:
        if reconnect_at is not None and t >= reconnect_at:
            out.append(connected(reconnect_at, current))
            reconnect_at = None
        now = answer(state, client, h)
        if now is None:
            stalled_since = stalled_since or t
            continue
        if reconnect_at is not None:  # the new connection goes wherever the hash leads now
            current = now
        elif stalled_since is not None and t - stalled_since > NS_S:
            out.append(broken(stalled_since + NS_S, current, "timeout"))
            current, reconnect_at = now, t + int((100 + now.rtt_ms) * NS_MS)
        elif now.node != current.node:
            t_rst = t + int(now.rtt_ms / 2 * NS_MS)
            out.append(broken(t_rst, current, "reset"))
            current, reconnect_at = now, t_rst + int((100 + now.rtt_ms) * NS_MS)
        stalled_since = None
    if reconnect_at is not None and reconnect_at < plan.end_ns:
        out.append(connected(reconnect_at, current))
    return out


def topology_document() -> dict[str, Any]:
    bgp = {"keepalive": "3s", "hold": "9s", "connect_retry": "2s", "ecmp": 16,
           "bfd": {"interval": "300ms", "multiplier": 3}}
    return {"name": "three-sites", "defaults": {"bgp": bgp},
            "sites": [{"name": s, "fabric": {"spines": 2, "leafs": NODES},
                       "clusters": [{"name": f"{s}-k8s", "nodes": NODES,
                                     "pods_per_node": PODS}]} for s in SITES],
            "services": [{"name": n, "vip": v, "protocol": p, "port": port}
                         for n, (v, p, port) in SERVICES.items()],
            "clients": [{"name": c, "transit": r, "delay": f"{d:g}ms"}
                        for c, (r, d) in CLIENTS.items()]}


DESCRIPTIONS = {
    "node-crash": "A Kubernetes node in New York freezes (processes stopped, links silent); its "
                  "leaf must detect the failure before the flows hashed to it are rerouted to "
                  "the other nodes of the site.",
    "site-isolate": "New York loses its WAN uplinks silently; the US transit must fail over to "
                    "Amsterdam.",
}


def timers(settings: Settings) -> dict[str, Any]:
    site: dict[str, Any]
    if settings.detection == "hold":
        site = {"keepalive_s": 1, "hold_s": 3, "connect_retry_s": 1, "ecmp": 16, "bfd": None}
    else:
        site = {"keepalive_s": 3, "hold_s": 9, "connect_retry_s": 2, "ecmp": 16,
                "bfd": {"interval_ms": 300, "multiplier": 3}}
    wan = {"keepalive_s": 3, "hold_s": 9, "connect_retry_s": 2, "ecmp": 16,
           "bfd": {"interval_ms": 300, "multiplier": 3}}
    return {**dict.fromkeys(SITES, site), "wan": wan}


def description(settings: Settings) -> str:
    how = ("Detection by the BGP hold timer only (keepalive 1 s, hold 3 s, no BFD)."
           if settings.detection == "hold" else "BFD (300 ms x 3) on every session.")
    return (f"{DESCRIPTIONS[settings.scenario]} {how} The fault is undone after "
            f"{settings.undo_at_s - settings.fault_at_s:g} s.")


def run_meta(settings: Settings, run_id: str) -> dict[str, Any]:
    target = "nyc-k8s-n1" if settings.scenario == "node-crash" else "nyc"
    scenario_doc = {
        "name": settings.name, "description": description(settings),
        "topology": "topologies/three-sites.yaml", "settle": f"{SETTLE_S:g}s",
        "tail": f"{settings.duration_s - settings.undo_at_s:g}s",
        "repeat": settings.trials,
        "probe": {"interval": f"{settings.interval_ms:g}ms", "flows": settings.flows,
                  "tcp_flows": settings.tcp_flows},
        "steps": [{"fault": settings.scenario, "target": target,
                   "at": f"{settings.fault_at_s - SETTLE_S:g}s",
                   "duration": f"{settings.undo_at_s - settings.fault_at_s:g}s"}]}
    if settings.detection == "hold":
        scenario_doc["bgp"] = {"keepalive": "1s", "hold": "3s", "bfd": None}
    return {
        "format": 1, "run_id": run_id, "lab": "three-sites", "complete": True,
        "interrupted": False, "started_wall": "2026-11-27T00:45:00+00:00",
        "clock": {"monotonic_ns": T0_NS, "realtime_ns": WALL_T0_NS},
        "scenario": {"name": settings.name, "description": description(settings),
                     "file": f"scenarios/{settings.name}.yaml", "document": scenario_doc},
        "topology": {"name": "three-sites", "file": "topologies/three-sites.yaml",
                     "document": topology_document()},
        "timers": timers(settings),
        "probe": {"interval_ms": settings.interval_ms, "flows": settings.flows,
                  "tcp_flows": settings.tcp_flows, "clients": list(CLIENTS),
                  "services": list(SERVICES)},
        "trials": settings.trials,
        "versions": {"anycast_lab": "0.1.0", "frr": "8.4.4", "gobgp": "3.10.0",
                     "kernel": "6.8.0-48-generic", "python": "3.11.7"},
        "host": {"cores": 2, "memory_gb": 23.4, "impairment_driver": "userspace"}}


def write_run(out: Path, settings: Settings) -> Path:
    rng = np.random.default_rng(settings.seed)
    plans = plan_trials(settings, rng)
    events = [e for plan in plans for e in plan.events] + tcp_events(plans, settings, rng)
    events.sort(key=lambda e: e["t_ns"])
    probes = probe_table(plans, settings, rng)
    routes = route_table(plans)
    out.mkdir(parents=True, exist_ok=True)
    meta = run_meta(settings, out.name)
    (out / "run.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (out / "events.jsonl").write_text(
        "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events), encoding="utf-8")
    pq.write_table(probes, out / "probes.parquet", compression="zstd", compression_level=9,
                   use_dictionary=["client", "service", "site", "cluster", "node", "pod",
                                   "rtt_ms"],
                   column_encoding={"send_ns": "DELTA_BINARY_PACKED",
                                    "recv_ns": "DELTA_BINARY_PACKED",
                                    "seq": "DELTA_BINARY_PACKED"})
    pq.write_table(routes, out / "routes.parquet", compression="zstd")
    summary = summarize_run(
        scenario=settings.name, complete=True, probes=probes.to_pandas(),
        routes=routes.to_pandas(), events=events, interval_ms=settings.interval_ms,
        trial_bounds=[(trial, plan.start_ns, plan.end_ns) for trial, plan in enumerate(plans)])
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the run directory to write")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="node-crash")
    parser.add_argument("--detection", choices=["bfd", "hold"], default="bfd")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--flows", type=int, default=6, help="UDP flows per client and service")
    parser.add_argument("--tcp-flows", type=int, default=2)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument("--duration-s", type=float, default=20.0, help="length of one trial")
    parser.add_argument("--fault-at-s", type=float, default=5.0, help="from the trial start")
    parser.add_argument("--undo-at-s", type=float, default=12.0, help="from the trial start")
    parser.add_argument("--services", default="dns",
                        help="services probed over UDP (the runner probes the udp ones)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--background-loss", type=float, default=0.0,
                        help="probability that any probe is lost (e.g. 2e-5)")
    args = parser.parse_args(argv)
    settings = Settings(args.scenario, args.detection, args.trials, args.flows, args.tcp_flows,
                        args.interval_ms, args.duration_s, tuple(args.services.split(",")),
                        args.seed, args.background_loss, args.fault_at_s, args.undo_at_s)
    path = write_run(args.out, settings)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
