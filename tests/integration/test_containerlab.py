"""The containerlab backend, for real: the mini lab as containers deployed by containerlab on
Docker, from the images built here; the programs inside the containers; the host left as it
was; nothing left after `down`, even after SIGKILL during `up`. (Theory agreement on this
backend: tests/integration/test_truth.py runs there on both backends.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.containerlab.names import LAB_LABEL, container_name
from lab.backend.containerlab.teardown import SSH_CONFIG_DIR, lab_containers
from lab.backend.containerlab.tools import DOCKER
from lab.backend.inspect import probe
from lab.backend.processes import tagged_pids
from lab.backend.state import load_state
from lab.faults.catalogue import FAULTS
from lab.proc import run
from lab.run.runner import RunOptions, RunResult, run_scenario
from tests.conftest import REPO, TOPOLOGIES, require_root
from tests.integration.hostsnap import host_snapshot, snapshot_diff
from tests.integration.labfixture import (
    assert_lab_gone,
    require_containerlab,
    running_lab,
    unique_lab_name,
)
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
MINI = TOPOLOGIES / "two-sites-mini.yaml"


def _docker(*args: str) -> str:
    return run([DOCKER, *args], timeout=60).stdout


@pytest.fixture(scope="module")
def host_before() -> dict[str, object]:
    require_root()
    require_containerlab()
    return host_snapshot()


@pytest.fixture(scope="module")
def mini(host_before: dict[str, object]) -> Iterator[labs.UpResult]:
    with running_lab(MINI, "clab", backend="containerlab") as result:
        yield result
    assert snapshot_diff(host_before, host_snapshot()) == []


def test_every_node_and_pod_is_a_labelled_container(mini: labs.UpResult) -> None:
    lab, plan = mini.state.lab, mini.plan
    expected = {container_name(lab, n.name) for n in plan.nodes}
    expected |= {container_name(lab, p.name) for p in plan.pods()}
    found = set(lab_containers(lab))
    assert expected <= found and len(found - expected) == 1  # and the link emulator
    labels = json.loads(_docker("inspect", "--format", "{{json .Config.Labels}}",
                                container_name(lab, "alpha-l1")))
    assert labels[LAB_LABEL] == lab and labels["anylab.role"] == "router"
    assert labels["containerlab"] == lab  # containerlab's own label: `containerlab inspect`
    policy = _docker("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}",
                     container_name(lab, "alpha-l1")).strip()
    assert policy == "no"  # the engine's restart (a reboot) leaves the containers stopped
    assert load_state(lab).backend == "containerlab"


def test_daemons_run_inside_their_containers(mini: labs.UpResult) -> None:
    """FRR runs from the router image, in the container's control groups (docker top lists
    it) and mount namespace; the node agent runs with the image's Python."""
    lab = mini.state.lab
    top = _docker("top", container_name(lab, "alpha-l1"), "-o", "pid,args")
    assert "/usr/lib/frr/zebra" in top and "/usr/lib/frr/bgpd" in top, top
    agent = next(r for r in mini.state.processes if r.kind == "agent")
    assert str(agent.pid) in _docker("top", container_name(lab, agent.node), "-o", "pid")
    container_pid = int(_docker("inspect", "--format", "{{.State.Pid}}",
                                container_name(lab, agent.node)))
    for ns in ("mnt", "net"):
        assert (os.readlink(f"/proc/{agent.pid}/ns/{ns}")
                == os.readlink(f"/proc/{container_pid}/ns/{ns}")), ns
    exec_argv = mini.backend.exec_argv(mini.state, "alpha-l1", ["cat", "/etc/debian_version"])
    assert run(exec_argv, timeout=30).stdout.startswith("12")


def test_clients_own_datagrams_reach_the_nearest_site(mini: labs.UpResult) -> None:
    echo = next(s for s in mini.plan.services if s.name == "echo")
    for client, site in (("east-c1", "alpha"), ("west-c1", "beta")):
        answer = probe(mini.backend, mini.state, client, echo)
        assert answer.site == site, answer


def test_status_keeps_its_contract(mini: labs.UpResult) -> None:
    status = labs.status(mini.state.lab)
    assert status["ready"] is True and status["sessions"]["down"] == []
    assert status["processes"]["dead"] == []
    assert {c["client"] for c in status["clients"]} == {"east-c1", "west-c1"}


def _frozen(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tD" in status or "State:\tT" in status  # a frozen control group


def test_a_frozen_node_is_a_frozen_container(mini: labs.UpResult) -> None:
    """Every process of the container stops at once, the idle shell Docker started too."""
    lab = mini.state.lab
    node = "beta-k8s-n2"
    init = int(_docker("inspect", "--format", "{{.State.Pid}}", container_name(lab, node)))
    started = time.monotonic()
    frozen = mini.backend.freeze(mini.state, [node])
    took = time.monotonic() - started
    try:
        assert frozen and all(_frozen(pid) for pid in [*frozen, init])
        print(json.dumps({"freeze_ms": round(took * 1000, 2)}))
    finally:
        mini.backend.thaw(mini.state, [node])
    assert not any(_frozen(pid) for pid in [*frozen, init])


def test_down_removes_a_lab_left_frozen() -> None:
    """A run killed during a silent crash leaves containers frozen: `down` still removes
    everything (a frozen process would not die before it is thawed)."""
    with running_lab(MINI, "cfrz", backend="containerlab") as result:
        result.backend.freeze(result.state, ["alpha-k8s-n1", "alpha-k8s-n1-p1"])
        report = labs.down(result.state.lab)
        assert report.leftovers == [], report


def test_every_fault_of_the_catalogue_applies_and_undoes(mini: labs.UpResult, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Each fault once, each undone (tests/data/scenarios/mini-every-fault.yaml): the run is
    complete and valid, and the lab is whole again afterwards."""
    monkeypatch.chdir(REPO)

    def attempt(number: int) -> RunResult:
        result = run_scenario(RunOptions(REPO / "tests" / "data" / "scenarios"
                                         / "mini-every-fault.yaml", name=mini.state.lab,
                                         keep_lab=True, runs_root=tmp_path / f"attempt-{number}"),
                              lambda _m: None)
        assert result.complete
        trial = result.summary["trials"][0]
        assert trial["valid"], trial["warnings"]
        return result

    result = on_a_quiet_machine(attempt)
    events = [json.loads(line) for line in
              (result.run_dir / "events.jsonl").read_text().splitlines()]
    applied = {e["fault"] for e in events if e["source"] == "injector" and e["kind"] == "fault"}
    undone = [e for e in events if e["source"] == "injector" and e["kind"] == "undo"]
    assert applied == set(FAULTS), set(FAULTS) - applied
    assert len(undone) == sum(1 for e in events if e["source"] == "injector"
                              and e["kind"] == "fault")
    status = labs.status(mini.state.lab)
    assert status["ready"] and status["processes"]["dead"] == [], status["processes"]


def test_deploying_never_touches_the_host_network_namespace() -> None:
    """containerlab makes each veth pair before moving its ends into the containers: it does
    that in a namespace of the lab's own, so not even a passing link appears on the host
    (watched with `ip monitor` for the whole `up` and `down`)."""
    require_root()
    require_containerlab()
    monitor = subprocess.Popen(["ip", "-o", "monitor", "link", "address", "route"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.2)
        with running_lab(MINI, "cmon", backend="containerlab"):
            pass
        time.sleep(0.2)
    finally:
        monitor.terminate()
        seen, _ = monitor.communicate(timeout=10)
    assert seen.strip() == "", seen[:2000]


def test_sigkill_during_up_then_down_force_leaves_nothing() -> None:
    require_root()
    require_containerlab()
    name = unique_lab_name("ckill")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", str(MINI), "--name", name,
                             "--backend", "containerlab"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(tagged_pids(name)) < 10:
            time.sleep(0.05)  # containers are up and daemons are starting in them
        assert lab_containers(name), "no container was made"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        report = labs.down(name, force=True)
        assert report.existed and report.leftovers == [], report
        assert_lab_gone(name)
        assert not (SSH_CONFIG_DIR / f"clab-{name}.conf").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        labs.down(name, force=True)
