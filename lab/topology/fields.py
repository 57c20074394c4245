"""What the topology models share: their error constructor and the duration field (a unit
always given: ``300ms``, ``3s``; stored in milliseconds)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from lab.source.units import parse_duration_ms


def custom_error(kind: str, message: str) -> PydanticCustomError:
    """A validation error of its own kind (the kinds have hints: HINTS_BY_ERROR_TYPE)."""
    return PydanticCustomError(kind, message)


def _to_duration(value: object) -> float:
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise custom_error("duration", str(exc)) from exc


DurationMs = Annotated[float, BeforeValidator(_to_duration)]
