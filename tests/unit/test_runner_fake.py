"""The runner's timeline, faults and undo on the fake backend (no root, nothing measured): what
each fault asks of the backend, that every fault is undone (at its time, or at the trial's
end whatever happened), and that a failing impairment driver gives one error line, a kept and
marked run directory and undone faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backend.fake import FakeBackend, FakeDriver
from lab.backend.names import lab_dir
from lab.errors import ImpairmentError
from lab.run.measurement import NoMeasurement
from lab.run.runner import RunOptions, run_scenario
from tests.conftest import TOPOLOGIES

FAULTS = """\
name: fake-faults
description: one fault of each kind the backend carries out, against the mini lab
topology: {topology}
probe: {{interval: 1ms, flows: 1, tcp_flows: 0}}
settle: 0s
tail: 0s
steps:
  - {{fault: link-down, target: alpha-l1--alpha-k8s-n1, duration: 20ms}}
  - {{fault: node-crash, target: beta-k8s-n1, at: 10ms, duration: 30ms}}
  - {{fault: link-blackhole, target: east--west, at: 20ms, duration: 10ms}}
  - {{fault: site-drain, target: alpha, method: prepend, prepend: 2, at: 30ms, duration: 10ms}}
  - {{fault: daemon-kill, target: alpha-l2, daemon: bgpd, at: 40ms, duration: 10ms}}
"""
FAILING_IMPAIR = """\
name: fake-failing-driver
description: a node crash still active when the link emulator fails
topology: {topology}
probe: {{interval: 1ms, flows: 1, tcp_flows: 0}}
settle: 0s
tail: 0s
steps:
  - {{fault: node-crash, target: beta-k8s-n1, duration: 5s}}
  - {{fault: link-impair, target: east--west, delay: 20ms, at: 10ms, duration: 1s}}
"""


@pytest.fixture
def lab_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ANYLAB_EVIDENCE_DIR", str(tmp_path / "evidence"))
    yield tmp_path


def scenario(folder: Path, text: str) -> Path:
    path = folder / "scenario.yaml"
    path.write_text(text.format(topology=TOPOLOGIES / "two-sites-mini.yaml"))
    return path


def run(folder: Path, text: str, backend: FakeBackend) -> Any:
    return run_scenario(RunOptions(scenario(folder, text), name="fake", runs_root=folder / "runs"),
                        lambda _m: None, backend=backend, measurement=NoMeasurement)


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_every_fault_goes_through_the_backend_and_is_undone(lab_root: Path) -> None:
    backend = FakeBackend()
    result = run(lab_root, FAULTS, backend)
    assert result.complete
    ops = [entry for entry in backend.journal if entry[0] not in ("spawn", "detach")]
    assert ops[:2] == [("deploy", "fake"), ("wait_ready", "fake")]
    assert ops[-1] == ("destroy", "fake")  # the run brought the lab up, so it removes it
    done = ops[2:-1]
    # link-down: both ends down, later both up again
    assert ("link", "alpha-l1", "alpha-k8s-n1", "down") in done
    assert ("link", "alpha-k8s-n1", "alpha-l1", "down") in done
    assert done.index(("link", "alpha-l1", "alpha-k8s-n1", "up")) > \
        done.index(("link", "alpha-l1", "alpha-k8s-n1", "down"))
    # node-crash: the node and its pods frozen, its interfaces silent; then the reverse
    assert ("freeze", ["beta-k8s-n1", "beta-k8s-n1-p1"]) in done
    assert ("thaw", ["beta-k8s-n1", "beta-k8s-n1-p1"]) in done
    assert ("blackhole", "beta-k8s-n1", "beta-l1", "on") in done
    assert ("blackhole", "beta-k8s-n1", "beta-l1", "off") in done
    # link-blackhole on a WAN link; site-drain through vtysh on the site's border routers
    assert [e[1:] for e in done if e[0] == "blackhole" and e[1] in ("east", "west")] == [
        ("east", "west", "on"), ("west", "east", "on"),
        ("east", "west", "off"), ("west", "east", "off")]
    drains = [e for e in done if e[0] == "vtysh" and e[1] == "alpha-s1"]
    assert any("set as-path prepend 4200001000 4200001000" in e[2] for e in drains)
    assert any("no set as-path prepend" in e[2] for e in drains)
    # daemon-kill of bgpd on a leaf: restarted with its configuration at the undo
    assert ("start_frr_daemon", "alpha-l2", "bgpd") in done
    rows = events(result.run_dir)
    applied = [(e["step"], e["fault"]) for e in rows if e["kind"] == "fault"]
    undone = [(e["step"], e["fault"]) for e in rows if e["kind"] == "undo"]
    assert sorted(applied) == sorted(undone) and len(applied) == 5
    assert not any(e["details"].get("at_trial_end") for e in rows if e["kind"] == "undo")


def test_a_failing_driver_stops_the_run_keeps_it_and_undoes_the_faults(lab_root: Path) -> None:
    backend = FakeBackend(driver=FakeDriver(fail=True))
    with pytest.raises(ImpairmentError) as failure:
        run(lab_root, FAILING_IMPAIR, backend)
    assert "\n" not in str(failure.value)  # one line for the user
    runs = list((lab_root / "runs").iterdir())
    assert len(runs) == 1 and not runs[0].name.startswith(".")  # kept, renamed, marked
    meta = json.loads((runs[0] / "run.json").read_text())
    assert meta["complete"] is False and meta["interrupted"] is False
    assert meta["evidence"] == "evidence"
    assert "emulator does not answer" in (runs[0] / "evidence" / "README.txt").read_text()
    # the node crash that was active is undone on the way out, the lab removed
    assert ("thaw", ["beta-k8s-n1", "beta-k8s-n1-p1"]) in backend.journal
    assert backend.journal[-1] == ("destroy", "fake")
    rows = events(runs[0])
    undo = [e for e in rows if e["kind"] == "undo"]
    assert [(e["fault"], e["details"]["at_trial_end"]) for e in undo] == [("node-crash", True)]
    assert not lab_dir("fake").exists()


SLOW_TARGET = """\
name: fake-slow-target
description: a fault whose target takes a while to resolve, then a second step after it
topology: {topology}
probe: {{interval: 1ms, flows: 1, tcp_flows: 0}}
settle: 0s
tail: 0s
steps:
  - {{fault: node-crash, target: beta-k8s-n1, duration: 100ms}}
  - {{fault: link-down, target: alpha-l1--alpha-k8s-n1, duration: 50ms}}
"""


def test_a_fault_lasts_its_duration_however_long_its_target_took_to_resolve(
        lab_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serving:` targets are read from the probes so far, which can take seconds: the undo
    and the later steps keep their spacing from the instant the fault really began."""
    import lab.run.runner as runner

    resolve = runner._resolve_target

    def slow(*args: Any) -> str:
        time.sleep(0.3)
        return resolve(*args)

    monkeypatch.setattr(runner, "_resolve_target", slow)
    result = run(lab_root, SLOW_TARGET, FakeBackend())
    assert result.complete
    rows = [e for e in events(result.run_dir) if e["source"] == "injector"]
    at = {(e["fault"], e["kind"]): e["t_ns"] for e in rows}
    assert at["node-crash", "undo"] - at["node-crash", "fault"] >= 100_000_000
    assert at["link-down", "fault"] - at["node-crash", "fault"] >= 100_000_000
    assert at["link-down", "undo"] - at["link-down", "fault"] >= 50_000_000


class SlowToStop(NoMeasurement):
    """Probers that record a broken TCP flow while they are being stopped."""

    def stop_trial(self) -> None:
        time.sleep(0.05)
        self.recording.event(0, "tcp", "flow_broken", client="east-c1", service="web",
                             family="ipv4", flow=0, reason="timeout")
        super().stop_trial()


def test_what_probers_record_while_being_stopped_is_outside_the_trial(lab_root: Path) -> None:
    result = run_scenario(RunOptions(scenario(lab_root, SLOW_TARGET), name="fake",
                                     runs_root=lab_root / "runs"),
                          lambda _m: None, backend=FakeBackend(), measurement=SlowToStop)
    rows = events(result.run_dir)
    (end,) = [e["t_ns"] for e in rows if e["kind"] == "trial_end"]
    (broken,) = [e["t_ns"] for e in rows if e["kind"] == "flow_broken"]
    assert broken > end
    assert max(e["t_ns"] for e in rows if e["source"] == "injector") < end
