"""Fuzzing of every file a user hands to anycast-lab: at least 1,000 generated documents each
for topologies (parse + validate) and scenarios (load_scenario on a real file).

Whatever the input, the only exceptions are the documented input errors (TopologyError,
ScenarioError), each issue with a path and a message; names carrying shell metacharacters or
path separators are refused with an issue at exactly their place. (test_property_parsing.py
covers topologies in more depth at 300 examples; this module is the broad 1,000-example run.)
"""

from __future__ import annotations

import copy
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

from lab.backend.names import check_lab_name
from lab.errors import InputIssue, LabError, ScenarioError, TopologyError
from lab.scenario.load import LoadedScenario, load_scenario
from lab.scenario.model import ProbeSettings, Scenario, ServingTarget, Step
from lab.source.yamldoc import format_path, parse_yaml_text
from lab.topology.model import BgpSettings, Topology
from lab.topology.validate import validate_document
from tests.unit.docshapes import document_slots, model_keys

REPO = Path(__file__).resolve().parents[2]
MINI_TEXT = (REPO / "topologies" / "two-sites-mini.yaml").read_text(encoding="utf-8")
MINI: dict[str, Any] = yaml.safe_load(MINI_TEXT)
TOPOLOGY_FILE = "fuzz-topology.yaml"

BROAD = settings(max_examples=1000, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])
NAMES = settings(BROAD, max_examples=300)

# A small topology for scenarios (planning it is cheap) and a scenario using most features.
TINY_TOPOLOGY = """\
name: tiny
transits: [{name: east}, {name: west}]
wan_links: [{between: [east, west], delay: 5ms}]
sites:
  - name: alpha
    uplinks: [{transit: east}]
    fabric: {spines: 1, leafs: 1}
    clusters: [{name: alpha-k8s, nodes: 1, pods_per_node: 2}]
services:
  - {name: dns, vip: 192.0.2.53, protocol: udp, port: 53}
  - {name: web, vip: 192.0.2.80, protocol: tcp, port: 80}
clients: [{name: c1, transit: west}]
"""
BASE_SCENARIO_TEXT = """\
name: fuzz-base
description: one step of most kinds, against tiny.yaml
topology: tiny.yaml
probe: {interval: 1ms, clients: [c1], services: [dns, web], flows: 2, tcp_flows: 1}
settle: 2s
tail: 2s
repeat: 2
recover_timeout: 30s
steps:
  - fault: node-crash
    target: {serving: {client: c1, service: dns, flow: 1}}
    duration: 2s
  - {wait: 1s}
  - {fault: link-down, target: alpha-l1--alpha-k8s-n1, duration: 1s}
  - {fault: link-impair, target: east--west, delay: 20ms, jitter: 2ms, loss: 1%, rate: 10mbit,
     duration: 2s}
  - {fault: link-flap, target: alpha-s1--alpha-l1, period: 1s, count: 2}
  - {fault: daemon-kill, target: alpha-l1, daemon: bgpd, at: 12s, duration: 2s}
  - {fault: site-drain, target: alpha, method: prepend, prepend: 2, duration: 2s}
  - {fault: pod-kill, target: alpha-k8s-n1-p1}
  - {fault: service-withdraw, target: alpha-k8s, duration: 1s}
"""
BASE_SCENARIO: dict[str, Any] = yaml.safe_load(BASE_SCENARIO_TEXT)

SHELL_METACHARACTERS = [*";|&$`<>'\" \t\n\\(){}*?!#~"]
PATH_PARTS = ["/", "..", "../", "/..", "./", "a/../b"]
NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")


# ---------------------------------------------------------------- checking helpers

def assert_clean_issue(issue: InputIssue, file: str | None = None) -> None:
    assert isinstance(issue, InputIssue)
    assert file is None or issue.file == file
    assert isinstance(issue.path, str)
    assert isinstance(issue.message, str) and issue.message.strip()
    assert issue.line is None or issue.line >= 1
    assert issue.message in issue.format()


def check_topology(text: str) -> Topology | tuple[InputIssue, ...]:
    """Parse and validate; only TopologyError (with clean issues) may come out."""
    doc, issues = parse_yaml_text(text, TOPOLOGY_FILE)
    for issue in issues:
        assert_clean_issue(issue, TOPOLOGY_FILE)
        assert issue.hint.strip()
    if issues:
        return tuple(issues)
    try:
        return validate_document(doc)
    except TopologyError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert_clean_issue(issue, TOPOLOGY_FILE)
            assert issue.hint.strip(), issue.format()
            assert issue.line is not None, issue.format()
        return exc.issues


def check_scenario(folder: Path, text: str) -> LoadedScenario | tuple[InputIssue, ...]:
    """Write the scenario next to tiny.yaml and load it; only input errors may come out."""
    path = folder / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_scenario(path)
    except (ScenarioError, TopologyError) as exc:
        assert exc.issues
        for issue in exc.issues:
            assert_clean_issue(issue)
        return exc.issues


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "tiny.yaml").write_text(TINY_TOPOLOGY, encoding="utf-8")
    return folder


# ---------------------------------------------------------------- generic strategies

YAML_PIECES = [*"abcxyz019 .:-_[]{},#&*!|>'\"?%@`~\\/\n\n\n\t", "  ", "- ", ": ", "steps:",
               "name:", "fault:", "target:"]
yamlish_text = st.lists(st.sampled_from(YAML_PIECES), max_size=100).map("".join)


def fresh_samples(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``values``, as a copy: a sampled list or dict placed in a document is mutated by
    later steps, and a changed sample list makes the next example (or the replay of a failing
    one) draw differently from the same seed."""
    return st.sampled_from(values).map(copy.deepcopy)


def json_values(keys: list[str], plausible: list[Any]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**66), max_value=2**66),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=16),
        fresh_samples(plausible))
    key = st.one_of(st.sampled_from(keys), st.text(max_size=10))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=5)), max_leaves=20)


@st.composite
def mutated_lines(draw: st.DrawFn, text: str) -> str:
    """Whole lines deleted, duplicated, moved, re-indented, cut or inserted."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "move", "indent", "dedent", "cut",
                                   "insert"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "move":
            lines.insert(draw(st.integers(min_value=0, max_value=len(lines))), lines.pop(i))
        elif op == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "\t", "- "])) + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip(" ")
        elif op == "cut":
            lines[i] = lines[i][:draw(st.integers(min_value=0, max_value=len(lines[i])))] + "\n"
        else:
            lines.insert(i, draw(yamlish_text) + "\n")
    return "".join(lines)


@st.composite
def mutated_data(draw: st.DrawFn, base: dict[str, Any], keys: list[str],
                 plausible: list[Any]) -> dict[str, Any]:
    """The base document with keys dropped, values replaced and unknown keys inserted."""
    data = copy.deepcopy(base)
    values = json_values(keys, plausible)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        slots = list(document_slots(data))
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["drop", "replace", "plausible", "insert"]))
        if op == "drop":
            del container[key]
        elif op == "replace":
            container[key] = draw(values)
        elif op == "plausible":
            container[key] = draw(fresh_samples(plausible))
        elif isinstance(container[key], dict):
            container[key][draw(st.sampled_from(keys))] = draw(values)
        elif isinstance(container[key], list):
            container[key].append(draw(values))
        else:
            container[key] = {draw(st.sampled_from(keys)): draw(values)}
    return data


# ---------------------------------------------------------------- topologies

TOPOLOGY_KEYS = model_keys(Topology)
TOPOLOGY_PLAUSIBLE: list[Any] = [
    "3s", "300ms", "0s", "-1s", "10mbit", "1gbit", "0.5%", "101%", "192.0.2.1", "10.0.0.0/8",
    "10.0.0.1/8", "2001:db8::/32", "all", "east", "west", "alpha", "alpha-k8s", "udp", "tcp",
    "Local", "Cluster", "gobgp", "frr", "spines", "leafs", "userspace", "", "a;rm -rf /",
    "../etc", "x" * 70, 0, 1, 65536, -1, True, None, [], {}]
topology_documents = st.one_of(
    st.text(max_size=150),
    yamlish_text,
    mutated_lines(MINI_TEXT),
    mutated_data(MINI, TOPOLOGY_KEYS, TOPOLOGY_PLAUSIBLE).map(dump),
    st.dictionaries(st.sampled_from(TOPOLOGY_KEYS),
                    json_values(TOPOLOGY_KEYS, TOPOLOGY_PLAUSIBLE), max_size=8).map(dump),
)


def test_the_topology_base_is_valid() -> None:
    assert isinstance(check_topology(MINI_TEXT), Topology)


@BROAD
@given(topology_documents)
def test_1000_topology_documents_give_only_clean_errors(text: str) -> None:
    check_topology(text)


# ---------------------------------------------------------------- scenarios

SCENARIO_KEYS = model_keys(Scenario, Step, ProbeSettings, ServingTarget, BgpSettings)
SCENARIO_PLAUSIBLE: list[Any] = [
    "2s", "0ms", "-1s", "1e9s", "10mbit", "1%", "200%", "node-crash", "link-down",
    "link-flap", "daemon-kill", "c1", "dns", "web", "alpha", "alpha-l1", "alpha-k8s-n1",
    "alpha-k8s-n1-p1", "east--west", "a--b", "all", "bgpd", "gobgpd", "prepend", "gshut",
    "tiny.yaml", "missing.yaml", "", "a;rm", "../x", "x" * 70, 0, 1, -1, 1001, 10**9, True,
    None, [], {}, {"serving": {"client": "c1", "service": "dns"}}, {"wait": "1s"}]
scenario_documents = st.one_of(
    st.text(max_size=150),
    yamlish_text,
    mutated_lines(BASE_SCENARIO_TEXT),
    mutated_data(BASE_SCENARIO, SCENARIO_KEYS, SCENARIO_PLAUSIBLE).map(dump),
    st.dictionaries(st.sampled_from(SCENARIO_KEYS),
                    json_values(SCENARIO_KEYS, SCENARIO_PLAUSIBLE), max_size=8).map(dump),
)


def drawn_documents(strategy: st.SearchStrategy[Any], count: int) -> list[str]:
    """The first ``count`` documents ``strategy`` generates from one fixed seed, as their
    reprs (NaN, which a document may hold, is not equal to itself)."""
    documents: list[str] = []

    @seed(20261202)
    @settings(BROAD, max_examples=count, phases=[Phase.generate])
    @given(strategy)
    def collect(document: Any) -> None:
        documents.append(repr(document))

    collect()
    return documents


def test_document_strategies_are_reproducible() -> None:
    """The same seed gives the same documents, and generating leaves the bases and samples
    as they were (otherwise a failure cannot be replayed with --hypothesis-seed). Covers the
    property tests' mutated reference topology too."""
    from tests.unit import test_property_parsing as parsing

    shared = (MINI, BASE_SCENARIO, TOPOLOGY_PLAUSIBLE, SCENARIO_PLAUSIBLE, parsing.REFERENCE,
              parsing.PLAUSIBLE)
    pristine = copy.deepcopy(shared)
    for strategy in (topology_documents, scenario_documents, parsing.mutated_reference()):
        assert drawn_documents(strategy, 400) == drawn_documents(strategy, 400)
    assert shared == pristine


def test_the_scenario_base_is_valid(folder: Path) -> None:
    loaded = check_scenario(folder, BASE_SCENARIO_TEXT)
    assert isinstance(loaded, LoadedScenario), loaded
    assert len(loaded.actions) > 10


@BROAD
@given(text=scenario_documents)
def test_1000_scenario_documents_give_only_clean_errors(folder: Path, text: str) -> None:
    check_scenario(folder, text)


# ---------------------------------------------------------------- names

def _inject(bad: str) -> st.SearchStrategy[str]:
    allowed = st.text(alphabet=sorted(NAME_CHARS), max_size=6)
    return st.builds(lambda a, b: f"x{a}{bad}{b}", allowed, allowed)


hostile_names = st.one_of(
    st.sampled_from(SHELL_METACHARACTERS + PATH_PARTS).flatmap(_inject),
    st.lists(st.sampled_from(SHELL_METACHARACTERS + PATH_PARTS), min_size=1, max_size=4)
    .map(lambda parts: "a" + "".join(parts) + "b"),
    st.sampled_from(["..", "/", "/etc/passwd", "../../etc/shadow", "$(reboot)", "`id`",
                     "a; rm -rf /", "a && b", "a | b", "'a'", '"a"', "a > /tmp/x", "a b"]),
)

TOPOLOGY_NAME_SLOTS: list[tuple[str | int, ...]] = [
    ("name",), ("transits", 0, "name"), ("wan_links", 0, "between", 1),
    ("sites", 0, "name"), ("sites", 1, "clusters", 0, "name"),
    ("sites", 0, "uplinks", 0, "transit"), ("services", 1, "name"),
    ("clients", 0, "name"), ("clients", 1, "transit"),
]
SCENARIO_NAME_SLOTS: list[tuple[str | int, ...]] = [
    ("name",), ("probe", "clients", 0), ("probe", "services", 1),
    ("steps", 0, "target", "serving", "client"), ("steps", 0, "target", "serving", "service"),
    ("steps", 2, "target"), ("steps", 5, "target"), ("steps", 6, "target"),
    ("steps", 7, "target"), ("steps", 8, "target"),
]


def _set(data: Any, parts: tuple[str | int, ...], value: Any) -> None:
    for part in parts[:-1]:
        data = data[part]
    data[parts[-1]] = value


def _get(data: Any, parts: tuple[str | int, ...]) -> Any:
    for part in parts:
        data = data[part]
    return data


def _issues_at(issues: tuple[InputIssue, ...], parts: tuple[str | int, ...]) -> list[str]:
    path = format_path(parts)
    return [i.message for i in issues if i.path == path]


@NAMES
@given(st.sampled_from(TOPOLOGY_NAME_SLOTS), hostile_names)
def test_hostile_topology_names_are_refused_at_their_path(
        slot: tuple[str | int, ...], name: str) -> None:
    data = copy.deepcopy(MINI)
    _set(data, slot, name)
    doc, issues = parse_yaml_text(dump(data), TOPOLOGY_FILE)
    assert issues == []
    assume(_get(doc.data, slot) == name)  # PyYAML folds a few characters (e.g. '\t' at ends)
    result = check_topology(dump(data))
    assert not isinstance(result, Topology), f"{name!r} at {format_path(slot)} was accepted"
    assert _issues_at(result, slot), [i.format() for i in result]


@NAMES
@given(slot=st.sampled_from(SCENARIO_NAME_SLOTS), name=hostile_names)
def test_hostile_scenario_names_are_refused_at_their_path(
        folder: Path, slot: tuple[str | int, ...], name: str) -> None:
    data = copy.deepcopy(BASE_SCENARIO)
    _set(data, slot, name)
    assume(yaml.safe_load(dump(data)) == data)
    result = check_scenario(folder, dump(data))
    assert not isinstance(result, LoadedScenario), f"{name!r} at {format_path(slot)} accepted"
    assert _issues_at(result, slot), [i.format() for i in result]


@NAMES
@given(hostile_names)
def test_hostile_lab_names_are_refused(name: str) -> None:
    with pytest.raises(LabError, match="invalid lab name"):
        check_lab_name(name)
