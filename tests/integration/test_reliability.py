"""Reliability and isolation of real labs: nothing leaks over many cycles, a killed `up` is
cleaned by `down --force`, the host namespace never changes, labs side by side stay apart,
Ctrl-C keeps the run and undoes the faults, a daemon dying mid-run is reported.

Root, FRR and GoBGP needed; every lab here has a unique name and is removed in a `finally`.
The tests using `shared_lab` run in file order: the last one kills a daemon of it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.backend import labs
from lab.backend.inspect import zebra_missing_addresses
from lab.backend.names import lab_dir
from lab.backend.netns.names import lab_namespaces, netns_prefix
from lab.backend.processes import stat_fields, tagged_pids
from lab.backend.state import load_state
from lab.netns import NETNS_DIR
from lab.run.runner import RunOptions, run_scenario
from tests.conftest import REPO, TOPOLOGIES, require_root, require_tool
from tests.integration.hostsnap import host_snapshot, snapshot_diff
from tests.integration.labfixture import running_lab, unique_lab_name

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
MINI = TOPOLOGIES / "two-sites-mini.yaml"
SCENARIOS = REPO / "tests" / "data" / "scenarios"
NODE_CRASH = SCENARIOS / "mini-node-crash.yaml"
CYCLES = 20
KILL_TRIALS = 10
KILL_SEED = 20261127
RUN_FILES = ("run.json", "events.jsonl", "probes.parquet", "routes.parquet", "summary.json")


@pytest.fixture(autouse=True)
def _needs_lab_tools() -> None:
    require_root()
    require_tool("vtysh", "gobgpd", "nft", "nsenter", "ip")


# ------------------------------------------------------------------ observations


def host_link_names() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line}


def open_fds() -> dict[str, str]:
    """This process's open file descriptors and what they point to."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used
    return fds


def netns_mounts(name: str) -> list[str]:
    needle = str(NETNS_DIR / netns_prefix(name))
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if needle in line]


def process_state(pid: int) -> str:
    fields = stat_fields(pid)
    return "gone" if fields is None else fields[0]


def stopped_pids(name: str) -> list[int]:
    return [pid for pid in tagged_pids(name) if process_state(pid) == "T"]


def blackhole_tables(name: str) -> list[str]:
    found = []
    for ns in lab_namespaces(name):
        out = subprocess.run(["nsenter", f"--net={NETNS_DIR / ns}", "--", "nft", "list",
                              "tables"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
        found += [f"{ns}: {line}" for line in out.splitlines() if "anylab_bh_" in line]
    return found


def leftovers(name: str) -> list[str]:
    left = [f"namespace {ns}" for ns in lab_namespaces(name)]
    left += [f"process {pid}" for pid in tagged_pids(name)]
    left += [f"mount {line}" for line in netns_mounts(name)]
    if lab_dir(name).exists():
        left.append(f"state directory {lab_dir(name)}")
    return left


def cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "lab.cli", *args], env=env, cwd=REPO,
                            text=True, **kwargs)


def read_run(runs_root: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]],
                                       dict[str, Any]]:
    """The one run directory under ``runs_root``: path, run.json, events, summary."""
    entries = list(runs_root.iterdir())
    assert [e.name for e in entries if e.name.endswith(".partial")] == []
    assert len(entries) == 1, entries
    run_dir = entries[0]
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}"
    meta = json.loads((run_dir / "run.json").read_text())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return run_dir, meta, events, summary


# ------------------------------------------------------------------ leaks


def test_twenty_up_down_cycles_leak_nothing() -> None:
    name = unique_lab_name("rcy")
    links_before = host_link_names()
    fds_before = open_fds()
    fds_after_first: dict[str, str] = {}
    try:
        for cycle in range(CYCLES):
            result = labs.up(MINI, name, lambda _m: None, timeout_s=90)
            assert result.report.ready, f"cycle {cycle}: {result.report.explain()}"
            # zebra knows every address (it once lost those added while it started)
            assert zebra_missing_addresses(result.backend, result.state, result.plan) == {}, \
                f"cycle {cycle}"
            assert host_link_names() - links_before == set(), f"cycle {cycle}: host links"
            assert len(netns_mounts(name)) == len(lab_namespaces(name)) > 0
            report = labs.down(name)
            assert report.leftovers == [], f"cycle {cycle}: {report.leftovers}"
            assert leftovers(name) == [], f"cycle {cycle}"
            if cycle == 0:
                fds_after_first = open_fds()
    finally:
        labs.down(name, force=True)
    assert leftovers(name) == []
    assert host_link_names() - links_before == set()
    fds_after = open_fds()
    # the first cycle may open lasting descriptors (lazy imports, caches); later ones may not
    grown = {fd: target for fd, target in fds_after.items() if fd not in fds_after_first}
    assert len(fds_after) <= len(fds_after_first), f"descriptors leaked per cycle: {grown}"
    new = {fd: target for fd, target in fds_after.items() if fd not in fds_before}
    assert len(new) <= 2, f"descriptors left open by the cycles: {new}"


def test_sigkill_of_up_at_random_moments_then_force_down_removes_everything() -> None:
    rng = random.Random(KILL_SEED)
    delays = [round(rng.uniform(0.05, 6.0), 2) for _ in range(KILL_TRIALS)]
    problems, at_kill = {}, []
    for delay in delays:
        name = unique_lab_name("rkl")
        proc = cli("up", str(MINI), "--name", name, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
        try:
            time.sleep(delay)
            proc.kill()
            proc.wait(timeout=30)
            at_kill.append((delay, len(lab_namespaces(name)), len(tagged_pids(name))))
            report = labs.down(name, force=True)
            if leftovers(name) or report.leftovers:
                problems[f"killed after {delay} s"] = leftovers(name) + report.leftovers
        finally:
            if proc.poll() is None:
                proc.kill()
            labs.down(name, force=True)
    # (delay, namespaces, tagged processes) when `up` died
    assert problems == {}, at_kill
    assert any(processes for _, _, processes in at_kill), f"no kill hit a running lab: {at_kill}"


def test_host_namespace_is_unchanged_by_up_run_and_down(tmp_path: Path) -> None:
    before = host_snapshot()
    with running_lab(MINI, "rhs") as result:
        run = run_scenario(RunOptions(NODE_CRASH, keep_lab=True, name=result.state.lab,
                                      runs_root=tmp_path), lambda _m: None)
        assert run.complete
    assert snapshot_diff(before, host_snapshot()) == []


# ------------------------------------------------------------------ isolation


def _session_downs(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(e.get("router")), str(e.get("peer"))) for e in events
            if e["source"] in {"bgp", "bfd"} and e["kind"] in {"session_down", "bfd_down"}]


def _check_own_run(runs_root: Path, lab: str, site: str, other_site: str,
                   own_pids: set[int], other_pids: set[int]) -> str:
    """The run of ``lab`` measured its own fault (on ``site``) and nothing of the other lab;
    returns the lab named in run.json."""
    _, meta, events, summary = read_run(runs_root)
    assert meta["lab"] == lab and meta["complete"] is True
    event = summary["trials"][0]["events"][0]
    sites = {c["client"]: c["site_before"] for c in event["clients"] if c["service"] == "echo"}
    assert sites == {"east-c1": "alpha", "west-c1": "beta"}, event["clients"]
    injected = [e for e in events if e["source"] == "injector"]
    assert [e["kind"] for e in injected] == ["fault", "undo"], injected
    assert [e["at_ms"] for e in injected] == [0.0, 3000.0 if site == "beta" else 4000.0]
    assert all(e["target"].startswith(f"{site}-") for e in injected), injected
    pids = {p for e in injected for key in ("frozen_pids", "thawed_pids")
            for p in e["details"].get(key, [])}
    assert pids <= own_pids and not pids & other_pids
    downs = _session_downs(events)
    assert downs, "the fault brought no session down"
    foreign = [d for d in downs if any(end.startswith(f"{other_site}-") for end in d)]
    assert foreign == [], f"events of the other lab in {lab}'s run"
    return str(meta["lab"])


def test_two_labs_side_by_side_measure_correctly_and_separately(tmp_path: Path) -> None:
    scenarios = {"alpha": NODE_CRASH, "beta": SCENARIOS / "rel-beta-link-down.yaml"}
    with running_lab(MINI, "rsa") as first, running_lab(MINI, "rsb") as second:
        lab_of = {"alpha": first.state.lab, "beta": second.state.lab}
        pids = {site: {r.pid for r in load_state(lab).processes}
                for site, lab in lab_of.items()}
        procs = {site: cli("run", str(scenarios[site]), "--name", lab_of[site], "--runs",
                           str(tmp_path / site), "--keep-lab", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
                 for site in scenarios}
        outputs = {site: proc.communicate(timeout=180)[0] for site, proc in procs.items()}
        for site, proc in procs.items():
            assert proc.returncode == 0, outputs[site]
        first_lab = _check_own_run(tmp_path / "alpha", lab_of["alpha"], "alpha", "beta",
                                   pids["alpha"], pids["beta"])
        second_lab = _check_own_run(tmp_path / "beta", lab_of["beta"], "beta", "alpha",
                                    pids["beta"], pids["alpha"])
        assert first_lab != second_lab


# ------------------------------------------------------------------ one shared lab


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[labs.UpResult]:
    require_root()
    with running_lab(MINI, "rel") as result:
        yield result


def test_state_and_logs_are_for_root_only(shared_lab: labs.UpResult) -> None:
    directory = lab_dir(shared_lab.state.lab)
    assert directory.stat().st_mode & 0o777 == 0o700
    exposed = []
    for folder, dirs, files in os.walk(directory):
        for entry in [*dirs, *files]:
            path = Path(folder) / entry
            mode = path.lstat().st_mode
            if mode & 0o007:
                exposed.append(f"{path.relative_to(directory)} {mode & 0o777:o}")
    assert exposed == [], "readable by every user"


def _watch_output(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _wait_for_faults(lab: str, lines: list[str], proc: subprocess.Popen[str]) -> None:
    """Until the injector has applied both faults (its log says so and the lab shows it)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if any("link-blackhole on" in line for line in lines) and stopped_pids(lab):
            return
        time.sleep(0.1)
    pytest.fail("the faults never became active:\n" + "".join(lines))


def test_ctrl_c_during_a_run_keeps_the_run_and_undoes_the_faults(
        shared_lab: labs.UpResult, tmp_path: Path) -> None:
    lab = shared_lab.state.lab
    lines: list[str] = []
    with cli("run", str(SCENARIOS / "rel-ctrl-c.yaml"), "--name", lab, "--runs",
             str(tmp_path), "--keep-lab", "-v", stdout=subprocess.PIPE,
             stderr=subprocess.STDOUT) as proc:
        reader = _watch_output(proc, lines)
        try:
            _wait_for_faults(lab, lines, proc)
            time.sleep(0.5)
            assert blackhole_tables(lab), "the blackholes are not in place"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 130, "".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(timeout=10)
    _, meta, events, summary = read_run(tmp_path)
    assert meta["complete"] is False and meta["interrupted"] is True
    assert meta["evidence"] is None  # interrupted on purpose: nothing failed
    assert summary["complete"] is False
    undone = [e for e in events if e["source"] == "injector" and e["kind"] == "undo"]
    assert {e["fault"] for e in undone} == {"node-crash", "link-blackhole"}, undone
    assert blackhole_tables(lab) == []
    assert stopped_pids(lab) == []
    deadline = time.monotonic() + 30
    while not labs.status(lab)["ready"]:
        assert time.monotonic() < deadline, labs.status(lab)
        time.sleep(1)


def test_a_daemon_dying_during_a_run_marks_the_trial_invalid(
        shared_lab: labs.UpResult, tmp_path: Path) -> None:
    """Runs last on the shared lab: it leaves a router without bgpd."""
    lab = shared_lab.state.lab
    bgpd = next(r for r in load_state(lab).processes
                if r.kind == "bgpd" and r.node == "beta-l2")
    killed: list[int] = []

    def progress(message: str) -> None:
        if message.startswith("trial 1/") and not killed:
            os.kill(bgpd.pid, signal.SIGKILL)  # beta-l2 is not touched by the scenario
            killed.append(bgpd.pid)

    result = run_scenario(RunOptions(NODE_CRASH, keep_lab=True, name=lab, runs_root=tmp_path),
                          progress)
    assert killed == [bgpd.pid]
    run_dir, meta, events, summary = read_run(tmp_path)
    # the invalid run keeps the lab's evidence, the dead daemon's log included
    assert meta["evidence"] == "evidence"
    readme = (run_dir / "evidence" / "README.txt").read_text()
    assert f"bgpd on beta-l2 (pid {bgpd.pid}) died outside the scenario" in readme
    assert (run_dir / "evidence" / "lab" / "nodes" / "beta-l2" / "bgpd.log").is_file()
    died = [e for e in events if e["source"] == "runner" and e["kind"] == "daemon_died"]
    assert [(e["node"], e["daemon"], e["pid"]) for e in died] == [("beta-l2", "bgpd",
                                                                    bgpd.pid)]
    trial = summary["trials"][0]
    assert trial["valid"] is False
    assert any("bgpd on beta-l2" in w for w in trial["warnings"]), trial["warnings"]
    assert result.summary["trials"][0]["valid"] is False
