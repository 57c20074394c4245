"""The Mininet backend without Mininet running: the wiring it asks Mininet for, its network
spec, the hosts file it reaches hosts through, and the pieces of Mininet it adapts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lab import pipeline
from lab.backend import BACKENDS, backend_named, labs
from lab.backend.bringup import impaired_links
from lab.backend.mininet.backend import MininetBackend, hosts_file
from lab.backend.mininet.deploy import network_spec
from lab.backend.mininet.network import HostShell, LinkShaping, NetworkSpec, read_hosts, write_hosts
from lab.backend.names import mac_address
from lab.backend.netns.names import EMULATOR_NODE
from lab.backend.processes import start_ticks
from lab.backend.wiring import plan_wires
from lab.cli.main import build_parser
from lab.errors import BackendError, ImpairmentError
from lab.impair.model import LinkEnd
from lab.impair.userspace import port_names
from lab.plan.model import LabPlan
from tests.conftest import TOPOLOGIES


@pytest.fixture(scope="module")
def plan() -> LabPlan:
    return pipeline.render(TOPOLOGIES / "two-sites-mini.yaml")[0]


def test_wires_are_the_plans_links_and_pods(plan: LabPlan) -> None:
    direct = plan_wires("w", plan, None)
    assert len(direct) == len(plan.links) + len(plan.pods())
    for wire in direct:
        assert wire.a_mac == mac_address("w", wire.a, wire.a_ifname)
        assert wire.b_mac == mac_address("w", wire.b, wire.b_ifname)
    ends = {(w.a, w.a_ifname) for w in direct} | {(w.b, w.b_ifname) for w in direct}
    assert len(ends) == 2 * len(direct)  # every interface once


def test_emulated_links_become_two_wires_to_the_emulators_ports(plan: LabPlan) -> None:
    impaired = impaired_links(plan)
    assert impaired  # the mini lab has WAN and access delays
    wires = plan_wires("w", plan, EMULATOR_NODE)
    assert len(wires) == len(plan.links) + len(impaired) + len(plan.pods())
    ports = {(w.b_ifname, w.b_mac) for w in wires if w.b == EMULATOR_NODE}
    assert {p for link in impaired for p in port_names(link.id)} == {p for p, _ in ports}
    assert {mac for _, mac in ports} == {None}  # the kernel's, unless asked
    assert all(w.b_mac for w in plan_wires("w", plan, EMULATOR_NODE, port_macs=True))


def test_network_spec_with_the_emulator(plan: LabPlan) -> None:
    spec = network_spec("w", plan, emulated=True)
    assert set(spec.hosts) == ({n.name for n in plan.nodes} | {p.name for p in plan.pods()}
                               | {EMULATOR_NODE})
    assert spec.shaping == {}
    leaf = next(n for n in plan.nodes if n.name == "alpha-l1")
    assert spec.addresses["alpha-l1"] == {i.name: str(i.address) for i in leaf.interfaces}
    assert NetworkSpec.from_json(spec.to_json()) == spec


def test_network_spec_with_tclinks_where_netem_exists(plan: LabPlan) -> None:
    spec = network_spec("w", plan, emulated=False)
    assert EMULATOR_NODE not in spec.hosts
    shaped = {(spec.wires[i].a, spec.wires[i].b): s for i, s in spec.shaping.items()}
    assert len(shaped) == len(impaired_links(plan))
    assert shaped[("east", "west")] == LinkShaping(delay_ms=10.0)
    assert LinkShaping(10.0, 2.0, 1.5, 100.0).params() == {"delay": "10ms", "jitter": "2ms",
                                                           "loss": 1.5, "bw": 100.0}
    assert NetworkSpec.from_json(spec.to_json()) == spec


def test_hosts_file_keeps_pid_and_start_time(tmp_path: Path) -> None:
    me = HostShell(os.getpid(), start_ticks(os.getpid()) or -1)
    reused = HostShell(os.getpid(), me.ticks + 1)  # the same PID, another process
    write_hosts(tmp_path / "hosts.json", {"a": me, "b": reused})
    shells = read_hosts(tmp_path / "hosts.json")
    assert shells["a"].alive() and not shells["b"].alive()
    assert shells["a"].netns() == f"/proc/{os.getpid()}/ns/net"
    (tmp_path / "error.json").write_text('{"error": "Mininet could not build"}')
    assert read_hosts(tmp_path / "error.json") == {}
    assert read_hosts(tmp_path / "missing.json") == {}


def test_namespace_of_a_host_is_its_shells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path))
    backend = MininetBackend()
    hosts_file("m").parent.mkdir(parents=True)
    me = HostShell(os.getpid(), start_ticks(os.getpid()) or -1)
    write_hosts(hosts_file("m"), {"a": me, "gone": HostShell(os.getpid(), me.ticks + 1)})
    assert backend.namespace("m", "a") == f"/proc/{os.getpid()}/ns/net"
    with pytest.raises(BackendError, match="is gone"):
        backend.namespace("m", "gone")
    with pytest.raises(BackendError, match="no Mininet host"):
        backend.namespace("m", "nobody")


def test_link_ends_take_namespace_paths() -> None:
    assert LinkEnd("/proc/1/ns/net", "eth0").netns == "/proc/1/ns/net"
    assert LinkEnd("al.x.a", "eth0").netns == "al.x.a"
    for bad in ("", "a/b", ".."):
        with pytest.raises(ImpairmentError):
            LinkEnd(bad, "eth0")


def test_the_backend_is_registered_and_found_by_list_and_down() -> None:
    assert "mininet" in BACKENDS and "mininet" in labs.MACHINE_BACKENDS
    assert isinstance(backend_named("mininet"), MininetBackend)
    args = build_parser().parse_args(["up", "x.yaml", "--backend", "mininet"])
    assert args.backend == "mininet"
    args = build_parser().parse_args(["mininet", "x.yaml", "--name", "m"])
    assert (args.file, args.name) == ("x.yaml", "m")


def test_mininet_cli_reads_node_names_with_dashes() -> None:
    if not Path("/usr/lib/python3/dist-packages/mininet").is_dir() or not shutil.which("mnexec"):
        if os.environ.get("CI"):
            pytest.fail("`make test` installs Mininet (make mininet-setup)")
        pytest.skip("Mininet is not installed")
    from lab.cli.mininet import lab_cli_class

    cli = lab_cli_class()
    first, args, _ = cli.parseline(cli, "us-c1 ping -c1 192.0.2.53")
    assert (first, args) == ("us-c1", "ping -c1 192.0.2.53")
