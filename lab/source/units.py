"""Parsing of the units users write in files: durations, rates, percentages."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m)\s*$")
_DURATION_SCALE_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)\s*$", re.IGNORECASE)
_RATE_SCALE = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")

DURATION_HINT = "write a number with a unit: '300ms', '3s', '1.5s', '2m' or '500us'"
RATE_HINT = "write a number with a unit: '100mbit', '1gbit', '512kbit'"
PERCENT_HINT = "write a percentage such as '0.5%' or a number between 0 and 100"


def parse_duration_ms(value: object) -> float:
    """'300ms' -> 300.0; '3s' -> 3000.0. Bare numbers are refused: units avoid s/ms mix-ups."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration")
    return _finite(value, float(match.group(1)) * _DURATION_SCALE_MS[match.group(2)])


def _finite(value: object, number: float) -> float:
    """Refuse numbers too large for a float ('999...9s' would become inf)."""
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is too large")
    return number


def parse_rate_bps(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a rate")
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a rate")
    bps = round(_finite(value, float(match.group(1)) * _RATE_SCALE[match.group(2).lower()]))
    if bps <= 0:
        raise ValueError(f"{value!r} must be more than 0")
    return bps


def parse_percent(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a percentage")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (match := _PERCENT.match(value)):
        number = float(match.group(1))
    else:
        raise ValueError(f"{value!r} is not a percentage")
    if not 0.0 <= number <= 100.0:
        raise ValueError(f"{value!r} is outside 0-100 %")
    return number


def format_duration_ms(ms: float) -> str:
    """3000.0 -> '3s'; 1500.0 -> '1500ms'; 0.5 -> '0.5ms'. Parses back with parse_duration_ms
    (so never an exponent: `{:g}` would give '1e+06ms')."""
    if ms >= 1000 and ms % 1000 == 0:
        return f"{int(ms // 1000)}s"
    return f"{ms:.3f}".rstrip("0").rstrip(".") + "ms"
