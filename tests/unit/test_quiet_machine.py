"""tests.integration.quiet: a precise check is skipped only when the hypervisor took the
machine in every failed attempt; otherwise its failure stands, with the machine's figures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import quiet


def _machine(monkeypatch: pytest.MonkeyPatch, steals: list[float]) -> None:
    figures = iter(steals)

    def trial_fields(*_args: Any) -> dict[str, Any]:
        return {"host": {"cpu_busy": 0.5, "cpu_steal": next(figures), "cpu_pressure": 0.1}}

    monkeypatch.setattr(quiet, "trial_fields", trial_fields)


def _failing(attempts: list[int]) -> Any:
    def check(attempt: int) -> None:
        attempts.append(attempt)
        raise AssertionError("median 19.1 ms")

    return check


def test_a_passing_attempt_is_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, [0.3])
    assert quiet.on_a_quiet_machine(lambda attempt: attempt + 10) == 10


def test_a_failed_attempt_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, [0.0, 0.0])

    def check(attempt: int) -> int:
        assert attempt == 1
        return attempt

    assert quiet.on_a_quiet_machine(check) == 1


def test_every_attempt_on_a_stolen_machine_skips_with_the_figures(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, [0.27, 0.3, 0.1])
    attempts: list[int] = []
    with pytest.raises(pytest.skip.Exception, match=r"attempt 3: CPU busy 50%, taken by the "
                       r"hypervisor 10%.*median 19\.1 ms"):
        quiet.on_a_quiet_machine(_failing(attempts))
    assert attempts == [0, 1, 2]


def test_one_failure_on_a_quiet_machine_makes_the_test_fail(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, [0.27, 0.01, 0.3])
    with pytest.raises(AssertionError, match=r"median 19\.1 ms") as failure:
        quiet.on_a_quiet_machine(_failing([]))
    assert "attempt 2: CPU busy 50%, taken by the hypervisor 1%" in "".join(
        failure.value.__notes__)
