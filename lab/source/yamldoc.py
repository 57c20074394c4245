"""Read a YAML document into plain Python data while remembering the line of every value.

Validators report problems as ``file:line: path``; this module supplies the lines. Paths use
the notation ``sites[0].fabric.spines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.errors import InputIssue

PathKey = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


def format_path(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class SourceDocument:
    """A parsed document plus the 1-based line of every mapping key and list item."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, parts: Sequence[str | int]) -> int | None:
        """Line of the value at ``parts``, or of its nearest ancestor that exists."""
        key = tuple(parts)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def issue(self, parts: Sequence[str | int], message: str, hint: str = "") -> InputIssue:
        return InputIssue(self.file, self.line_of(parts), format_path(parts), message, hint)


MAX_VALUES = 100_000
"""More values than any topology has; aliases of aliases can expand exponentially."""


class _TooLargeError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _DocumentBuilder:
    def __init__(self, loader: yaml.SafeLoader, doc: SourceDocument) -> None:
        self.loader = loader
        self.doc = doc
        self.issues: list[InputIssue] = []
        self.count = 0
        self.open: set[int] = set()  # collections being built: an alias to one is a cycle

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        line = node.start_mark.line + 1
        self.doc.lines.setdefault(path, line)
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLargeError(line)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self._construct(node, path)
        if id(node) in self.open:
            self.issues.append(
                InputIssue(self.doc.file, line, format_path(path),
                           "an alias refers to a mapping or list that contains it",
                           "an anchor (&) cannot be used inside itself; write the values out")
            )
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def _construct(self, node: yaml.Node, path: PathKey) -> Any:
        """Construct a scalar or key; a value PyYAML cannot build (e.g. the date 2024-13-45)
        becomes an issue."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError) as exc:
            self.issues.append(
                InputIssue(self.doc.file, node.start_mark.line + 1, format_path(path),
                           f"the value {node.value!r} cannot be read: {exc}",
                           "quote the value to make it a string, e.g. '2024-01-31' -> "
                           "\"2024-01-31\"")
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[Any, Any]:
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        # flatten_mapping puts the merged pairs first: a key written in the mapping overrides
        # a merged one (as YAML specifies), only a key written twice is a duplicate
        merged = len(node.value) - own
        written: set[str] = set()
        result: dict[Any, Any] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key = self._construct(key_node, path)
            if not isinstance(key, str | int | float | bool) and key is not None:
                self.issues.append(
                    InputIssue(self.doc.file, key_node.start_mark.line + 1, format_path(path),
                               "mapping keys must be plain scalars",
                               "write the key as a simple word, e.g. `name:`")
                )
                continue
            key_text = str(key)
            child = (*path, key_text)
            if key_text in written:
                self.issues.append(
                    InputIssue(self.doc.file, key_node.start_mark.line + 1, format_path(child),
                               f"duplicate key {key_text!r}",
                               f"the first is at line {self.doc.lines.get(child)}; each key may "
                               "appear once per mapping, so remove or merge the copies")
                )
                continue
            if index >= merged:
                written.add(key_text)
            self.doc.lines[child] = key_node.start_mark.line + 1
            result[key_text] = self.build(value_node, child)
        return result


def parse_yaml_text(text: str, file: str) -> tuple[SourceDocument, list[InputIssue]]:
    """Parse one YAML document; syntax problems come back as issues, never as exceptions."""
    doc = SourceDocument(file=file, data=None)
    try:
        loader = yaml.SafeLoader(text)  # checks every character up front
    except yaml.reader.ReaderError as exc:
        return doc, [_reader_issue(exc, text, file)]
    try:
        node = loader.get_single_node()
        if node is None:
            return doc, [InputIssue(file, 1, "", "the file is empty",
                                    "a topology needs at least `name:`, `transits:` and `sites:` "
                                    "(see topologies/two-sites-mini.yaml)")]
        builder = _DocumentBuilder(loader, doc)
        doc.data = builder.build(node, ())
        return doc, builder.issues
    except yaml.MarkedYAMLError as exc:
        return doc, [_syntax_issue(exc, file)]
    except _TooLargeError as exc:
        doc.data = None
        return doc, [InputIssue(file, exc.line, "", f"the document expands to more than "
                                f"{MAX_VALUES} values", "a topology is far smaller: check the "
                                "anchors (&) and aliases (*), which copy what they refer to")]
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        return doc, [InputIssue(file, None, "", f"YAML could not be read: {exc}",
                                "the file must be one YAML document")]
    finally:
        loader.dispose()


def _syntax_issue(exc: yaml.MarkedYAMLError, file: str) -> InputIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or exc.context or "unreadable YAML"
    if isinstance(exc, yaml.constructor.ConstructorError):
        hint = ("remove the `!tag`; topology files use plain YAML values" if "tag" in problem
                else "check the value on this line (e.g. a `<<:` merge needs a mapping)")
        return InputIssue(file, line, "", f"YAML value cannot be read: {problem}", hint)
    if "found another document" in problem:
        return InputIssue(file, line, "", "the file holds more than one YAML document",
                          "a topology file is one document: remove this `---` and what "
                          "follows, or move it to its own file")
    if "'\\t'" in problem:
        return InputIssue(file, line, "", "YAML syntax error: a tab character where YAML "
                          "expects spaces", "YAML indents with spaces only; replace the tab")
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.problem:
        where = exc.context_mark
        at = f" at line {where.line + 1}" if where is not None and where is not mark else ""
        message += f" ({exc.context}{at})"
    hint = "check indentation, colons and quoting around this line"
    if "mapping values are not allowed" in problem:
        hint = ("often a key indented deeper than the keys before it, or a value containing "
                "': ' that needs quotes")
    return InputIssue(file, line, "", message, hint)


def _reader_issue(exc: yaml.reader.ReaderError, text: str, file: str) -> InputIssue:
    """A character YAML does not allow (e.g. NUL or another control character)."""
    line = text.count("\n", 0, max(exc.position, 0)) + 1
    char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
    return InputIssue(file, line, "", f"the character {char} is not allowed in YAML",
                      "remove it; inside double quotes a control character can be written as "
                      "an escape such as \"\\t\"")


def read_yaml_file(path: Path) -> tuple[SourceDocument, list[InputIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SourceDocument(str(path), None), [
            InputIssue(str(path), None, "", "file not found", "check the path")]
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        return SourceDocument(str(path), None), [
            InputIssue(str(path), line, "", "the file is not UTF-8 text (byte "
                       f"{exc.object[exc.start]:#04x}: {exc.reason})",
                       "save the file as UTF-8")]
    except OSError as exc:
        return SourceDocument(str(path), None), [
            InputIssue(str(path), None, "", f"cannot read the file: {exc}",
                       "the file must be readable UTF-8 text")]
    return parse_yaml_text(text, str(path))
