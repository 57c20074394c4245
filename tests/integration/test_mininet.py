"""The Mininet backend, for real: the mini lab as Mininet hosts and links (Debian's Mininet
2.3.0), reached through /proc/PID/ns/net of each host's shell; the host's own network left as
it was; nothing left after `down`, even after SIGKILL during `up`; `anylab mininet` driven
through a real terminal; the example script. (Theory agreement on this backend:
tests/integration/test_truth.py runs there too.)"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from lab.backend import labs
from lab.backend.bringup import to_impairment
from lab.backend.inspect import probe
from lab.backend.mininet.backend import hosts_file
from lab.backend.mininet.network import read_hosts
from lab.backend.processes import tagged_pids
from lab.impair.model import Impairment
from lab.impair.userspace import UserspaceDriver
from lab.netns import NETNS_DIR, socket_at
from lab.plan.model import LinkKind
from tests.conftest import REPO, TOPOLOGIES, require_root
from tests.integration.hostsnap import host_snapshot, snapshot_diff
from tests.integration.labfixture import (
    assert_lab_gone,
    require_mininet,
    running_lab,
    unique_lab_name,
)
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
MINI = TOPOLOGIES / "two-sites-mini.yaml"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _netns_inodes() -> set[int]:
    """The network namespace of every process on the machine."""
    inodes = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                inodes.add(os.stat(entry / "ns" / "net").st_ino)
            except OSError:
                continue
    return inodes


@pytest.fixture(scope="module")
def host_before() -> dict[str, object]:
    require_root()
    require_mininet()
    return host_snapshot()


@pytest.fixture(scope="module")
def mini(host_before: dict[str, object]) -> Iterator[labs.UpResult]:
    with running_lab(MINI, "mn", backend="mininet") as result:
        yield result
    assert snapshot_diff(host_before, host_snapshot()) == []


def named_namespace_inodes() -> set[int]:
    """The namespaces named under /run/netns, by inode. A link whose process has gone names
    none (a container's link outlives it when the machine stops under a running lab)."""
    inodes = set()
    for entry in NETNS_DIR.iterdir() if NETNS_DIR.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            inodes.add(entry.stat().st_ino)
    return inodes


def test_every_node_and_pod_is_a_mininet_host_without_a_name(mini: labs.UpResult) -> None:
    shells = read_hosts(hosts_file(mini.state.lab))
    wanted = {n.name for n in mini.plan.nodes} | {p.name for p in mini.plan.pods()}
    assert wanted <= set(shells)
    named = named_namespace_inodes()
    inodes = set()
    for name in wanted:
        shell = shells[name]
        cmdline = Path(f"/proc/{shell.pid}/cmdline").read_bytes().split(b"\0")
        assert b"bash" in cmdline[0] and f"mininet:{name}".encode() in cmdline, cmdline
        assert str(mini.backend.netns_path(mini.state, name)) == f"/proc/{shell.pid}/ns/net"
        inodes.add(os.stat(f"/proc/{shell.pid}/ns/net").st_ino)
    assert len(inodes) == len(wanted)  # a namespace each
    assert not inodes & named  # none of them under /run/netns
    assert not [p for p in (NETNS_DIR.iterdir() if NETNS_DIR.is_dir() else [])
                if mini.state.lab in p.name]


def test_programs_run_in_their_hosts(mini: labs.UpResult) -> None:
    for record in mini.state.processes:
        if record.node.startswith("_"):
            continue
        mine = os.stat(f"/proc/{record.pid}/ns/net").st_ino
        assert mine == os.stat(mini.backend.netns_path(mini.state, record.node)).st_ino, record


def test_links_have_the_plans_names_and_macs(mini: labs.UpResult) -> None:
    from lab.backend.names import mac_address

    for node in mini.plan.nodes:
        links = json.loads(subprocess.run(
            ["nsenter", f"--net={mini.backend.netns_path(mini.state, node.name)}", "ip", "-j",
             "link", "show"], capture_output=True, text=True, check=True).stdout)
        macs = {link["ifname"]: link.get("address") for link in links}
        for interface in node.interfaces:
            assert macs[interface.name] == mac_address(mini.state.lab, node.name,
                                                       interface.name), (node.name, interface)


def test_a_clients_datagram_to_a_vip_is_answered(mini: labs.UpResult) -> None:
    for service in mini.plan.services:
        answer = probe(mini.backend, mini.state, "east-c1", service)
        assert answer.site == "alpha" and answer.rtt_ms is not None, answer


def _echo_round(mini: labs.UpResult, client: str, count: int, gap_s: float = 0.002
                ) -> list[float]:
    """Send ``count`` datagrams to the echo VIP from ``client``, ``gap_s`` apart; the RTT (ms)
    of each one answered within a second of the last send."""
    echo = next(s for s in mini.plan.services if s.name == "echo")
    sock = socket_at(mini.backend.netns_path(mini.state, client))
    sent: dict[int, int] = {}
    rtts = []

    def receive_until(deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                reply = sock.recv(4096)
                now = time.monotonic_ns()
                rtts.append((now - sent.pop(struct.unpack("!Q", reply[:8])[0])) / 1e6)

    try:
        for seq in range(count):
            sent[seq] = time.monotonic_ns()
            sock.sendto(struct.pack("!QQ", seq, sent[seq]), (str(echo.vip), echo.port))
            receive_until(time.monotonic() + gap_s)
        receive_until(time.monotonic() + 1.0)
    finally:
        sock.close()
    return rtts


def test_impairments_of_mininet_links_are_as_configured(mini: labs.UpResult) -> None:
    """The mini lab's access links have 2 ms each way (the link emulator, in a Mininet host of
    its own, on this kernel); set at runtime, delay and loss are what they say. The link's
    calibration (the lab's forwarding cost taken off each frame's hold, measured at `up` under
    the probers' load) is set aside meanwhile: these sparse requests cost the lab less than a
    run's probing does, so with it their round trips could be below the configured delay."""
    link = next(link for link in mini.plan.links
                if link.kind == LinkKind.ACCESS and "east-c1" in (link.a.node, link.b.node))
    driver = mini.backend.impairment_driver(mini.state)
    emulator = driver if isinstance(driver, UserspaceDriver) else None  # netem: no calibration
    calibrated = emulator.compensation(link.id) if emulator else 0.0
    if emulator:
        emulator.compensate(link.id, 0.0)

    def median_rtt_within(low: float, high: float) -> Callable[[int], None]:
        def check(_attempt: int) -> None:
            assert low <= statistics.median(_echo_round(mini, "east-c1", 50, 0.02)) <= high
        return check

    try:
        on_a_quiet_machine(median_rtt_within(4.0, 6.5))
        driver.set(link.id, "both", Impairment(delay_ms=15.0))
        on_a_quiet_machine(median_rtt_within(30.0, 33.0))
        driver.set(link.id, "both", Impairment(delay_ms=2.0, loss_pct=30.0))
        answered = len(_echo_round(mini, "east-c1", 400))
        expected = 400 * 0.7 * 0.7  # lost on the way there or back
        spread = 2.576 * math.sqrt(400 * 0.49 * 0.51)
        assert expected - spread <= answered <= expected + spread, answered
    finally:
        driver.set(link.id, "both", to_impairment(link))
        if emulator:
            emulator.compensate(link.id, calibrated)
        driver.detach()


def test_cli_commands_work_on_the_lab(mini: labs.UpResult) -> None:
    lab = mini.state.lab

    def anylab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=ENV, text=True,
                              capture_output=True, timeout=120, check=False)

    status = anylab("status", "--name", lab, "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert {c["client"] for c in document["clients"]} == {"east-c1", "west-c1"}
    routes = anylab("exec", "--name", lab, "alpha-l1", "--", "ip", "route")
    assert routes.returncode == 0 and "proto bgp" in routes.stdout, routes
    summary = anylab("vtysh", "--name", lab, "alpha-s1", "-c", "show bgp summary")
    assert summary.returncode == 0 and "alpha-l1" in summary.stdout, summary
    listed = anylab("list", "--json")
    assert any(row["lab"] == lab and row["backend"] == "mininet"
               for row in json.loads(listed.stdout)), listed.stdout


def test_sigkill_during_up_then_down_force_leaves_nothing() -> None:
    require_root()
    require_mininet()
    name = unique_lab_name("mkill")
    before = _netns_inodes()
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", str(MINI), "--name", name,
                             "--backend", "mininet"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(tagged_pids(name)) < 40:
            time.sleep(0.05)  # hosts are up and daemons are starting in them
        shells = read_hosts(hosts_file(name))
        assert shells, "no Mininet host was made"
        lab_inodes = {os.stat(s.netns()).st_ino for s in shells.values() if s.alive()}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        report = labs.down(name, force=True)
        assert report.existed and report.leftovers == [], report
        assert_lab_gone(name)
        assert not lab_inodes & _netns_inodes(), "a host's namespace outlived the lab"
        assert _netns_inodes() - before == set(), "a namespace of the lab is left"
    finally:
        if proc.poll() is None:
            proc.kill()
        labs.down(name, force=True)


def test_mininet_cli_reaches_a_vip_and_exit_removes_the_lab() -> None:
    """`anylab mininet` in a real terminal: Mininet's prompt, a client's datagram to a VIP
    answered by the site's pod, `exit`, and the lab is gone."""
    require_root()
    require_mininet()
    name = unique_lab_name("mcli")
    child = pexpect.spawn(sys.executable, ["-m", "lab.cli", "mininet", str(MINI), "--name",
                                           name], env=ENV, encoding="utf-8", timeout=180,
                          dimensions=(50, 200))
    try:
        child.expect("anylab-mininet> ")
        # a datagram of the client's own to the echo VIP: the site's pod answers
        child.sendline("east-c1 echo hello | socat -t2 - UDP:192.0.2.10:7")
        child.expect('"site":"alpha"')
        child.expect("anylab-mininet> ")
        child.sendline("nodes")
        child.expect("alpha-k8s-n1")
        child.expect("anylab-mininet> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        assert_lab_gone(name)
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)
        labs.down(name, force=True)


def test_the_example_script_runs() -> None:
    require_root()
    require_mininet()
    name = unique_lab_name("mex")
    try:
        result = subprocess.run([sys.executable, str(REPO / "examples" / "mininet_anycast.py"),
                                 "--name", name], env=ENV, text=True, capture_output=True,
                                timeout=300, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "east-c1 -> 192.0.2.10" in result.stdout and "answered by alpha" in result.stdout
        assert_lab_gone(name)
    finally:
        labs.down(name, force=True)
