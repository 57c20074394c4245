"""A service's own server (``workload:``) and its probe in the topology: accepted, planned,
placeholders replaced per pod, and every mistake reported at once with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab import pipeline
from lab.backend import workloads
from lab.backend.runtime_specs import agent_spec, server_spec
from lab.faults.revisions import pod_at
from lab.plan.model import Role
from lab.plan.planner import build_plan
from lab.topology.workload import substitute
from tests.conftest import TOPOLOGIES
from tests.unit.test_validation import issues_of, mini, validate_data

NSD = {"command": ["/usr/sbin/nsd", "-d", "-c", "{dir}/nsd.conf"],
       "files": {"nsd.conf": "server:\n  ip-address: {address}\n  nsid: \"ascii_{pod}\"\n",
                 "zones/example.test.zone": "site IN TXT \"{site}\" ; { not a placeholder }\n"},
       "env": {"POD": "{pod}"},
       "readiness": {"dns": {"name": "www.example.test", "type": "AAAA"}}}
DNS_SERVICE = {"name": "dns", "vip": "192.0.2.53", "port": 53, "workload": NSD,
               "probe": {"dns": {"name": "www.example.test", "identity": "nsid"}}}


def _paths(data: dict[str, Any]) -> dict[str, str]:
    return {issue.path: issue.message for issue in issues_of(data)}


def test_a_dns_workload_is_planned_with_its_check_and_probe() -> None:
    plan = build_plan(validate_data(mini(services=[DNS_SERVICE])))
    (service,) = plan.services
    assert service.workload is not None and service.dns_probe is not None
    assert service.workload.readiness.kind == "dns"
    assert (service.workload.readiness.name, service.workload.readiness.rr_type) == (
        "www.example.test", 28)
    assert service.workload.readiness.port == 53
    assert (service.dns_probe.name, service.dns_probe.rr_type,
            service.dns_probe.identity) == ("www.example.test", 1, "nsid")
    assert plan.to_dict()["services"][0]["workload"]["command"][0] == "/usr/sbin/nsd"


def test_a_service_without_workload_keeps_the_plan_as_it_was() -> None:
    data = build_plan(validate_data(mini())).to_dict()
    assert "workload" not in data["services"][0] and "dns_probe" not in data["services"][0]


def test_mistakes_are_all_reported_with_their_paths() -> None:
    bad = {"command": [], "files": {"../etc/passwd": "x", "/abs": "y"},
           "env": {"1BAD": "x"}, "readiness": {"dns": {"name": "bad..name"}, "tcp": {}}}
    found = _paths(mini(services=[
        {"name": "dns", "vip": "192.0.2.53", "port": 53, "workload": bad},
        {"name": "web", "vip": "192.0.2.80", "port": 80, "protocol": "tcp",
         "probe": {"dns": {"name": "www.example.test", "type": "BOGUS"}}}]))
    assert any(p.startswith("services[0].workload.command") for p in found), found
    assert any("../etc/passwd" in p or "../etc/passwd" in m for p, m in found.items()), found
    assert any("/abs" in p or "/abs" in m for p, m in found.items()), found
    assert any("1BAD" in p or "1BAD" in m for p, m in found.items()), found
    assert any(p.startswith("services[0].workload.readiness") for p in found), found
    assert any(p.startswith("services[1].probe.dns") for p in found), found


def test_a_workload_needs_a_probe_in_its_protocol_and_dns_needs_a_workload() -> None:
    no_probe = {k: v for k, v in DNS_SERVICE.items() if k != "probe"}
    found = _paths(mini(services=[no_probe]))
    assert "services[0].probe" in found and "echo" in found["services[0].probe"]
    no_workload = {k: v for k, v in DNS_SERVICE.items() if k != "workload"}
    found = _paths(mini(services=[no_workload]))
    assert "built-in server" in found["services[0].probe.dns"]
    over_tcp = {**DNS_SERVICE, "protocol": "tcp"}
    assert "UDP" in _paths(mini(services=[over_tcp]))["services[0].probe.dns"]


def test_placeholders_are_replaced_per_pod_and_other_braces_stay(tmp_path: Path) -> None:
    plan = build_plan(validate_data(mini(services=[DNS_SERVICE])))
    workloads.write_files(tmp_path, plan)
    pod = plan.pods()[0]
    folder = workloads.folder(tmp_path, pod.name, "dns")
    conf = (folder / "nsd.conf").read_text()
    assert f"ip-address: {pod.address.ip}" in conf and f'nsid: "ascii_{pod.name}"' in conf
    zone = (folder / "zones" / "example.test.zone").read_text()
    assert f'"{pod.site}"' in zone and "{ not a placeholder }" in zone
    (service,) = plan.services
    assert service.workload is not None
    argv, env = workloads.command_line(tmp_path, pod, service, service.workload)
    assert argv == ["/usr/sbin/nsd", "-d", "-c", f"{folder}/nsd.conf"]
    assert env == {"POD": pod.name}
    assert substitute("{address6}|{nope}", {"address6": ""}) == "|{nope}"


def test_a_rolled_pod_has_a_folder_name_and_address_of_its_own(tmp_path: Path) -> None:
    plan = build_plan(validate_data(mini(services=[DNS_SERVICE])))
    slot = plan.pods()[0]
    new = pod_at(plan, slot, 2)
    workloads.write_pod_files(tmp_path, plan, new, 2)
    folder = workloads.folder(tmp_path, slot.name, "dns", 2)
    assert folder == workloads.pod_folder(tmp_path, slot.name) / "dns.r2"
    conf = (folder / "nsd.conf").read_text()
    assert f"ip-address: {new.address.ip}" in conf and new.address != slot.address
    assert f'nsid: "ascii_{slot.name}-r2"' in conf
    (service,) = plan.services
    assert service.workload is not None
    argv, env = workloads.command_line(tmp_path, new, service, service.workload, 2)
    assert argv == ["/usr/sbin/nsd", "-d", "-c", f"{folder}/nsd.conf"]
    assert env == {"POD": f"{slot.name}-r2"}
    assert not workloads.folder(tmp_path, slot.name, "dns").exists()  # revision 1's: untouched


def test_the_builtin_server_leaves_the_service_to_the_workload_and_the_agent_checks_it(
        tmp_path: Path) -> None:
    plan = build_plan(validate_data(mini(services=[
        DNS_SERVICE, {"name": "echo", "vip": "192.0.2.10", "port": 7}])))
    pod = plan.pods()[0]
    assert [s["name"] for s in server_spec("lab", tmp_path, plan, pod)["services"]] == ["echo"]
    node = plan.node(pod.node)
    assert node.role == Role.K8S_NODE
    pods = agent_spec("lab", tmp_path, plan, node)["pods"]
    mine = next(p for p in pods if p["name"] == pod.name)
    assert mine["checks"] == [{"service": "dns", "kind": "dns", "port": 53,
                               "name": "www.example.test", "rr_type": 28}]


def test_the_shipped_dns_lab_plans_nsd_in_every_pod() -> None:
    plan = pipeline.plan(TOPOLOGIES / "dns-anycast.yaml")
    dns = next(s for s in plan.services if s.name == "dns")
    assert dns.workload is not None and dns.workload.command[0] == "/usr/sbin/nsd"
    assert dns.dns_probe is not None and dns.dns_probe.identity == "nsid"
    assert len(plan.pods()) == 24


NGINX = {"command": ["/usr/sbin/nginx", "-p", "{dir}", "-c", "{dir}/nginx.conf"],
         "files": {"nginx.conf": "http { server { listen {address}:{port}; } }\n"},
         "readiness": {"http": {"path": "/healthz"}}}


def test_an_http_workload_is_planned_with_its_probe() -> None:
    web = {"name": "web", "vip": "192.0.2.80", "port": 80, "protocol": "tcp",
           "workload": NGINX, "probe": {"http": {"identity_header": "X-Served-By",
                                                 "keepalive": False, "interval": "20ms"}}}
    plan = build_plan(validate_data(mini(services=[web])))
    (service,) = plan.services
    assert service.tcp_probe is not None
    assert (service.tcp_probe.mode, service.tcp_probe.interval_ms, service.tcp_probe.keepalive,
            service.tcp_probe.identity_header) == ("http", 20.0, False, "X-Served-By")
    assert service.workload is not None and service.workload.readiness.path == "/healthz"
    values = {"address": "10.64.0.2", "port": "80"}  # nginx's own braces stay
    assert substitute(service.workload.files[0][1], values) == \
        "http { server { listen 10.64.0.2:80; } }\n"


def test_http_and_connect_probe_mistakes() -> None:
    found = _paths(mini(services=[
        {"name": "a", "vip": "192.0.2.80", "port": 80, "protocol": "tcp",
         "probe": {"http": {}}},
        {"name": "b", "vip": "192.0.2.81", "port": 81,
         "probe": {"connect": {}}}]))
    assert "HTTP" in found["services[0].probe.http"]
    assert "TCP" in found["services[1].probe.connect"]
    both = _paths(mini(services=[{"name": "c", "vip": "192.0.2.82", "port": 82,
                                  "protocol": "tcp", "probe": {"connect": {}, "http": {}}}]))
    assert "one probe kind" in both["services[0].probe"]
    bad = _paths(mini(services=[{"name": "a", "vip": "192.0.2.80", "port": 80,
                                 "protocol": "tcp", "workload": NGINX,
                                 "probe": {"http": {"identity_header": "X Served",
                                                    "interval": "0ms"}}}]))
    assert any("identity_header" in p for p in bad) and any("interval" in p for p in bad), bad


def test_a_connect_probe_needs_no_workload() -> None:
    plan = build_plan(validate_data(mini(services=[
        {"name": "web", "vip": "192.0.2.80", "port": 80, "protocol": "tcp",
         "probe": {"connect": {"interval": "5ms"}}}])))
    assert plan.services[0].tcp_probe is not None
    assert plan.services[0].tcp_probe.mode == "connect"


def test_packages_are_planned_once_each_and_bad_names_reported() -> None:
    with_packages = {**DNS_SERVICE, "workload": {**NSD, "packages": ["nsd", "ldnsutils", "nsd"]}}
    plan = build_plan(validate_data(mini(services=[with_packages])))
    (service,) = plan.services
    assert service.workload is not None and service.workload.packages == ("ldnsutils", "nsd")
    assert workloads.packages(plan) == ("ldnsutils", "nsd")
    assert workloads.packages(build_plan(validate_data(mini()))) == ()
    bad = {**DNS_SERVICE, "workload": {**NSD, "packages": ["NSD", "ok", "a b"]}}
    found = _paths(mini(services=[bad]))
    assert {"services[0].workload.packages[0]", "services[0].workload.packages[2]"} <= set(
        found), found
    assert "Debian package name" in found["services[0].workload.packages[0]"]


def test_a_missing_program_names_the_packages_to_install() -> None:
    absent = {**NSD, "command": ["/nonexistent/nsd"], "packages": ["nsd"]}
    plan = build_plan(validate_data(mini(services=[{**DNS_SERVICE, "workload": absent}])))
    (problem,) = workloads.missing_programs(plan)
    assert "'/nonexistent/nsd'" in problem and "`apt-get install nsd`" in problem
