"""YAML reading with line numbers: lab.source.yamldoc never raises, whatever the text."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from lab.errors import InputIssue
from lab.source.yamldoc import SourceDocument, format_path, parse_yaml_text, read_yaml_file

# ------------------------------------------------------------------------------ format_path


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ((), ""),
        (("name",), "name"),
        (("sites", 0), "sites[0]"),
        (("sites", 0, "fabric", "spines"), "sites[0].fabric.spines"),
        (("sites", 2, "clusters", 11, "leafs", 0), "sites[2].clusters[11].leafs[0]"),
        ((0,), "[0]"),
        ((0, 1), "[0][1]"),
        ((0, "name"), "[0].name"),
        (("defaults", "bgp", "bfd", "interval"), "defaults.bgp.bfd.interval"),
        (["wan_links", 1, "between", 0], "wan_links[1].between[0]"),
    ],
)
def test_format_path(parts: tuple[str | int, ...], text: str) -> None:
    assert format_path(parts) == text


# ---------------------------------------------------------------------- line numbers

NESTED = """\
# a comment on line 1
name: lab

defaults:
  bgp:
    keepalive: 3s
    bfd:
      interval: 300ms
sites:
  - name: alpha
    uplinks:
      - transit: east
        delay: 1ms
      - {transit: west, delay: 2ms}
    clusters: [{name: k1, nodes: 2},
               {name: k2, nodes: 3}]
  -
    name: beta
    description: |
      two
      lines
    uplinks: [{transit: east}]
"""


@pytest.fixture(name="nested")
def fixture_nested() -> SourceDocument:
    doc, issues = parse_yaml_text(NESTED, "t.yaml")
    assert issues == []
    return doc


@pytest.mark.parametrize(
    ("parts", "line"),
    [
        ((), 2),  # the document's first key
        (("name",), 2),
        (("defaults",), 4),
        (("defaults", "bgp"), 5),
        (("defaults", "bgp", "keepalive"), 6),
        (("defaults", "bgp", "bfd"), 7),
        (("defaults", "bgp", "bfd", "interval"), 8),
        (("sites",), 9),
        (("sites", 0), 10),  # a list item: the line of its dash
        (("sites", 0, "name"), 10),
        (("sites", 0, "uplinks"), 11),
        (("sites", 0, "uplinks", 0), 12),
        (("sites", 0, "uplinks", 0, "transit"), 12),
        (("sites", 0, "uplinks", 0, "delay"), 13),
        (("sites", 0, "uplinks", 1), 14),  # a flow mapping item
        (("sites", 0, "uplinks", 1, "delay"), 14),
        (("sites", 0, "clusters", 0, "nodes"), 15),
        (("sites", 0, "clusters", 1), 16),  # a flow item continued on the next line
        (("sites", 0, "clusters", 1, "nodes"), 16),
        (("sites", 1), 18),  # an item whose dash stands alone: the line of its content
        (("sites", 1, "name"), 18),
        (("sites", 1, "description"), 19),
        (("sites", 1, "uplinks"), 22),  # after a two-line block scalar
        (("sites", 1, "uplinks", 0, "transit"), 22),
    ],
)
def test_line_of_nested_keys_and_list_items(nested: SourceDocument, parts: tuple[str | int, ...],
                                            line: int) -> None:
    assert nested.line_of(parts) == line


@pytest.mark.parametrize(
    ("parts", "line"),
    [
        (("defaults", "bgp", "hold"), 5),  # missing key: its parent mapping
        (("sites", 0, "fabric", "spines"), 10),  # missing branch: nearest existing ancestor
        (("sites", 7, "name"), 9),  # no such item: the list
        (("nothing", "here"), 2),  # nothing at all: the document
    ],
)
def test_line_of_missing_paths_falls_back_to_the_nearest_ancestor(
        nested: SourceDocument, parts: tuple[str | int, ...], line: int) -> None:
    assert nested.line_of(parts) == line


def test_data_is_plain_python(nested: SourceDocument) -> None:
    assert nested.data["sites"][0]["uplinks"][1] == {"transit": "west", "delay": "2ms"}
    assert nested.data["sites"][1]["description"] == "two\nlines\n"
    assert nested.data["sites"][0]["clusters"][1]["nodes"] == 3


def test_issue_carries_file_line_and_path(nested: SourceDocument) -> None:
    issue = nested.issue(["sites", 0, "uplinks", 0, "delay"], "too slow", "use less")
    assert issue == InputIssue("t.yaml", 13, "sites[0].uplinks[0].delay", "too slow", "use less")
    assert issue.format() == "t.yaml:13: sites[0].uplinks[0].delay: too slow\n    hint: use less"


def test_issue_format_without_line_path_or_hint() -> None:
    assert InputIssue("f.yaml", None, "", "gone").format() == "f.yaml: (document): gone"


def test_keys_are_strings_even_when_yaml_reads_numbers_or_booleans() -> None:
    doc, issues = parse_yaml_text("1: a\ntrue: b\nnull: c\n1.5: d\n", "t")
    assert issues == []
    assert doc.data == {"1": "a", "True": "b", "None": "c", "1.5": "d"}
    assert doc.line_of(["True"]) == 2


def test_anchors_aliases_and_merge_keys_resolve() -> None:
    text = "base: &b {delay: 1ms, loss: 0}\nlink:\n  <<: *b\n  loss: 1\nagain: *b\n"
    doc, issues = parse_yaml_text(text, "t")
    assert issues == []
    assert doc.data["link"] == {"delay": "1ms", "loss": 1}
    assert doc.data["again"] == {"delay": "1ms", "loss": 0}
    assert doc.line_of(["link", "loss"]) == 4


def test_unquoted_dates_become_dates() -> None:
    doc, issues = parse_yaml_text("when: 2024-01-31\n", "t")
    assert issues == []
    assert doc.data == {"when": datetime.date(2024, 1, 31)}


# ------------------------------------------------------------------------------ problems


def test_duplicate_keys_are_issues_at_the_second_copy() -> None:
    doc, issues = parse_yaml_text("a:\n  b: 1\n  c: 2\n  b: 3\n", "t")
    assert [(i.line, i.path, i.message) for i in issues] == [(4, "a.b", "duplicate key 'b'")]
    assert "line 2" in issues[0].hint
    assert doc.data == {"a": {"b": 1, "c": 2}}  # the first copy is kept


def test_keys_equal_after_conversion_to_text_are_duplicates() -> None:
    _, issues = parse_yaml_text("1: a\n'1': b\n", "t")
    assert [i.message for i in issues] == ["duplicate key '1'"]


def test_non_scalar_keys_are_issues() -> None:
    _, issues = parse_yaml_text("a: 1\n? [x, y]\n: 2\n", "t")
    assert [(i.line, i.message) for i in issues] == [(2, "mapping keys must be plain scalars")]


@pytest.mark.parametrize("text", ["", "   \n", "\n\n", "# only a comment\n"])
def test_empty_text_is_an_issue_on_line_1(text: str) -> None:
    doc, issues = parse_yaml_text(text, "t")
    assert doc.data is None
    assert [(i.line, i.path, i.message) for i in issues] == [(1, "", "the file is empty")]


@pytest.mark.parametrize("text", ["---\n...\n", "~\n", "null\n", "--- !!null ''\n"])
def test_explicit_null_document_parses_to_none(text: str) -> None:
    doc, issues = parse_yaml_text(text, "t")
    assert issues == []
    assert doc.data is None  # validate_document reports "the document is null"


def test_merge_keys_follow_yaml_precedence() -> None:
    text = ("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\n"
            "c:\n  <<: [*a, *b]\n  z: 3\n")
    doc, issues = parse_yaml_text(text, "t")
    assert issues == []
    # the first mapping merged wins over later ones; written keys win over all merged ones
    assert doc.data["c"] == {"x": 1, "y": 1, "z": 3}
    assert doc.line_of(["c", "z"]) == 5


def test_written_key_twice_next_to_a_merge_is_still_a_duplicate() -> None:
    _, issues = parse_yaml_text("a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n  x: 3\n", "t")
    assert [(i.line, i.path) for i in issues] == [(5, "b.x")]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a: [1, 2\nb: 3\n", 2, "expected ',' or ']'"),
        ("a: 1\n b: 2\n", 2, "mapping values are not allowed"),
        ("a:\n\t- 1\n", 2, "tab character"),
        ("a: 'open\n", 2, "YAML syntax error"),
        ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        ("a: *nowhere\n", 1, "YAML syntax error"),
        ("a: !!python/name:os.system x\n", 1, "cannot be read"),
        ("a: !custom 1\n", 1, "could not determine a constructor for the tag '!custom'"),
        ("<<: 3\n", 1, "cannot be read"),
        ("a: 2024-02-30\n", 1, "day is out of range"),
        ("x: 1\na: \x00\n", 2, "#x0000 is not allowed"),
        ("x: 1\n\x07\n", 2, "#x0007 is not allowed"),
        ("a: \ufffe\n", 1, "#xfffe is not allowed"),
    ],
)
def test_bad_yaml_is_an_issue_with_a_line(text: str, line: int, fragment: str) -> None:
    _, issues = parse_yaml_text(text, "t.yaml")
    assert len(issues) == 1, issues
    (issue,) = issues
    assert issue.file == "t.yaml"
    assert issue.line == line
    assert fragment in issue.message
    assert issue.hint


def test_bad_scalar_reports_its_path() -> None:
    _, issues = parse_yaml_text("sites:\n  - name: a\n    since: 2024-13-01\n", "t")
    assert [(i.line, i.path) for i in issues] == [(3, "sites[0].since")]


def test_every_bad_scalar_is_reported() -> None:
    _, issues = parse_yaml_text("a: 2024-13-01\nb: [2024-99-01]\n", "t")
    assert [(i.line, i.path) for i in issues] == [(1, "a"), (2, "b[0]")]


@pytest.mark.parametrize(
    ("text", "path"),
    [("a: &x [1, *x]\n", "a[1]"), ("a: &x\n  b: *x\n", "a.b"),
     ("a:\n  - &x {b: [*x]}\n", "a[0].b[0]")],
)
def test_recursive_alias_is_an_issue(text: str, path: str) -> None:
    _, issues = parse_yaml_text(text, "t")
    assert [(i.path, i.message) for i in issues] == [
        (path, "an alias refers to a mapping or list that contains it")]
    assert issues[0].line is not None


def test_alias_bomb_is_an_issue_not_a_hang() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    _, issues = parse_yaml_text("\n".join(lines) + "\n", "t")
    assert len(issues) == 1
    assert issues[0].message == "the document expands to more than 100000 values"
    assert issues[0].line is not None


def test_aliases_used_many_times_are_fine() -> None:
    doc, issues = parse_yaml_text("d: &d {delay: 1ms}\nl: [*d, *d, *d]\n", "t")
    assert issues == []
    assert doc.data["l"] == [{"delay": "1ms"}] * 3


def test_deep_nesting_does_not_raise() -> None:
    _, issues = parse_yaml_text("[" * 5000 + "]" * 5000, "t")
    assert len(issues) == 1
    assert issues[0].message


# ------------------------------------------------------------------------------- files


def test_read_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: lab\nsites:\n  - name: a\n", encoding="utf-8")
    doc, issues = read_yaml_file(path)
    assert issues == []
    assert doc.file == str(path)
    assert doc.line_of(["sites", 0, "name"]) == 3


def test_read_yaml_file_with_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: lab\r\nsites:\r\n  - name: a\r\n")
    doc, issues = read_yaml_file(path)
    assert issues == []
    assert doc.data == {"name": "lab", "sites": [{"name": "a"}]}
    assert doc.line_of(["sites", 0, "name"]) == 3


def test_missing_file(tmp_path: Path) -> None:
    doc, issues = read_yaml_file(tmp_path / "nope.yaml")
    assert doc.data is None
    assert [(i.line, i.message, i.hint) for i in issues] == [
        (None, "file not found", "check the path")]


def test_not_utf8_reports_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: lab\n\ndescription: caf\xe9\n")
    _, issues = read_yaml_file(path)
    assert [(i.line, i.path) for i in issues] == [(3, "")]
    assert "not UTF-8" in issues[0].message
    assert "0xe9" in issues[0].message


def test_a_directory_is_an_issue(tmp_path: Path) -> None:
    _, issues = read_yaml_file(tmp_path)
    assert len(issues) == 1
    assert issues[0].message.startswith("cannot read the file")
