"""Load a scenario, check it against the lab it runs on, and turn its steps into a schedule.

Every problem is reported at once with file, line, YAML path and hint, like topologies.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lab.errors import InputIssue, ScenarioError, TopologyError
from lab.plan.model import LabPlan, LinkKind, LinkPlan, Role, RolloutPlan
from lab.plan.planner import build_plan
from lab.scenario.model import (
    FAMILY_FAULTS,
    SCENARIO_FIELD_HINTS,
    TARGET_KINDS,
    Expectation,
    Scenario,
    Step,
    TargetSelector,
)
from lab.source.yamldoc import SourceDocument, parse_yaml_text, read_yaml_file
from lab.topology.model import Topology
from lab.topology.validate import schema_issues, unknown_issue, validate_document

EMULATED_LINKS = frozenset({LinkKind.WAN, LinkKind.UPLINK, LinkKind.ACCESS})
# link faults whose `serving:` target means the link between the serving node and its leaf
SERVING_LINK_FAULTS = frozenset({"link-down", "link-blackhole", "link-flap",
                                 "bgp-session-shutdown"})


@dataclass(frozen=True)
class Action:
    """One thing the injector does at one instant (ms after the timeline starts)."""

    t_ms: float
    step: int
    kind: str  # "fault" or "undo"
    fault: str
    spec: Step
    cycle: int = 0


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    file: Path
    document: dict[str, Any]
    topology_file: Path
    topology_document: dict[str, Any]
    topology_yaml: str  # the topology as it will run (with the scenario's BGP overrides)
    plan: LabPlan
    actions: tuple[Action, ...]
    lab_name: str

    @property
    def timeline_ms(self) -> float:
        return max((a.t_ms for a in self.actions), default=0.0)


SCENARIO_KEYS = frozenset({"steps", "probe", "expect", "settle", "tail", "recover_timeout"})


def looks_like_scenario(path: Path) -> bool:
    """Whether a YAML file is a scenario rather than a topology (by its top-level keys: a
    scenario has `steps:`; a topology has `sites:`). Unreadable files count as neither."""
    doc, issues = read_yaml_file(path)
    if issues or not isinstance(doc.data, dict):
        return False
    keys = set(doc.data)
    return bool(keys & SCENARIO_KEYS) and "sites" not in keys


def check_scenario_files(paths: list[Path]) -> list[InputIssue]:
    """Every problem of each scenario file, its topology and the references between them,
    without building anything."""
    issues: list[InputIssue] = []
    for path in paths:
        try:
            load_scenario(path)
        except (ScenarioError, TopologyError) as exc:
            issues.extend(exc.issues)
    return issues


def load_scenario(path: Path, topology_override: Path | None = None) -> LoadedScenario:
    doc, issues = read_yaml_file(path)
    if issues:
        raise ScenarioError(issues)
    if not isinstance(doc.data, dict):
        raise ScenarioError([doc.issue((), "the document is not a mapping",
                                       "a scenario has `name:`, `steps:` ... (see scenarios/)")])
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        raise ScenarioError([_with_scenario_hint(i) for i in
                             schema_issues(exc, doc, Scenario)]) from None
    topology_file = topology_override or _find_topology(scenario.topology, path, doc)
    topo_doc, topology, changed = _effective_topology(scenario, topology_file)
    plan = build_plan(topology)
    problems = list(_check_references(scenario, plan, doc))
    if problems:
        raise ScenarioError(problems)
    return LoadedScenario(
        scenario, path, doc.data, topology_file, topo_doc,
        yaml.safe_dump(topo_doc, sort_keys=False), plan, tuple(build_schedule(scenario)),
        _lab_name(scenario, topology) if changed else topology.name)


def _with_scenario_hint(issue: InputIssue) -> InputIssue:
    if issue.hint:
        return issue
    field = issue.path.rsplit(".", 1)[-1].split("[")[0]
    hint = SCENARIO_FIELD_HINTS.get(field, "")
    if "`fault:` or a `wait:`" in issue.message or "needs a `target:`" in issue.message:
        hint = "write `- {fault: node-crash, target: nyc-k8s-n1, duration: 5s}` or `- {wait: 2s}`"
    return InputIssue(issue.file, issue.line, issue.path, issue.message, hint)


def _find_topology(name: str, scenario_file: Path, doc: SourceDocument) -> Path:
    candidate = Path(name)
    options = [candidate] if candidate.is_absolute() else [
        Path.cwd() / candidate, scenario_file.parent / candidate,
        scenario_file.parent.parent / candidate]
    for option in options:
        if option.is_file():
            return option
    raise ScenarioError([doc.issue(["topology"], f"topology file {name!r} not found",
                                   "give a path relative to the current folder or the "
                                   "scenario's folder, or pass --topology FILE")])


def _effective_topology(scenario: Scenario,
                        topology_file: Path) -> tuple[dict[str, Any], Topology, bool]:
    """The topology with the scenario's BGP overrides, and whether they changed the plan."""
    source, issues = read_yaml_file(topology_file)
    if issues:
        raise TopologyError(issues)
    topology = validate_document(source)
    document: dict[str, Any] = copy.deepcopy(source.data)
    original = topology
    if scenario.bgp is not None:
        overrides = scenario.bgp.model_dump(exclude_none=True, exclude_unset=True)
        defaults = document.setdefault("defaults", {})
        bgp = defaults.setdefault("bgp", {})
        bgp.update(_as_yaml_values(overrides))
        merged, _ = parse_yaml_text(yaml.safe_dump(document), str(topology_file))
        topology = validate_document(merged)
    changed = build_plan(topology).to_dict() != build_plan(original).to_dict()
    return document, topology, changed


def _as_yaml_values(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validated values (ms numbers) back into the file's notation (strings with units)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "bfd":
            out[key] = False if not value.get("enabled", True) else {
                "interval": f"{value.get('interval', 300):g}ms",
                "multiplier": value.get("multiplier", 3)}
        elif key == "ecmp":
            out[key] = value
        else:
            out[key] = f"{value:g}ms"
    return out


def _lab_name(scenario: Scenario, topology: Topology) -> str:
    if scenario.bgp is None:
        return topology.name
    digest = hashlib.sha256(json.dumps(scenario.bgp.model_dump(mode="json"),
                                       sort_keys=True).encode()).hexdigest()[:5]
    return f"{topology.name[:18]}-{digest}"


def build_schedule(scenario: Scenario) -> list[Action]:
    """Steps -> instants. A step with `at:` happens at that offset; otherwise after the
    previous step (after its `duration` when it has one, or its `wait`)."""
    actions: list[Action] = []
    cursor = 0.0
    for index, step in enumerate(scenario.steps):
        start = step.at if step.at is not None else cursor
        if step.wait is not None:
            cursor = start + step.wait
            continue
        assert step.fault is not None
        if step.fault == "link-flap":
            period = step.period or 2000.0
            for cycle in range(step.count or 3):
                down = start + cycle * period
                actions.append(Action(down, index, "fault", step.fault, step, cycle))
                actions.append(Action(down + period / 2, index, "undo", step.fault, step, cycle))
            cursor = start + (step.count or 3) * period
            continue
        actions.append(Action(start, index, "fault", step.fault, step))
        if step.duration is not None:
            actions.append(Action(start + step.duration, index, "undo", step.fault, step))
        cursor = start + (step.duration or 0.0)
    return sorted(actions, key=lambda a: (a.t_ms, a.kind != "undo", a.step))


def find_link(plan: LabPlan, target: str) -> LinkPlan | None:
    ends = target.split("--")
    if len(ends) != 2:
        return None
    for link in plan.links:
        if {link.a.node, link.b.node} == set(ends):
            return link
    return None


def _check_references(scenario: Scenario, plan: LabPlan,
                      doc: SourceDocument) -> list[InputIssue]:
    issues: list[InputIssue] = []
    clients = [n.name for n in plan.nodes_with_role(Role.CLIENT)]
    services = [s.name for s in plan.services]
    for key, known, what in (("clients", clients, "client"), ("services", services, "service")):
        chosen = getattr(scenario.probe, key)
        if chosen != "all":
            issues += [unknown_issue(name, known, what, ["probe", key, i], doc)
                       for i, name in enumerate(chosen) if name not in known]
    for index, step in enumerate(scenario.steps):
        if step.fault is not None:
            issues += _check_step(step, index, plan, doc, clients, services)
    for index, expect in enumerate(scenario.expect):
        issues += _check_expectation(scenario, expect, ["expect", index], plan, doc, clients,
                                     services)
    return issues


def _check_expectation(scenario: Scenario, expect: Expectation, parts: list[str | int],
                       plan: LabPlan, doc: SourceDocument, clients: list[str],
                       services: list[str]) -> list[InputIssue]:
    """An expectation must be able to match: its step, fault, client, service and site exist
    in the scenario and the lab."""
    issues = []
    faults = [(i, s.fault) for i, s in enumerate(scenario.steps) if s.fault is not None]
    if expect.step is not None and expect.step not in [i for i, _ in faults]:
        issues.append(doc.issue([*parts, "step"], f"step {expect.step} is not a fault step",
                                "fault steps: " + ", ".join(f"{i} ({f})" for i, f in faults)))
    if expect.fault is not None and not any(f == expect.fault and expect.step in (None, i)
                                            for i, f in faults):
        issues.append(doc.issue([*parts, "fault"], f"no step of the scenario is a "
                                f"{expect.fault}{'' if expect.step is None else ' at that step'}",
                                "faults of the scenario: "
                                + ", ".join(sorted({str(f) for _, f in faults}))))
    if expect.client is not None and expect.client not in clients:
        issues.append(unknown_issue(expect.client, clients, "client", [*parts, "client"], doc))
    if expect.service is not None and expect.service not in services:
        issues.append(unknown_issue(expect.service, services, "service", [*parts, "service"],
                                    doc))
    sites = [s.name for s in plan.sites]
    wanted = [expect.site_after] if isinstance(expect.site_after, str) else (
        expect.site_after or [])
    for index, site in enumerate(wanted):
        where: list[str | int] = [*parts, "site_after"]
        if not isinstance(expect.site_after, str):
            where.append(index)
        if site not in sites:
            issues.append(unknown_issue(site, sites, "site", where, doc))
    return issues


def _check_family(step: Step, index: int, plan: LabPlan,
                  doc: SourceDocument) -> list[InputIssue]:
    """`family:` only on the faults that act per family, and only a family the lab has."""
    if step.family is None:
        return []
    parts: list[str | int] = ["steps", index, "family"]
    if step.fault not in FAMILY_FAULTS:
        return [doc.issue(parts, f"{step.fault} acts on every family; `family:` does not "
                          "apply", "`family:` goes with " + ", ".join(sorted(FAMILY_FAULTS)))]
    if step.family not in plan.families:
        return [doc.issue(parts, f"the lab carries no {step.family}",
                          "use a dual-stack topology (a service with a `vip6:`), e.g. "
                          "--topology topologies/three-sites-dual.yaml")]
    link = find_link(plan, step.target) if isinstance(step.target, str) else None
    if step.fault == "bgp-session-shutdown" and link is not None \
            and step.family not in link.families:
        return [doc.issue(parts, f"link {link.id} carries no {step.family} session",
                          "it carries " + " and ".join(link.families))]
    return []


def _check_transit(step: Step, index: int, plan: LabPlan,
                   doc: SourceDocument) -> list[InputIssue]:
    """`transit:` names one of the target site's uplinks (uplink-shutdown only)."""
    if step.transit is None:
        return []
    parts: list[str | int] = ["steps", index, "transit"]
    if step.fault != "uplink-shutdown":
        return [doc.issue(parts, f"`transit:` does not apply to {step.fault}",
                          "`transit:` chooses the uplink of an uplink-shutdown")]
    sites = {site.name: site for site in plan.sites}
    if isinstance(step.target, str) and step.target in sites:
        transits = list(sites[step.target].transits)
        if step.transit not in transits:
            return [unknown_issue(step.transit, transits, f"uplink of {step.target} to a transit",
                                  parts, doc)]
    return []


DRAIN_FAULTS = frozenset({"site-drain", "node-drain"})
NODE_OPERATION_FAULTS = frozenset({"node-drain", "speaker-restart"})


def _check_drain(step: Step, index: int, doc: SourceDocument) -> list[InputIssue]:
    """`method:` and `prepend:` go with the drains; `withdraw` with node-drain only."""
    issues = []
    for field in ("method", "prepend"):
        if getattr(step, field) is not None and step.fault not in DRAIN_FAULTS:
            issues.append(doc.issue(["steps", index, field],
                                    f"`{field}:` does not apply to {step.fault}",
                                    "it goes with site-drain and node-drain"))
    if step.method == "withdraw" and step.fault == "site-drain":
        issues.append(doc.issue(["steps", index, "method"],
                                "a site drain keeps announcing: 'withdraw' is node-drain's",
                                "'prepend' or 'gshut'"))
    return issues


ROLLOUT_FIELDS = ("max_surge", "max_unavailable", "pre_stop", "termination_grace")


def _check_rollout(step: Step, index: int, plan: LabPlan,
                   doc: SourceDocument) -> list[InputIssue]:
    """The rollout fields go with rolling-update; its cluster has room in its pod CIDRs for
    a second address per pod, and runs the built-in server only."""
    given = [f for f in ROLLOUT_FIELDS if getattr(step, f) is not None]
    if step.fault != "rolling-update":
        return [doc.issue(["steps", index, f], f"`{f}:` does not apply to {step.fault}",
                          "it goes with rolling-update") for f in given]
    clusters = {c.name: c for c in plan.clusters}
    if not isinstance(step.target, str) or step.target not in clusters:
        return []  # the target check says why
    cluster = clusters[step.target]
    issues = []
    if rollout_of(cluster.rollout, step).replaces_nothing:
        issues.append(doc.issue(["steps", index, "max_unavailable"],
                                "max_surge and max_unavailable are both 0: no pod could ever "
                                "be replaced", "allow one of them, e.g. `max_surge: 1`"))
    node = plan.node(cluster.nodes[0])
    per_node = len(node.pods)
    for cidr in (node.pod_cidr, node.pod_cidr6):
        if cidr is not None and 2 * per_node + 2 > cidr.num_addresses - 1:
            issues.append(doc.issue(["steps", index, "target"],
                                    f"{cluster.name}'s pod CIDRs (/{cidr.prefixlen}) have no room "
                                    f"for a second address per pod ({per_node} per node)",
                                    "a larger pod_cidr_size (e.g. 24) in the topology"))
    return issues


def rollout_of(policy: RolloutPlan, step: Step) -> RolloutPlan:
    """The cluster's rollout strategy with the step's fields over it."""
    return RolloutPlan(
        step.max_surge if step.max_surge is not None else policy.max_surge,
        step.max_unavailable if step.max_unavailable is not None else policy.max_unavailable,
        step.pre_stop if step.pre_stop is not None else policy.pre_stop_ms,
        step.termination_grace if step.termination_grace is not None
        else policy.termination_grace_ms)


def _check_step(step: Step, index: int, plan: LabPlan, doc: SourceDocument,
                clients: list[str], services: list[str]) -> list[InputIssue]:
    assert step.fault is not None
    parameter_issues = (_check_family(step, index, plan, doc)
                        + _check_transit(step, index, plan, doc)
                        + _check_drain(step, index, doc)
                        + _check_rollout(step, index, plan, doc))
    if parameter_issues:
        return parameter_issues
    parts: list[str | int] = ["steps", index, "target"]
    kind = TARGET_KINDS[step.fault]
    target = step.target
    if isinstance(target, TargetSelector):
        issues = []
        if kind not in {"node", "pod"} and step.fault not in SERVING_LINK_FAULTS:
            issues.append(doc.issue(parts, f"`serving:` selects a node, a pod or a node's "
                                    f"leaf link; {step.fault} needs a {kind}",
                                    f"name the {kind} directly"))
        if target.serving.client not in clients:
            issues.append(unknown_issue(target.serving.client, clients, "client",
                                        [*parts, "serving", "client"], doc))
        if target.serving.service not in services:
            issues.append(unknown_issue(target.serving.service, services, "service",
                                        [*parts, "serving", "service"], doc))
        return issues
    assert isinstance(target, str)
    known = _known_targets(plan, step.fault, kind)
    if target not in known and not (kind == "link" and find_link(plan, target) in known_links(
            plan, step.fault)):
        what = "link (written a--b)" if kind == "link" else kind
        shown = sorted(known)[:40] if kind != "link" else sorted(
            link.id for link in known_links(plan, step.fault))[:40]
        return [unknown_issue(target, shown, what, parts, doc)]
    return []


def known_links(plan: LabPlan, fault: str) -> list[LinkPlan]:
    if fault in {"link-impair", "wan-latency"}:
        return [link for link in plan.links if link.kind in EMULATED_LINKS]
    if fault == "transit-partition":
        return [link for link in plan.links if link.kind == LinkKind.WAN]
    if fault == "bgp-session-shutdown":
        ids = {s.link_id for s in plan.sessions}
        return [link for link in plan.links if link.id in ids]
    return list(plan.links)


def _known_targets(plan: LabPlan, fault: str, kind: str) -> list[str]:
    if kind == "node":
        nodes = [n for n in plan.nodes if n.role != Role.CLIENT]
        if fault in {"daemon-kill", "daemon-restart"}:
            nodes = [n for n in nodes if n.runs_frr or n.speaker == "gobgp"]
        if fault in NODE_OPERATION_FAULTS:
            nodes = [n for n in nodes if n.role == Role.K8S_NODE]
        return [n.name for n in nodes]
    if kind == "pod":
        return [p.name for p in plan.pods()]
    if kind == "cluster":
        return [c.name for c in plan.clusters]
    if kind == "site":
        return [s.name for s in plan.sites]
    return [link.id for link in known_links(plan, fault)]
