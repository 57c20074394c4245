"""Property tests: whatever a topology file holds, only clean TopologyErrors come out.

"Clean" means: the only exception is TopologyError, and each of its issues has a file, a path
string, a message and a hint (and, once the YAML parsed, a line).
"""

from __future__ import annotations

import copy
import os
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lab.errors import InputIssue, TopologyError
from lab.source.yamldoc import format_path, parse_yaml_text
from lab.topology.model import Topology
from lab.topology.validate import validate_document
from tests.unit.docshapes import document_slots, model_keys

REPO = Path(__file__).resolve().parents[2]
REFERENCE_TEXT = (REPO / "topologies" / "three-sites.yaml").read_text(encoding="utf-8")
REFERENCE: dict[str, Any] = yaml.safe_load(REFERENCE_TEXT)
FILE = "fuzz.yaml"
NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")

# 300 examples per property in the normal suite; ANYLAB_FUZZ_EXAMPLES=20000 for a long hunt
FUZZ = settings(deadline=None, max_examples=int(os.environ.get("ANYLAB_FUZZ_EXAMPLES", "300")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_clean(issue: InputIssue, *, located: bool) -> None:
    assert isinstance(issue, InputIssue)
    assert issue.file == FILE
    assert isinstance(issue.path, str)
    assert isinstance(issue.message, str) and issue.message.strip()
    assert isinstance(issue.hint, str) and issue.hint.strip()
    if located:
        assert issue.line is not None
    assert issue.line is None or issue.line >= 1
    formatted = issue.format()
    assert formatted.startswith(FILE)
    assert issue.message in formatted


def check(text: str) -> Topology | tuple[InputIssue, ...]:
    """Parse and validate; return the Topology or the issues, failing on anything else."""
    doc, issues = parse_yaml_text(text, FILE)
    for issue in issues:
        assert_clean(issue, located=False)
    if issues:
        return tuple(issues)
    try:
        return validate_document(doc)
    except TopologyError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert_clean(issue, located=True)
        return exc.issues


def check_data(data: Any) -> Topology | tuple[InputIssue, ...]:
    return check(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


# ------------------------------------------------------------------- (a) random text

YAML_CHARS = [*"abcxyz019 .:-_[]{},#&*!|>'\"?%@`~\\/\n\n\n\t\r", "  ", "- ", ": "]
yamlish_text = st.lists(st.sampled_from(YAML_CHARS), max_size=120).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=200), yamlish_text))
def test_random_text_gives_only_clean_errors(text: str) -> None:
    check(text)


@st.composite
def mutated_reference_text(draw: st.DrawFn) -> str:
    """The reference file with whole lines deleted, duplicated, moved, re-indented or cut."""
    lines = REFERENCE_TEXT.splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
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
            j = draw(st.integers(min_value=0, max_value=len(lines[i])))
            lines[i] = lines[i][:j] + "\n"
        else:
            lines.insert(i, draw(yamlish_text) + "\n")
    return "".join(lines)


@FUZZ
@given(mutated_reference_text())
def test_mutated_reference_text_gives_only_clean_errors(text: str) -> None:
    check(text)


# ------------------------------------------------------- (b) random JSON-like documents


MODEL_KEYS = model_keys(Topology)
PLAUSIBLE = ["3s", "9s", "300ms", "0.5s", "1m", "100us", "10mbit", "1gbit", "0.5%", "100%",
             "192.0.2.1", "10.0.0.0/8", "10.0.0.1/8", "::1", "2001:db8::/32", "all", "east",
             "us-east", "nyc", "nyc-k8s", "udp", "tcp", "Local", "Cluster", "gobgp", "frr",
             "spines", "leafs", "auto", "netem", "", "-", "a;rm", "a/b", "Upper", "x" * 70]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(PLAUSIBLE), st.integers(min_value=-2, max_value=300),
)
keys = st.one_of(st.sampled_from(MODEL_KEYS), st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


@FUZZ
@given(st.one_of(json_values, st.dictionaries(st.sampled_from(MODEL_KEYS), json_values,
                                              max_size=8)))
def test_random_documents_give_only_clean_errors(data: Any) -> None:
    check_data(data)


@st.composite
def mutated_reference(draw: st.DrawFn) -> dict[str, Any]:
    """The reference topology with keys dropped, values replaced, unknown keys inserted."""
    data = copy.deepcopy(REFERENCE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        slots = list(document_slots(data))
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["drop", "replace", "replace-plausible", "insert"]))
        if op == "drop":
            del container[key]
        elif op == "replace":
            container[key] = draw(json_values)
        elif op == "replace-plausible":
            container[key] = draw(st.sampled_from(PLAUSIBLE))
        elif isinstance(container[key], dict):
            container[key][draw(keys)] = draw(json_values)
        elif isinstance(container[key], list):
            container[key].insert(draw(st.integers(min_value=0, max_value=len(container[key]))),
                                  draw(json_values))
        else:
            container[key] = {draw(keys): draw(json_values)}
    return data


@FUZZ
@given(mutated_reference())
def test_mutated_reference_gives_only_clean_errors(data: dict[str, Any]) -> None:
    check_data(data)


def test_the_reference_itself_is_valid() -> None:
    assert isinstance(check_data(REFERENCE), Topology)


@FUZZ
@given(st.sampled_from([*MODEL_KEYS, "unknown", "Name", "x[0]", "function-after"]),
       json_values)
def test_unknown_top_level_keys_are_reported_at_their_path(key: str, value: Any) -> None:
    assume(key not in Topology.model_fields)
    data = copy.deepcopy(REFERENCE)
    data[key] = value
    result = check_data(data)
    assert not isinstance(result, Topology)
    assert any(issue.path == key and issue.message == f"unknown key {key!r}"
               for issue in result)


# ------------------------------------------------------------------------- (c) names

MINI: dict[str, Any] = {
    "name": "lab",
    "transits": [{"name": "east"}, {"name": "west"}],
    "wan_links": [{"between": ["east", "west"]}],
    "sites": [{"name": "alpha", "uplinks": [{"transit": "east"}],
               "fabric": {"spines": 1, "leafs": 1},
               "clusters": [{"name": "alpha-k8s", "nodes": 1}]}],
    "services": [{"name": "dns", "vip": "192.0.2.53", "port": 53, "clusters": ["alpha-k8s"]}],
    "clients": [{"name": "c1", "transit": "west"}],
}
NAME_SLOTS: list[tuple[str | int, ...]] = [
    ("name",),
    ("transits", 1, "name"),
    ("sites", 0, "name"),
    ("sites", 0, "clusters", 0, "name"),
    ("sites", 0, "uplinks", 0, "transit"),
    ("wan_links", 0, "between", 1),
    ("services", 0, "name"),
    ("services", 0, "clusters", 0),
    ("clients", 0, "name"),
    ("clients", 0, "transit"),
]
SHELL_AND_PATH = [*";&|$`()<>'\"\\/ \t\n\r*?!#~{}[]=,.:_%@^+", "\x00", "é", "\uff21", "\u2028"]


def set_at(data: Any, parts: tuple[str | int, ...], value: Any) -> None:
    node = data
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def get_at(data: Any, parts: tuple[str | int, ...]) -> Any:
    node = data
    for part in parts:
        node = node[part]
    return node


allowed_text = st.text(alphabet=sorted(NAME_CHARS), max_size=8)
bad_names = st.one_of(
    st.text(min_size=1, max_size=20).filter(lambda s: not set(s) <= NAME_CHARS),
    st.builds(lambda a, bad, b: a + bad + b, allowed_text,
              st.sampled_from(SHELL_AND_PATH) | st.sampled_from(string.ascii_uppercase),
              allowed_text),
)


def test_mini_is_valid() -> None:
    assert isinstance(check_data(MINI), Topology)


@FUZZ
@given(st.sampled_from(NAME_SLOTS), bad_names)
def test_names_with_other_characters_are_rejected_at_their_path(
        slot: tuple[str | int, ...], name: str) -> None:
    data = copy.deepcopy(MINI)
    set_at(data, slot, name)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    doc, issues = parse_yaml_text(text, FILE)
    assert issues == []
    # (PyYAML may not round-trip every character, e.g. it folds NEL '\x85' into a space)
    name = get_at(doc.data, slot)
    assume(isinstance(name, str) and not set(name) <= NAME_CHARS)
    with pytest.raises(TopologyError) as caught:
        validate_document(doc)
    path = format_path(slot)
    at_slot = [issue for issue in caught.value.issues if issue.path == path]
    assert at_slot, [issue.format() for issue in caught.value.issues]
    (issue,) = at_slot
    assert (issue.message.startswith(f"{name!r} is not a valid name: ")
            or "at most 63 characters" in issue.message)
    assert "lowercase letters, digits and '-'" in issue.hint
    assert issue.line == doc.line_of(slot)


@FUZZ
@given(st.from_regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True))
def test_well_formed_names_are_accepted(name: str) -> None:
    data = copy.deepcopy(MINI)
    data["name"] = name
    result = check_data(data)
    assert isinstance(result, Topology)
    assert result.name == name


@FUZZ
@given(st.from_regex(r"[a-z]([a-z0-9-]{0,9}[a-z0-9])?", fullmatch=True))
def test_short_well_formed_site_names_are_accepted(name: str) -> None:
    data = copy.deepcopy(MINI)
    data["sites"][0]["name"] = name
    result = check_data(data)
    assert isinstance(result, Topology), [i.format() for i in result]
