"""A split export (`anylab export containerlab --split`) deployed by containerlab as two labs
on two "hosts" joined by vxlan: on one machine, each host is a network namespace of its own,
joined to the other by a veth pair (their underlay). Two labs cannot be joined over the
loopback of one namespace: a namespace holds one vxlan device per VNI and UDP port, and both
ends of a link share both. The host namespace is not touched."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import pipeline
from lab.backend.containerlab.names import CLAB_PREFIX
from lab.backend.containerlab.teardown import lab_containers
from lab.backend.containerlab.tools import CLAB_ENV, containerlab_binary
from lab.cli.main import main as anylab
from tests.conftest import TOPOLOGIES, require_root
from tests.integration.labfixture import require_containerlab, unique_lab_name

pytestmark = [pytest.mark.integration]
MINI = TOPOLOGIES / "two-sites-mini.yaml"
HOSTS = ("192.168.254.1", "192.168.254.2")


def _run(*argv: str, netns: str | None = None, cwd: Path | None = None) -> str:
    prefix = ["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []
    result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=300,
                            cwd=cwd, env={**os.environ, **CLAB_ENV}, check=False)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    """Two namespaces standing for two hosts, joined by a veth pair (MTU 9000, room for the
    vxlan header)."""
    require_root()
    require_containerlab()
    tag = unique_lab_name("sph")
    names = (f"{tag}-a", f"{tag}-b")
    try:
        for name in names:
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", names[0], "link", "add", "underlay", "mtu", "9000", "type", "veth",
             "peer", "name", "underlay", "netns", names[1])
        for name, address in zip(names, HOSTS, strict=True):
            _run("ip", "-n", name, "link", "set", "underlay", "mtu", "9000", "up")
            _run("ip", "-n", name, "address", "add", f"{address}/30", "dev", "underlay")
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def test_a_split_lab_is_joined_by_vxlan(two_hosts: tuple[str, str], tmp_path: Path) -> None:
    lab = unique_lab_name("spl")
    assert anylab(["export", "containerlab", str(MINI), "-o", str(tmp_path), "--name", lab,
                   "--netem", "--split", ",".join(HOSTS)]) == 0
    files = [tmp_path / f"{lab}-h1.clab.yml", tmp_path / f"{lab}-h2.clab.yml"]
    clab = str(containerlab_binary())
    try:
        for host, file in zip(two_hosts, files, strict=True):
            _run(clab, "deploy", "--topo", str(file), netns=host, cwd=tmp_path)
        plan = pipeline.plan(MINI)
        wan = next(link for link in plan.links if link.id == "east--west")
        east = f"{CLAB_PREFIX}-{lab}-h1-east"
        west = f"{CLAB_PREFIX}-{lab}-h2-west"
        for ns, end in ((east, wan.a), (west, wan.b)):
            assert "vxlan" in _run("ip", "-d", "-n", ns, "link", "show", end.ifname)
            _run("ip", "-n", ns, "address", "add", str(end.address), "dev", end.ifname)
            _run("ip", "-n", ns, "link", "set", end.ifname, "up")
        out = _run("ip", "netns", "exec", east, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                   str(wan.b.address.ip))
        assert " 0% packet loss" in out, out
        assert len(lab_containers(lab)) == len(plan.nodes) + len(plan.pods())
    finally:
        for host, file in zip(two_hosts, files, strict=True):
            subprocess.run(["nsenter", f"--net=/run/netns/{host}", "--", clab, "destroy",
                            "--topo", str(file), "--cleanup"], capture_output=True,
                           cwd=tmp_path, env={**os.environ, **CLAB_ENV}, timeout=300,
                           check=False)
    assert lab_containers(lab) == []
