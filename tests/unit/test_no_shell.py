"""No subprocess is ever built from a shell string: lab/ and analysis/ run programs with
argument lists only (STYLE.md), so no user-supplied name can become shell syntax.

The search looks at code, not prose: comments and string literals are blanked out before the
patterns are matched, so a docstring may talk about `shell=True` without failing the test.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("lab", "analysis")
FORBIDDEN_PYTHON = {
    "shell=True": re.compile(r"\bshell\s*=\s*True\b"),
    "os.system(": re.compile(r"\bos\s*\.\s*system\s*\("),
    "os.popen(": re.compile(r"\bos\s*\.\s*popen\s*\("),
    "subprocess.getoutput": re.compile(r"\bsubprocess\s*\.\s*get(status)?output\b"),
    "commands.": re.compile(r"(?<![\w.])commands\s*\."),
    "import commands": re.compile(r"\b(import|from)\s+commands\b"),
    "create_subprocess_shell": re.compile(r"\bcreate_subprocess_shell\b"),
}
FORBIDDEN_C = re.compile(r"(?<![\w.])(system|popen)\s*\(")
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput")}


def python_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def code_only(source: str) -> str:
    """The source with comments removed and every string literal replaced by ''."""
    tokens = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING or token.type in _FSTRING_TOKENS:
            token = token._replace(string="''" if token.type == tokenize.STRING else "")
        tokens.append(token)
    return tokenize.untokenize(tokens)


_FSTRING_TOKENS = {getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE",
                                                  "FSTRING_END") if hasattr(tokenize, n)}


def shell_calls_in(tree: ast.AST) -> list[str]:
    """Calls with a true-ish `shell=` keyword, or to a shell-running function."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                               and keyword.value.value is False):
                found.append(f"line {node.lineno}: shell={ast.unparse(keyword.value)}")
        func = node.func
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in SHELL_CALLS):
            found.append(f"line {node.lineno}: {func.value.id}.{func.attr}()")
    return found


def test_the_search_covers_the_packages() -> None:
    files = python_files()
    assert len(files) > 40
    assert REPO / "lab" / "backend" / "processes.py" in files


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_shell_strings_in_python(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    code = code_only(source)
    problems = [f"{label}" for label, pattern in FORBIDDEN_PYTHON.items()
                if pattern.search(code)]
    problems += shell_calls_in(ast.parse(source, filename=str(path)))
    assert problems == [], f"{path.relative_to(REPO)} builds a subprocess from a shell " \
                           f"string: {problems}; pass an argument list instead"


def test_no_shell_calls_in_c_helpers() -> None:
    sources = sorted((REPO / "lab").rglob("*.c"))
    assert sources, "the C probers/emulator moved: update this test"
    offenders = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in sources
                 for m in FORBIDDEN_C.finditer(p.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("snippet", [
    "subprocess.run('ls', shell=True)\n",
    "subprocess.Popen(cmd, shell = True)\n",
    "import os\nos.system('ls ' + name)\n",
    "os.popen(cmd).read()\n",
    "out = subprocess.getoutput(cmd)\n",
    "out = subprocess.getstatusoutput(cmd)\n",
    "import commands\n",
    "x = commands.getoutput(cmd)\n",
    "asyncio.create_subprocess_shell(cmd)\n",
])
def test_the_patterns_catch_shell_use(snippet: str) -> None:
    code = code_only(snippet)
    caught = any(p.search(code) for p in FORBIDDEN_PYTHON.values())
    assert caught or shell_calls_in(ast.parse(snippet))


@pytest.mark.parametrize("snippet", [
    '"""Never use shell=True or os.system(...)."""\n',
    "# os.popen( is forbidden\nx = 1\n",
    "message = f'no shell=True {x}'\n",
    "subprocess.run(['ls'], shell=False)\n",
    "frr_commands.append(x)\n",
])
def test_prose_and_safe_code_pass(snippet: str) -> None:
    code = code_only(snippet)
    assert not any(p.search(code) for p in FORBIDDEN_PYTHON.values())
    assert shell_calls_in(ast.parse(snippet)) == []
