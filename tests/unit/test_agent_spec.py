"""Loading the node agent's spec."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from lab.apps.agent.readiness import ProbePolicy
from lab.apps.agent.spec import AgentPod, AgentService, load_agent_spec
from lab.apps.server.spec import SpecError

GOOD: dict[str, object] = {
    "lab": "demo", "node": "nyc-k8s-n1", "cluster": "nyc-k8s", "speaker": "gobgp",
    "gobgp_api": "127.0.0.1:50051", "asn": 65101, "pod_cidr": "10.64.0.0/24",
    "readiness": {"period_ms": 200, "timeout_ms": 100, "failure_threshold": 3,
                  "success_threshold": 1},
    "services": [{"name": "dns", "vip": "192.0.2.53", "protocol": "udp", "port": 53,
                  "traffic_policy": "Local"}],
    "pods": [{"name": "p1", "address": "10.64.0.2", "health_port": 8080, "local": True}],
    "events": "/run/anylab/n1/agent-events.jsonl", "nft": "/usr/sbin/nft"}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(document))
    return path


def errors(tmp_path: Path, document: object) -> str:
    with pytest.raises(SpecError) as info:
        load_agent_spec(write(tmp_path, document))
    return str(info.value)


def test_a_good_spec_loads(tmp_path: Path) -> None:
    spec = load_agent_spec(write(tmp_path, GOOD))
    assert spec.gobgp_api == ("127.0.0.1", 50051)
    assert spec.pod_cidr == IPv4Network("10.64.0.0/24")
    assert spec.readiness == ProbePolicy(200, 100, 3, 1)
    assert spec.services == (AgentService("dns", IPv4Address("192.0.2.53"), "udp", 53,
                                          "Local"),)
    assert spec.pods == (AgentPod("p1", IPv4Address("10.64.0.2"), 8080, True),)
    assert spec.status_file == Path("/run/anylab/n1/status.json")
    assert spec.vips == {IPv4Address("192.0.2.53")}


def test_defaults(tmp_path: Path) -> None:
    document = {k: v for k, v in GOOD.items() if k not in ("gobgp_api", "readiness", "nft")}
    spec = load_agent_spec(write(tmp_path, document))
    assert spec.gobgp_api == ("127.0.0.1", 50051)
    assert spec.readiness == ProbePolicy()
    assert spec.nft == "nft"


def test_frr_needs_the_vty_socket_dir(tmp_path: Path) -> None:
    assert "vty_socket_dir: field required with speaker frr" in errors(
        tmp_path, {**GOOD, "speaker": "frr"})
    spec = load_agent_spec(write(tmp_path, {**GOOD, "speaker": "frr",
                                            "vty_socket_dir": "/run/frr/n1"}))
    assert spec.vty_socket_dir == Path("/run/frr/n1")


@pytest.mark.parametrize(("change", "message"), [
    ({"speaker": "bird"}, "speaker: must be one of gobgp, frr, not 'bird'"),
    ({"gobgp_api": "localhost"}, "gobgp_api: must be HOST:PORT, not 'localhost'"),
    ({"asn": 0}, "asn: must be between 1 and 4294967295, not 0"),
    ({"pod_cidr": "10.64.0.1/24"}, "pod_cidr: must be an IPv4 prefix with no host bits"),
    ({"readiness": {"period_ms": 0}}, "readiness.period_ms: must be between 1 and"),
    ({"readiness": {"period": 1}}, "readiness.period: unknown field"),
    ({"services": [{"name": "dns", "vip": "192.0.2.53", "protocol": "udp", "port": 53,
                    "traffic_policy": "local"}]},
     "services[0].traffic_policy: must be one of Local, Cluster, not 'local'"),
    ({"pods": [{"name": "p1", "address": "10.64.0.2", "health_port": 8080, "local": 1}]},
     "pods[0].local: must be true or false, not an integer"),
    ({"pods": [{"name": "p1", "address": "10.64.0.2", "health_port": 8080, "local": True},
               {"name": "p1", "address": "10.64.0.3", "health_port": 8080, "local": True}]},
     "pods[1].name: duplicate name 'p1'"),
], ids=["speaker", "api", "asn", "cidr", "period", "readiness-field", "policy", "local",
        "duplicate"])
def test_bad_fields_are_reported_with_their_path(tmp_path: Path, change: dict[str, object],
                                                 message: str) -> None:
    assert message in errors(tmp_path, {**GOOD, **change})
