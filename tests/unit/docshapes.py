"""Shapes of input documents, shared by the property and fuzz tests: the keys a pydantic model
tree accepts, and every slot of a parsed document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def model_keys(*roots: Any) -> list[str]:
    """Every field name of ``roots`` and the models nested in their fields, sorted."""
    keys: set[str] = set()
    stack, seen = list(roots), set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            keys.add(name)
            stack.extend(_models_in(field.annotation))
    return sorted(keys)


def _models_in(annotation: Any) -> Iterator[Any]:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


def document_slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key-or-index) in a document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from document_slots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from document_slots(value)
