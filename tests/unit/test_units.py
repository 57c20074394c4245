"""Units users write in topology files: durations, rates, percentages."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.source.units import format_duration_ms, parse_duration_ms, parse_percent, parse_rate_bps

# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("300ms", 300.0),
        ("3s", 3000.0),
        ("1.5s", 1500.0),
        ("2m", 120_000.0),
        ("500us", 0.5),
        ("0ms", 0.0),
        ("0s", 0.0),
        ("0.25ms", 0.25),
        ("10 ms", 10.0),  # a space between number and unit is fine
        (" 3s ", 3000.0),
        ("007s", 7000.0),
        ("1us", 0.001),
    ],
)
def test_duration_parses(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize(
    "value",
    [
        "", " ", "s", "ms", "3", "3.", ".5s", "3h", "3 hours", "3sec", "3S", "3MS", "-1s", "+1s",
        "1e3ms", "1,5s", "3 s s", "inf s", "nans", "3s3s", "3\ns x",
    ],
)
def test_duration_refuses_text(value: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value", [3, 0, 3.0, -1, 1e9, math.inf, math.nan])
def test_duration_refuses_bare_numbers_and_says_the_unit_is_missing(value: object) -> None:
    with pytest.raises(ValueError, match="has no unit"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value", [None, True, False, [], ["3s"], {"s": 3}, b"3s"])
def test_duration_refuses_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_ms(value)


def test_duration_too_large_for_a_float_is_refused_not_infinite() -> None:
    with pytest.raises(ValueError, match="is too large"):
        parse_duration_ms("9" * 400 + "ms")


def test_duration_error_shows_the_value() -> None:
    with pytest.raises(ValueError, match=r"^'soon' is not a duration$"):
        parse_duration_ms("soon")


@pytest.mark.parametrize(
    ("ms", "text"),
    [(3000.0, "3s"), (9000.0, "9s"), (60_000.0, "60s"), (300.0, "300ms"), (1500.0, "1500ms"),
     (0.0, "0ms"), (0.5, "0.5ms"), (999.0, "999ms"), (1000.0, "1s"), (0.001, "0.001ms"),
     (1_000_001.0, "1000001ms"), (120_000.0, "120s")],
)
def test_format_duration(ms: float, text: str) -> None:
    assert format_duration_ms(ms) == text


@settings(deadline=None, max_examples=200)
@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips_whole_milliseconds(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(float(ms))) == ms


# ---------------------------------------------------------------------------------- rates


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("100mbit", 100_000_000),
        ("1gbit", 1_000_000_000),
        ("512kbit", 512_000),
        ("1bit", 1),
        ("1.5mbit", 1_500_000),
        ("100Mbit", 100_000_000),  # rates are case-insensitive (tc writes Mbit)
        ("1GBIT", 1_000_000_000),
        (" 10 kbit ", 10_000),
        ("0.6bit", 1),  # rounded to whole bits
    ],
)
def test_rate_parses(text: str, bps: int) -> None:
    assert parse_rate_bps(text) == bps


@pytest.mark.parametrize(
    "value", ["", "mbit", "100", "10mbps", "1MB", "1mb", "fast", "-1mbit", "1e3kbit", "1 0mbit"]
)
def test_rate_refuses_text(value: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate_bps(value)


@pytest.mark.parametrize("value", ["0mbit", "0bit", "0.4bit", "0.0gbit"])
def test_rate_must_be_positive(value: str) -> None:
    with pytest.raises(ValueError, match="must be more than 0"):
        parse_rate_bps(value)


@pytest.mark.parametrize("value", [100, 0, 1.5])
def test_rate_refuses_bare_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="has no unit"):
        parse_rate_bps(value)


@pytest.mark.parametrize("value", [None, True, ["1mbit"]])
def test_rate_refuses_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate_bps(value)


def test_rate_too_large_for_a_float_is_a_value_error_not_an_overflow() -> None:
    # round(inf) raises OverflowError, which pydantic would not turn into a validation error
    with pytest.raises(ValueError, match="is too large"):
        parse_rate_bps("9" * 400 + "gbit")


# ---------------------------------------------------------------------------- percentages


@pytest.mark.parametrize(
    ("value", "percent"),
    [
        (0, 0.0),
        (100, 100.0),
        (0.5, 0.5),
        (99.99, 99.99),
        ("0.5%", 0.5),
        ("100%", 100.0),
        ("0%", 0.0),
        (" 5 % ", 5.0),
        ("12.25%", 12.25),
    ],
)
def test_percent_parses(value: object, percent: float) -> None:
    assert parse_percent(value) == pytest.approx(percent)


@pytest.mark.parametrize(
    "value", [-1, -0.001, 100.001, 150, "150%", "100.5%", math.inf, -math.inf, math.nan]
)
def test_percent_outside_0_to_100_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="outside 0-100 %"):
        parse_percent(value)


@pytest.mark.parametrize(
    "value", [True, False, None, "5", "five%", "%", "-5%", "5%%", "0.5 percent", [5], {}]
)
def test_percent_refuses_non_percentages(value: object) -> None:
    with pytest.raises(ValueError, match="is not a percentage"):
        parse_percent(value)


@settings(deadline=None, max_examples=200)
@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_every_number_from_0_to_100_is_a_percentage(number: float) -> None:
    assert parse_percent(number) == number
    assert parse_percent(f"{number:f}%") == pytest.approx(number, abs=1e-6)
