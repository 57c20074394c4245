"""The readiness state machine: Kubernetes thresholds, resets and flapping."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.apps.agent.readiness import ProbePolicy, ProbeState, Transition, run_results, transition

DEFAULT = ProbePolicy()  # failure 3, success 1


def readiness(results: list[bool], policy: ProbePolicy = DEFAULT) -> list[bool]:
    return [s.ready for s in run_results(results, policy)]


def test_a_pod_starts_unready_and_one_success_makes_it_ready() -> None:
    assert ProbeState().ready is False
    assert readiness([True]) == [True]


def test_success_threshold_needs_consecutive_successes() -> None:
    policy = ProbePolicy(success_threshold=3)
    assert readiness([True, True, False, True, True, True], policy) == [
        False, False, False, False, False, True]


def test_failure_threshold_needs_consecutive_failures() -> None:
    assert readiness([True, False, False, True, False, False, False]) == [
        True, True, True, True, True, True, False]


def test_a_flapping_pod_that_never_fails_three_times_in_a_row_stays_ready() -> None:
    assert all(readiness([True] + [False, False, True] * 10))


def test_flapping_with_both_thresholds_above_one_holds_its_state() -> None:
    policy = ProbePolicy(failure_threshold=2, success_threshold=2)
    assert readiness([True, True, False, True, False, True, False, False, True, False, True],
                     policy) == [False, True, True, True, True, True, True, False, False,
                                 False, False]


def test_an_unready_pod_failing_stays_unready_and_counts() -> None:
    states = run_results([False] * 5, DEFAULT)
    assert [s.ready for s in states] == [False] * 5
    assert states[-1].failures == 5 and states[-1].successes == 0


def test_transitions_are_reported_once() -> None:
    states = [ProbeState(), *run_results([True, True, False, False, False, False], DEFAULT)]
    changes = [transition(a, b) for a, b in itertools.pairwise(states)]
    assert changes == [Transition.BECAME_READY, None, None, None, Transition.BECAME_UNREADY, None]
    assert Transition.BECAME_READY.value == "pod_ready"
    assert Transition.BECAME_UNREADY.value == "pod_unready"


@pytest.mark.parametrize("field", ["period_ms", "timeout_ms", "failure_threshold",
                                   "success_threshold"])
def test_policy_values_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ProbePolicy(**{field: 0})


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_readiness_follows_the_last_decisive_run(results: list[bool], failure: int,
                                                  success: int) -> None:
    policy = ProbePolicy(failure_threshold=failure, success_threshold=success)
    ready = False
    run_kind, run_length = None, 0
    for ok, state in zip(results, run_results(results, policy), strict=True):
        run_length = run_length + 1 if ok == run_kind else 1
        run_kind = ok
        if ok and run_length >= success:
            ready = True
        if not ok and run_length >= failure:
            ready = False
        assert state.ready == ready
