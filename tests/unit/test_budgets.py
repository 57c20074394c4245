"""Budgets: the evaluator on hand-made summaries (and Hypothesis for the statistics), the
scenario's `expect:` as validated input, and the JUnit file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.cli.junit import junit_xml, verdict_name
from lab.errors import ScenarioError
from lab.measure.metrics.budgets import evaluate, failed, holds, parse_condition
from lab.scenario.load import load_scenario
from tests.conftest import REPO


def _client(client: str, outage: float | None, *, service: str = "echo",
            before: str | None = "alpha", after: str | None = "alpha",
            tcp: int = 0) -> dict[str, Any]:
    return {"client": client, "service": service, "outage_ms": outage,
            "loss_derived_ms": outage, "tcp_broken": tcp, "rtt_after_ms": 4.0,
            "site_before": before, "site_after": after}


def _summary(outages: list[float | None], *, fault: str = "node-crash",
             complete: bool = True, valid: bool = True, **client: Any) -> dict[str, Any]:
    trials = [{"trial": i, "complete": complete, "valid": valid,
               "events": [{"step": 0, "fault": fault, "detection_ms": 700.0,
                           "clients": [_client("east-c1", outage, **client),
                                       _client("west-c1", 0.0, before="beta", after="beta")]}]}
              for i, outage in enumerate(outages)]
    return {"scenario": "s", "complete": complete, "trials": trials}


@pytest.mark.parametrize(("bound", "parsed"), [("<= 1500", ("<=", 1500.0)), ("==0", ("==", 0.0)),
                                               ("> 2.5 ms", (">", 2.5)), (0, ("==", 0.0)),
                                               ("12", ("==", 12.0)), (1.5, ("==", 1.5))])
def test_conditions(bound: str | float, parsed: tuple[str, float]) -> None:
    assert parse_condition(bound) == parsed


@pytest.mark.parametrize("bound", ["about 3", "<=", "=< 3", "", True, "<= 1 s"])
def test_bad_conditions(bound: Any) -> None:
    with pytest.raises(ValueError):
        parse_condition(bound)


def test_each_trial_and_statistics() -> None:
    summary = _summary([800.0, 900.0, 1600.0])
    each, p95, median = evaluate([{"client": "east-c1", "outage_ms": "<= 1500"},
                                  {"client": "east-c1", "outage_ms": {"p95": "<= 1500"}},
                                  {"client": "east-c1", "outage_ms": {"median": "<= 1000"}}],
                                 summary)
    assert each["value"] == [800.0, 900.0, 1600.0] and not each["pass"]
    assert p95["value"] == pytest.approx(1530.0) and not p95["pass"]
    assert median["value"] == 900.0 and median["pass"]
    assert (each["step"], each["fault"], each["client"], each["service"]) == (
        0, "node-crash", "east-c1", "echo")


def test_every_selected_flow_gets_its_verdict() -> None:
    verdicts = evaluate([{"fault": "node-crash", "outage_ms": {"max": "<= 1000"}}],
                        _summary([900.0, 1200.0]))
    assert [(v["client"], v["pass"]) for v in verdicts] == [("east-c1", False),
                                                            ("west-c1", True)]
    assert len(failed(verdicts)) == 1


def test_a_budget_never_passes_by_matching_nothing() -> None:
    summary = _summary([900.0])
    nothing, = evaluate([{"fault": "site-drain", "outage_ms": "== 0"}], summary)
    assert not nothing["pass"] and "no event" in nothing["reason"]
    novalue, = evaluate([{"client": "east-c1", "service": "web", "outage_ms": "== 0"}],
                        _summary([None]))
    assert not novalue["pass"]
    incomplete, = evaluate([{"outage_ms": "<= 5000"}], _summary([900.0], complete=False))
    assert not incomplete["pass"]
    invalid, = evaluate([{"outage_ms": "<= 5000"}], _summary([900.0], valid=False))
    assert not invalid["pass"]


def test_loss_windows_ratio_and_rate_derived_are_budgets_too(tmp_path: Path) -> None:
    summary = _summary([1.0, 2.0])
    for trial in summary["trials"]:  # sporadic loss: short outage, many windows
        trial["events"][0]["clients"][0].update(rate_derived_ms=8000.0, loss_windows=80,
                                                loss_ratio=0.01)
    verdicts = evaluate([{"client": "east-c1", "outage_ms": "<= 10",
                          "rate_derived_ms": {"max": "<= 1500"}, "loss_windows": "<= 1",
                          "loss_ratio": {"median": "<= 0.001"}}], summary)
    by_figure = {v["figure"]: v for v in verdicts}
    assert by_figure["outage_ms"]["pass"]
    assert not by_figure["rate_derived_ms"]["pass"] and by_figure["rate_derived_ms"][
        "value"] == 8000.0
    assert not by_figure["loss_windows"]["pass"] and not by_figure["loss_ratio"]["pass"]
    loaded = load_scenario(_scenario(tmp_path, 'expect:\n  - {loss_ratio: "<= 0.001", '
                                     'loss_windows: {p95: "<= 2"}}\n'))
    (expect,) = loaded.scenario.expect
    assert expect.as_dict() == {"loss_ratio": "<= 0.001", "loss_windows": {"p95": "<= 2"}}


def test_sites_and_tcp() -> None:
    moved = _summary([900.0, 950.0], after="beta", tcp=1)
    verdicts = evaluate([{"client": "east-c1", "site_after": "beta", "tcp_broken": 0},
                         {"client": "east-c1", "stays": True}], moved)
    by_figure = {v["figure"]: v for v in verdicts}
    assert by_figure["site_after"]["pass"] and by_figure["site_after"]["value"] == ["beta"] * 2
    assert not by_figure["tcp_broken"]["pass"] and not by_figure["stays"]["pass"]
    stayed = evaluate([{"stays": True}], _summary([900.0]))
    assert all(v["pass"] for v in stayed) and len(stayed) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1,
                max_size=30),
       st.sampled_from(["median", "p95", "min", "max"]),
       st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_statistic_verdicts_agree_with_numpy(values: list[float], statistic: str,
                                             limit: float) -> None:
    verdict, = evaluate([{"client": "east-c1", "outage_ms": {statistic: f"<= {limit}"}}],
                        _summary(list(values)))
    q = {"median": 50, "p95": 95, "min": 0, "max": 100}[statistic]
    expected = float(np.percentile(np.asarray(values), q))
    assert verdict["value"] == pytest.approx(expected, abs=1e-5)
    if abs(expected - limit) > 1e-5:
        assert verdict["pass"] == (expected <= limit)
    assert holds(verdict["value"], f"<= {verdict['value']}")


def _scenario(tmp_path: Path, expect: str) -> Path:
    text = (REPO / "tests/data/scenarios/mini-node-crash.yaml").read_text()
    text = text.replace("topology: topologies/two-sites-mini.yaml",
                        f"topology: {REPO / 'topologies/two-sites-mini.yaml'}")
    path = tmp_path / "s.yaml"
    path.write_text(text + expect)
    return path


def test_expectations_load_as_written(tmp_path: Path) -> None:
    loaded = load_scenario(_scenario(tmp_path, 'expect:\n  - {fault: node-crash, client: '
                                     'east-c1, outage_ms: {p95: "<= 1500"}, tcp_broken: 0}\n'))
    assert [e.as_dict() for e in loaded.scenario.expect] == [
        {"fault": "node-crash", "client": "east-c1", "outage_ms": {"p95": "<= 1500"},
         "tcp_broken": 0}]


def test_bad_expectations_are_reported_with_line_and_hint(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "expect:\n"
                     "  - {fault: site-drain, outage_ms: 0}\n"
                     "  - {client: nobody, outage_ms: {p99: '<= 1'}}\n"
                     "  - {client: east-c1, outage_ms: 'about 3'}\n"
                     "  - {client: east-c1}\n"
                     "  - {service: web, site_after: mars, stays: true}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = "\n".join(issue.format() for issue in caught.value.issues)
    assert "expect[1].outage_ms" in text  # p99 is no statistic
    assert "about 3" in text and "at least one figure" in text
    assert all(issue.line for issue in caught.value.issues)
    path = _scenario(tmp_path, "expect:\n  - {fault: site-drain, outage_ms: 0}\n"
                     "  - {client: nobody, outage_ms: 1}\n  - {site_after: mars}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {"expect[0].fault", "expect[1].client", "expect[2].site_after"}


def test_junit_has_one_case_per_verdict(tmp_path: Path) -> None:
    verdicts = evaluate([{"fault": "node-crash", "outage_ms": {"max": "<= 1000"}},
                         {"fault": "site-drain", "outage_ms": 0}], _summary([1200.0]))
    root = ET.fromstring(junit_xml("mini-node-crash", verdicts, 12.5))
    assert root.tag == "testsuite" and root.get("tests") == "3" and root.get("failures") == "2"
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == [verdict_name(v) for v in verdicts]
    assert cases[0].get("name") == "step 0 node-crash east-c1/echo outage_ms max <= 1000"
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    assert "no event" in (cases[2].find("failure").get("message") or "")  # type: ignore[union-attr]


def test_detection_is_checked_once_per_event() -> None:
    verdict, = evaluate([{"fault": "node-crash", "detection_ms": {"max": "<= 1000"}}],
                        _summary([900.0, 950.0]))
    assert verdict["pass"] and verdict["value"] == 700.0
    assert verdict["client"] is None and verdict["step"] == 0


def test_site_after_may_name_several_sites() -> None:
    moved = _summary([0.0, 0.0], after="gamma")
    ok, = evaluate([{"client": "east-c1", "site_after": ["beta", "gamma"]}], moved)
    assert ok["pass"] and ok["value"] == ["gamma", "gamma"]
    wrong, = evaluate([{"client": "east-c1", "site_after": ["beta"]}], moved)
    assert not wrong["pass"]
