"""Budgets: a scenario's ``expect:`` list checked against the figures of its run.

An expectation selects events and flows (``step``, ``fault``, ``client``, ``service``,
``family``: ``ipv4`` or ``ipv6``; each optional) and bounds figures the run already computes,
per trial or as a statistic over the trials::

    {fault: node-crash, client: us-c1, outage_ms: {p95: "<= 1500"}, tcp_broken: 0}
    {fault: site-drain, outage_ms: {max: "== 0"}, site_after: nyc}

- figures: ``outage_ms`` (the longest loss window), ``rate_derived_ms``, ``lost_ms`` (the
  loss-derived outage), ``loss_windows``, ``loss_ratio``, ``tcp_broken`` and
  ``rtt_after_ms`` per flow, ``detection_ms`` per event (its verdict names no client); a
  bound is a condition (``"<= 1500"``, ``"< 2"``, ``"== 0"``, ``">= 10"``, ``"!= 0"``) or a
  number (meaning ``==``), either for every trial's value, or per statistic over the trials
  (``median``, ``p95``, ``min``, ``max``: the definitions of summary.json's ``aggregate``);
- sites: ``site_after: SITE`` or ``[SITE, ...]`` (the client lands there, or on one of
  them, after the event, in every trial) and
  ``stays: true`` (it lands where it was before).

Each (selected event and flow, bound) gives one verdict; only complete and valid trials
count. An expectation that selects nothing, or whose figure has no value in any selected
trial, gives one failed verdict that says so: a budget never passes by matching nothing.
Verdicts are plain dicts (summary.json's ``budgets``)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

STATISTICS = ("median", "p95", "min", "max")
FIGURES = {"outage_ms": "outage_ms", "rate_derived_ms": "rate_derived_ms",
           "lost_ms": "loss_derived_ms", "loss_windows": "loss_windows",
           "loss_ratio": "loss_ratio", "tcp_broken": "tcp_broken",
           "rtt_after_ms": "rtt_after_ms", "detection_ms": "detection_ms"}
EVENT_FIGURES = frozenset({"detection_ms"})  # one value per event, not per flow
SELECTORS = ("step", "fault", "client", "service", "family")
SITE_CHECKS = ("site_after", "stays")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt}
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_CONDITION = re.compile(rf"^\s*(<=|>=|==|!=|<|>)?\s*({_NUMBER})\s*(?:ms)?\s*$")

Subject = tuple[int, str, str, str, str]  # step, fault, client, service, family


def parse_condition(bound: str | float) -> tuple[str, float]:
    """``"<= 1500"`` -> ("<=", 1500.0); a bare number means equality. ValueError otherwise."""
    if isinstance(bound, bool):
        raise ValueError(f"{bound!r} is not a condition")
    if isinstance(bound, int | float):
        return "==", float(bound)
    match = _CONDITION.match(bound)
    if match is None:
        raise ValueError(f"{bound!r} is not a condition: write e.g. \"<= 1500\" or \"== 0\"")
    return match.group(1) or "==", float(match.group(2))


def holds(value: float, bound: str | float) -> bool:
    op, limit = parse_condition(bound)
    return OPERATORS[op](float(value), limit)


def _samples(summary: Mapping[str, Any]) -> dict[Subject, list[dict[str, Any]]]:
    """Per (step, fault, client, service, family): one dict of figures per complete, valid
    trial."""
    found: dict[Subject, list[dict[str, Any]]] = {}
    for trial in summary.get("trials", []):
        if trial.get("complete") is False or trial.get("valid") is False:
            continue
        for event in trial.get("events", []):
            for client in event.get("clients", []):
                subject = (int(event["step"]), str(event["fault"]), str(client["client"]),
                           str(client["service"]), str(client.get("family", "ipv4")))
                figures = {key: client.get(source) for key, source in FIGURES.items()}
                figures["detection_ms"] = event.get("detection_ms")
                figures["site_before"] = client.get("site_before")
                figures["site_after"] = client.get("site_after")
                found.setdefault(subject, []).append(figures)
    return found


def _selected(expect: Mapping[str, Any], subject: Subject) -> bool:
    return all(expect.get(key) is None or expect[key] == value
               for key, value in zip(SELECTORS, subject, strict=True))


def _bounds(expect: Mapping[str, Any]) -> Iterator[tuple[str, str, str | float]]:
    """(figure, statistic or "each", bound) for every bound the expectation sets."""
    for figure in FIGURES:
        bound = expect.get(figure)
        if bound is None:
            continue
        if isinstance(bound, Mapping):
            for statistic, condition in bound.items():
                yield figure, str(statistic), condition
        else:
            yield figure, "each", bound


def _per_event(subjects: list[Subject], figure: str) -> list[Subject]:
    """The subjects a figure is checked on: each flow, or one per event for a figure of the
    event itself (detection)."""
    if figure not in EVENT_FIGURES:
        return subjects
    first: dict[tuple[int, str], Subject] = {}
    for subject in subjects:
        first.setdefault(subject[:2], subject)
    return list(first.values())


def _statistic(values: Sequence[float], statistic: str) -> float:
    from lab.measure.metrics.summary import describe

    described = describe(values)
    assert described is not None
    return float(described[statistic])


def _verdict(expect: Mapping[str, Any], subject: Subject | None, figure: str, statistic: str,
             condition: str | float | None, value: Any, passed: bool,
             reason: str = "") -> dict[str, Any]:
    verdict: dict[str, Any] = {"expect": dict(expect), "figure": figure,
                               "statistic": statistic, "condition": condition, "value": value,
                               "pass": passed}
    verdict.update(dict(zip(SELECTORS, subject, strict=True)) if subject
                   else dict.fromkeys(SELECTORS))
    if reason:
        verdict["reason"] = reason
    return verdict


def _check_figure(expect: Mapping[str, Any], subject: Subject, trials: list[dict[str, Any]],
                  figure: str, statistic: str, bound: str | float) -> dict[str, Any] | None:
    values = [float(t[figure]) for t in trials if t.get(figure) is not None]
    if not values:
        return None
    if statistic == "each":
        return _verdict(expect, subject, figure, "each", bound, values,
                        all(holds(v, bound) for v in values))
    value = _statistic(values, statistic)
    return _verdict(expect, subject, figure, statistic, bound, value, holds(value, bound))


def _check_sites(expect: Mapping[str, Any], subject: Subject,
                 trials: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The site checks of one event and flow (none where the flow has no site: a service
    without probes of the client)."""
    if all(t.get("site_after") is None for t in trials):
        return
    site = expect.get("site_after")
    if site is not None:
        allowed = [site] if isinstance(site, str) else list(site)
        after = [t.get("site_after") for t in trials]
        yield _verdict(expect, subject, "site_after", "each", site, after,
                       all(a in allowed for a in after))
    if expect.get("stays"):
        pairs = [[t.get("site_before"), t.get("site_after")] for t in trials]
        yield _verdict(expect, subject, "stays", "each", True, pairs,
                       all(before is not None and before == after for before, after in pairs))


def evaluate(expectations: Sequence[Mapping[str, Any]],
             summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every verdict of every expectation, in order."""
    samples = _samples(summary)
    verdicts: list[dict[str, Any]] = []
    for expect in expectations:
        subjects = sorted(s for s in samples if _selected(expect, s))
        if not subjects:
            verdicts.append(_verdict(expect, None, "", "", None, None, False,
                                     "no event of a complete, valid trial matches"))
            continue
        for figure, statistic, bound in _bounds(expect):
            found = [v for s in _per_event(subjects, figure)
                     if (v := _check_figure(expect, s, samples[s], figure, statistic, bound))]
            if figure in EVENT_FIGURES:  # one verdict per event: the flows share its value
                for verdict in found:
                    verdict["client"] = verdict["service"] = verdict["family"] = None
            verdicts += found or [_verdict(expect, None, figure, statistic, bound, None, False,
                                           f"{figure} has no value in the matching events")]
        sites = [v for s in subjects for v in _check_sites(expect, s, samples[s])]
        if not sites and (expect.get("site_after") is not None or expect.get("stays")):
            sites = [_verdict(expect, None, "site_after", "each", expect.get("site_after"),
                              None, False, "no site was measured in the matching events")]
        verdicts += sites
    return verdicts


def failed(verdicts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [v for v in verdicts if not v["pass"]]


__all__ = ["FIGURES", "OPERATORS", "SELECTORS", "SITE_CHECKS", "STATISTICS", "evaluate",
           "failed", "holds", "parse_condition"]
