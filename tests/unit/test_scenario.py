"""Scenario files: shipped ones load, bad ones give every problem with line and hint, steps
become the right schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import ScenarioError
from lab.scenario.load import build_schedule, load_scenario
from lab.scenario.model import Scenario
from tests.conftest import REPO

SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
REQUIRED = {"node-crash-bfd", "node-crash-holdtimer", "leaf-link-down", "pod-failure",
            "site-isolation", "site-drain", "wan-latency-shift", "rolling-restart",
            "link-flap", "gray-failure", "node-drain", "speaker-upgrade-gr",
            "speaker-upgrade-no-gr", "kube-router-unready-pod", "metallb-unready-pod",
            "dual-homed-leaf-failure", "rolling-update"}


def test_every_required_scenario_is_shipped() -> None:
    assert {p.stem for p in SCENARIOS} >= REQUIRED


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    loaded = load_scenario(path)
    assert loaded.scenario.name == path.stem
    assert loaded.actions and loaded.scenario.description


def test_holdtimer_scenario_runs_on_its_own_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    bfd = load_scenario(REPO / "scenarios" / "node-crash-bfd.yaml")
    hold = load_scenario(REPO / "scenarios" / "node-crash-holdtimer.yaml")
    assert bfd.lab_name == "three-sites"
    assert hold.lab_name != bfd.lab_name
    timers = hold.plan.node("nyc-l1").timers
    assert timers is not None and timers.bfd is None and timers.hold_s == 9


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def _issues(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [i.format() for i in info.value.issues]


def test_schema_problems_all_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""name: Bad
topology: {REPO}/topologies/two-sites-mini.yaml
probe: {{interval: 1, flowz: 2}}
steps:
  - fault: node-explode
    target: x
  - {{wait: 1s, fault: link-down}}
""")
    issues = _issues(path)
    text = "\n".join(issues)
    assert "s.yaml:1: name:" in text
    assert "s.yaml:3: probe.interval: " in text and "has no unit" in text
    assert "unknown key 'flowz'" in text and "did you mean 'flows'" in text
    assert "s.yaml:5: steps[0].fault" in text
    assert "a step is either a `fault:` or a `wait:`" in text
    assert all("hint:" in issue for issue in issues)


def test_unknown_targets_are_reported_with_suggestions(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""name: bad-targets
topology: {REPO}/topologies/two-sites-mini.yaml
probe: {{clients: [east-c2]}}
steps:
  - {{fault: node-crash, target: alpha-k8s-n9}}
  - {{fault: wan-latency, target: alpha-l1--alpha-k8s-n1, delay: 10ms}}
  - {{fault: site-drain, target: gamma}}
  - {{fault: site-drain, target: {{serving: {{client: east-c1, service: dns}}}}}}
""")
    text = "\n".join(_issues(path))
    assert "probe.clients[0]: unknown client 'east-c2'" in text
    assert "did you mean 'east-c1'" in text
    assert "steps[0].target: unknown node 'alpha-k8s-n9'" in text
    assert "steps[1].target: unknown link" in text and "east--alpha-s1" in text
    assert "steps[2].target: unknown site 'gamma'" in text
    assert "`serving:` selects a node, a pod or a node's leaf link; site-drain needs a site" in text
    assert "unknown service 'dns'" in text


def test_missing_topology_file_is_an_input_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ntopology: nowhere.yaml\nsteps: [{wait: 1s}]\n")
    assert "topology file 'nowhere.yaml' not found" in "\n".join(_issues(path))


def _schedule(steps: list[dict[str, object]]) -> list[tuple[float, str, int]]:
    scenario = Scenario.model_validate({"name": "s", "steps": steps})
    return [(a.t_ms, a.kind, a.step) for a in build_schedule(scenario)]


def test_sequential_steps_follow_durations_and_waits() -> None:
    assert _schedule([
        {"fault": "pod-kill", "target": "p", "duration": "1s"},
        {"wait": "2s"},
        {"fault": "pod-kill", "target": "q"},
        {"fault": "link-down", "target": "a--b", "at": "500ms", "duration": "100ms"},
    ]) == [(0.0, "fault", 0), (500.0, "fault", 3), (600.0, "undo", 3), (1000.0, "undo", 0),
           (3000.0, "fault", 2)]


def test_flap_expands_into_cycles() -> None:
    assert _schedule([{"fault": "link-flap", "target": "a--b", "period": "2s", "count": 2}]) == [
        (0.0, "fault", 0), (1000.0, "undo", 0), (2000.0, "fault", 0), (3000.0, "undo", 0)]


def test_many_flows_probed_in_turn_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 UDP flows per client and service, one per tick in turn, and 8 TCP flows, unless
    the scenario says otherwise (node-crash-bfd says nothing)."""
    monkeypatch.chdir(REPO)
    probe = load_scenario(REPO / "scenarios" / "node-crash-bfd.yaml").scenario.probe
    assert (probe.flows, probe.rotate, probe.tcp_flows, probe.interval) == (16, True, 8, 1.0)
    mini = load_scenario(REPO / "tests" / "data" / "scenarios" / "mini-node-crash.yaml")
    assert (mini.scenario.probe.flows, mini.scenario.probe.rotate) == (2, False)
