"""The layout keeps its promises: lab/ shows the pipeline (no two top-level modules share a
prefix, every package says what it owns), and only the backends' own folders and the one
namespace-entry module (lab.netns) know how a node's network namespace is named or entered.
Checked on the source text (code, not docstrings and comments)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

LAB = REPO / "lab"
# the only places that may name, enter or build namespaces of lab nodes
NAMESPACE_OWNERS = ("lab/backend/netns/", "lab/backend/containerlab/", "lab/backend/mininet/",
                    "lab/netns.py")
# what code outside them must not do: (what, pattern over string literals or code)
FORBIDDEN_STRINGS = [
    ("names /run/netns", re.compile(r"/run/netns")),
    ("runs nsenter", re.compile(r"(^|/)nsenter$")),
    ("names the emulator's namespace", re.compile(r"^_emu$")),
    ("builds a lab namespace name", re.compile(r"^al\.")),
]
FORBIDDEN_CODE = [
    ("runs `ip -n`", re.compile(r"""["']ip["'],\s*["']-n["']""")),
    ("imports the netns backend's names",
     re.compile(r"from lab\.backend\.netns\.names import|import lab\.backend\.netns\.names")),
    ("uses NETNS_DIR", re.compile(r"\bNETNS_DIR\b")),
]


def _sources() -> list[Path]:
    return sorted(LAB.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _code_strings(tree: ast.AST) -> list[str]:
    """String literals that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def _code_lines(text: str) -> str:
    """The source without comments (strings stay: `ip -n` is an argument list)."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("path", _sources(), ids=_relative)
def test_only_the_backends_know_namespaces(path: Path) -> None:
    where = _relative(path)
    if where.startswith(NAMESPACE_OWNERS):
        return
    text = path.read_text(encoding="utf-8")
    problems = [f"{what}: {value!r}" for value in _code_strings(ast.parse(text))
                for what, pattern in FORBIDDEN_STRINGS if pattern.search(value)]
    problems += [what for what, pattern in FORBIDDEN_CODE if pattern.search(_code_lines(text))]
    assert problems == [], f"{where}: ask the backend (lab.backend.protocol) instead"


def test_the_check_finds_what_it_looks_for() -> None:
    """The patterns catch the forms they are meant for (a check that cannot fail is none)."""
    code = ('import x\nfrom lab.backend.netns.names import netns_name\n'
            'argv = ["ip", "-n", ns, "link"]\npath = NETNS_DIR / name\n'
            'tool = "/usr/bin/nsenter"\nns = f"al.{lab}.{node}"\nhidden = "_emu"\n'
            'base = "/run/netns"\n')
    strings = _code_strings(ast.parse(code))
    found = {what for value in strings for what, pattern in FORBIDDEN_STRINGS
             if pattern.search(value)}
    found |= {what for what, pattern in FORBIDDEN_CODE if pattern.search(_code_lines(code))}
    assert found == {what for what, _ in FORBIDDEN_STRINGS + FORBIDDEN_CODE}
    assert _code_strings(ast.parse('"""/run/netns in a docstring"""')) == []


def test_no_two_top_level_modules_share_a_prefix() -> None:
    names = sorted(p.stem if p.is_file() else p.name for p in LAB.iterdir()
                   if (p.suffix == ".py" and p.stem != "__init__")
                   or (p.is_dir() and (p / "__init__.py").exists()))
    prefixes = {name.split("_")[0] for name in names}
    shared = [name for name in names if name.split("_")[0] != name
              or sum(n.split("_")[0] == name for n in names) > 1]
    assert shared == [] and len(prefixes) == len(names), names


@pytest.mark.parametrize("package", sorted(p.parent for p in LAB.rglob("__init__.py")),
                         ids=_relative)
def test_every_package_says_what_it_owns(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 8, f"{_relative(package)}/__init__.py has no docstring"
