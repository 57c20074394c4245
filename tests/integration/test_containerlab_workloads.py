"""Users' own servers on the containerlab backend, for real: the mini lab with NSD and nginx
(the services of topologies/dns-anycast.yaml and topologies/web-anycast.yaml) in pod
containers of an image built from Debian's packages with the workloads' ``packages``; clients
land on the nearest site as NSID and the X-Served-By header say; a silent node crash measured
with DNS probes; a killed pod's servers started again in its container; a program the image
lacks refused before any container exists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.backend import labs
from lab.backend.containerlab import images
from lab.backend.containerlab.names import container_name
from lab.backend.containerlab.teardown import lab_containers
from lab.backend.containerlab.tools import DOCKER
from lab.backend.example_tools import host_daemons
from lab.backend.inspect import probe_all
from lab.backend.processes import is_alive
from lab.backend.state import load_state
from lab.errors import BackendError
from lab.proc import run
from lab.run.runner import RunOptions, RunResult, run_scenario
from tests.conftest import TOPOLOGIES, require_root
from tests.integration.labfixture import require_containerlab, running_lab, unique_lab_name
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
SITE_OF_CLIENT = {"east-c1": "alpha", "west-c1": "beta"}


def _service(topology: str, name: str) -> dict[str, object]:
    document = yaml.safe_load((TOPOLOGIES / topology).read_text())
    return dict(next(s for s in document["services"] if s["name"] == name))


def _mini_with_own_servers(folder: Path, **dns_workload: object) -> Path:
    """two-sites-mini serving the DNS lab's NSD and the web lab's nginx (nginx ready when
    its pid file is written: an ``exec`` check, run by the node's agent in its container)."""
    document = yaml.safe_load((TOPOLOGIES / "two-sites-mini.yaml").read_text())
    dns, web = _service("dns-anycast.yaml", "dns"), _service("web-anycast.yaml", "web")
    dns["workload"] = {**dns["workload"], **dns_workload}  # type: ignore[dict-item]
    web["workload"] = {**web["workload"],  # type: ignore[dict-item]
                       "readiness": {"exec": ["/bin/sh", "-c", "test -s {dir}/nginx.pid"]}}
    document["name"] = "mini-own-servers"
    document["services"] = [document["services"][0], dns, web]
    path = folder / "mini-own-servers.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labs.UpResult]:
    require_root()
    require_containerlab()
    topology = _mini_with_own_servers(tmp_path_factory.mktemp("topology"))
    with running_lab(topology, "clabw", timeout_s=120.0, backend="containerlab") as result:
        yield result


def _top(lab: labs.UpResult, node: str) -> str:
    return run([DOCKER, "top", container_name(lab.state.lab, node), "-o", "pid,args"],
               timeout=60).stdout


def test_each_pod_container_runs_its_servers_from_an_image_with_their_packages(
        own: labs.UpResult) -> None:
    image = images.lab_tags(("nginx-light", "nsd"))["pod"]
    assert image != images.role_tags()["pod"]
    for pod in own.plan.pods():
        used = run([DOCKER, "inspect", "--format", "{{.Config.Image}}",
                    container_name(own.state.lab, pod.name)], timeout=60).stdout.strip()
        assert used == image, pod.name
        top = _top(own, pod.name)
        assert "/usr/sbin/nsd -d -c" in top and "nginx: master process" in top, top
    records = [r for r in own.state.processes if r.kind == "workload"]
    assert len(records) == 2 * len(own.plan.pods()) and all(is_alive(r) for r in records)
    assert host_daemons(["nsd", "nginx"]) == {"nsd": [], "nginx": []}


def test_clients_land_nearby_as_nsid_and_the_header_say(own: labs.UpResult) -> None:
    answers = [a for a in probe_all(own.backend, own.state, own.plan)
               if a.service in ("dns", "web")]
    assert {(a.client, a.service): a.site for a in answers} == {
        (client, service): site for client, site in SITE_OF_CLIENT.items()
        for service in ("dns", "web")}, answers
    assert all(a.pod is not None and a.pod.startswith(f"{a.site}-k8s-") for a in answers)


SCENARIO = """\
name: clab-own-servers
description: a silent node crash under DNS probes, then a killed pod of nginx
topology: {topology}
bgp: {{bfd: {{interval: 300ms, multiplier: 3}}}}
probe: {{interval: 1ms, services: all, flows: 1, tcp_flows: 1}}
settle: 3s
tail: 4s
steps:
  - fault: node-crash
    target: {{serving: {{client: east-c1, service: dns}}}}
    duration: 6s
  - fault: pod-kill
    target: {{serving: {{client: west-c1, service: web}}}}
    duration: 3s
"""


def test_a_node_crash_and_a_pod_kill_measured_with_the_servers_own_protocols(
        own: labs.UpResult, tmp_path: Path) -> None:
    """The flow of east-c1 that the crashed node's NSD answered loses 0.6-1.3 s (BFD 300 ms x
    3), the other client nothing; the killed pod's nginx and NSD start again in its
    container."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.format(topology=own.state.topology_file))

    def attempt(number: int) -> RunResult:
        result = run_scenario(RunOptions(scenario, name=own.state.lab, keep_lab=True,
                                         runs_root=tmp_path / f"a{number}"), lambda _m: None)
        assert result.complete and result.summary["trials"][0]["valid"], result.summary
        return result

    result = on_a_quiet_machine(attempt)
    crash, kill = result.summary["trials"][0]["events"]
    rows = {(c["client"], c["service"]): c for c in crash["clients"]}
    assert 600 <= rows[("east-c1", "dns")]["outage_ms"] <= 1300, rows[("east-c1", "dns")]
    assert rows[("west-c1", "dns")]["outage_ms"] == 0
    killed = kill["target"]
    state = load_state(own.state.lab)
    restarted = [r for r in state.processes if r.kind == "workload" and r.node == killed]
    assert len(restarted) == 2 and all(is_alive(r) for r in restarted), restarted
    top = _top(own, killed)
    assert all(str(r.pid) in top for r in restarted), top


def test_a_program_the_image_lacks_is_refused_before_any_container(tmp_path: Path) -> None:
    """NSD's package left out: the pods' image has no nsd, and `up` says so (with the hint)
    before containerlab deploys anything."""
    require_root()
    require_containerlab()
    topology = _mini_with_own_servers(tmp_path, packages=["ldnsutils"])
    name = unique_lab_name("clabm")
    try:
        with pytest.raises(BackendError) as raised:
            labs.up(topology, name, lambda _m: None, timeout_s=60.0,
                    backend=labs.backend_named("containerlab"))
        message = str(raised.value)
        assert "runs '/usr/sbin/nsd', which image anylab-pod:" in message, message
        assert "workload.packages" in message
        assert lab_containers(name) == []
    finally:
        labs.down(name, force=True)
