"""The error corpus: broken topology files paired with the exact issues they must produce.

Each ``cases/NAME.yaml`` is loaded by the relative path ``NAME.yaml`` from inside ``cases/``
(so issues name the file as ``NAME.yaml``, wherever the repository lives) and its formatted
issues, one ``InputIssue.format()`` after another, must equal ``cases/NAME.expected``.

To regenerate the expected files after an intended change of wording::

    ANYLAB_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/errors

then read every changed ``.expected`` file: each message must say what is wrong and each hint
how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab.errors import InputIssue, TopologyError
from lab.topology.validate import load_topology

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(path.stem for path in CASES_DIR.glob("*.yaml"))
UPDATE = os.environ.get("ANYLAB_UPDATE_GOLDEN") == "1"

# Files with many problems, and how many issues each must produce in one run: one per
# schema problem, and (once the schema holds) one per cross-reference problem.
MANY_PROBLEMS = {
    "many-problems-schema": 15,
    "many-problems-cross-reference": 23,
}


def load_issues(name: str) -> tuple[InputIssue, ...]:
    """The issues of cases/NAME.yaml, loaded by a path relative to the cases directory."""
    cwd = Path.cwd()
    os.chdir(CASES_DIR)
    try:
        load_topology(Path(f"{name}.yaml"))
    except TopologyError as exc:
        return exc.issues
    finally:
        os.chdir(cwd)
    raise AssertionError(f"{name}.yaml validated, but every file in the corpus is broken")


def render(issues: tuple[InputIssue, ...]) -> str:
    return "".join(issue.format() + "\n" for issue in issues)


def regenerate(names: list[str] | None = None) -> list[Path]:
    """Rewrite the .expected files from the current output (review them before committing)."""
    written = []
    for name in names if names is not None else CASES:
        target = CASES_DIR / f"{name}.expected"
        text = render(load_issues(name))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_every_case_has_an_expected_file_and_vice_versa() -> None:
    expected = sorted(path.stem for path in CASES_DIR.glob("*.expected"))
    if UPDATE:
        for stale in set(expected) - set(CASES):
            (CASES_DIR / f"{stale}.expected").unlink()
        regenerate([name for name in CASES if name not in expected])
        expected = sorted(path.stem for path in CASES_DIR.glob("*.expected"))
    assert expected == CASES


@pytest.mark.parametrize("name", CASES)
def test_case_produces_expected_issues(name: str) -> None:
    issues = load_issues(name)
    actual = render(issues)
    target = CASES_DIR / f"{name}.expected"
    if UPDATE:
        regenerate([name])
    assert target.exists(), f"missing {target.name}; run with ANYLAB_UPDATE_GOLDEN=1 and review"
    expected = target.read_text(encoding="utf-8")
    assert expected.strip(), f"{target.name} is empty"
    assert actual == expected


@pytest.mark.parametrize("name", CASES)
def test_every_issue_is_located_and_has_a_hint(name: str) -> None:
    for issue in load_issues(name):
        assert issue.file == f"{name}.yaml"
        assert issue.line is not None, issue.format()
        assert issue.line >= 1
        assert issue.message.strip(), issue.format()
        assert issue.hint.strip(), issue.format()
        assert "\n" not in issue.message and "\n" not in issue.hint, issue.format()


@pytest.mark.parametrize("name", CASES)
def test_issue_lines_point_into_the_file(name: str) -> None:
    data = (CASES_DIR / f"{name}.yaml").read_bytes()
    lines = max(data.count(b"\n") + (0 if data.endswith(b"\n") else 1), 1)
    for issue in load_issues(name):
        assert issue.line is not None
        assert issue.line <= lines, issue.format()


@pytest.mark.parametrize("name", CASES)
def test_no_issue_is_reported_twice(name: str) -> None:
    issues = load_issues(name)
    assert len(set(issues)) == len(issues)


@pytest.mark.parametrize("name", CASES)
def test_issues_come_in_file_order(name: str) -> None:
    lines = [issue.line or 0 for issue in load_issues(name)]
    assert lines == sorted(lines)


@pytest.mark.parametrize(("name", "count"), sorted(MANY_PROBLEMS.items()))
def test_many_problems_are_reported_together(name: str, count: int) -> None:
    issues = load_issues(name)
    assert len(issues) == count
    # one exception carries them all, and its text lists each of them
    with pytest.raises(TopologyError) as caught:
        load_topology(CASES_DIR / f"{name}.yaml")
    text = str(caught.value)
    assert text.startswith(f"{count} problems in topology input\n")
    for issue in caught.value.issues:
        assert issue.format() in text


def test_many_schema_problems_span_every_section() -> None:
    paths = {issue.path.split(".")[0].split("[")[0] for issue in load_issues(
        "many-problems-schema")}
    assert {"name", "descripton", "defaults", "transits", "wan_links", "sites", "services",
            "clients"} <= paths


def test_many_cross_reference_problems_cover_every_kind_of_check() -> None:
    messages = "\n".join(issue.message for issue in load_issues(
        "many-problems-cross-reference"))
    for fragment in ("duplicate site name", "duplicate transit name", "duplicate service name",
                     "unknown transit", "unknown cluster", "duplicate WAN link",
                     "cannot loop to itself", "is not connected", "interface names allow",
                     "below 3 s", "more than a third of hold", "BFD interval",
                     "does not exist", "holds 5 pods", "overlaps pool", "is inside the",
                     "is already used by", "line break"):
        assert fragment in messages, fragment


def test_missing_file_is_an_issue_without_a_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TopologyError) as caught:
        load_topology(missing)
    (issue,) = caught.value.issues
    assert issue.file == str(missing)
    assert issue.line is None
    assert issue.message == "file not found"
    assert issue.hint
    assert issue.format() == f"{missing}: (document): file not found\n    hint: check the path"


def test_directory_instead_of_file_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(tmp_path)
    (issue,) = caught.value.issues
    assert issue.message.startswith("cannot read the file")
    assert issue.hint


def test_absolute_paths_name_the_file_as_given() -> None:
    path = CASES_DIR / "unknown-key-top.yaml"
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert {issue.file for issue in caught.value.issues} == {str(path)}
