"""Loading the anycast server's spec: the good file and every error reported with its path."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lab.apps.server.spec import ServiceSpec, SpecError, load_server_spec

GOOD = {"lab": "demo", "site": "nyc", "cluster": "nyc-k8s", "node": "n1", "pod": "p1",
        "address": "10.64.0.2",
        "services": [{"name": "dns", "protocol": "udp", "port": 53},
                     {"name": "web", "protocol": "tcp", "port": 80}],
        "health_port": 8080, "unready_flag": "/run/anylab/p1/unready"}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document))
    return path


def errors(tmp_path: Path, document: object) -> str:
    with pytest.raises(SpecError) as info:
        load_server_spec(write(tmp_path, document))
    return str(info.value)


def test_a_good_spec_loads(tmp_path: Path) -> None:
    spec = load_server_spec(write(tmp_path, GOOD))
    assert spec.address == IPv4Address("10.64.0.2")
    assert spec.services == (ServiceSpec("dns", "udp", 53), ServiceSpec("web", "tcp", 80))
    assert spec.unready_flag == Path("/run/anylab/p1/unready")
    assert spec.identity("dns") == {"site": "nyc", "cluster": "nyc-k8s", "node": "n1",
                                    "pod": "p1", "service": "dns"}


@pytest.mark.parametrize(("change", "message"), [
    ({"address": "10.64.0.300"}, "address: must be an IPv4 address, not '10.64.0.300'"),
    ({"health_port": 0}, "health_port: must be between 1 and 65535, not 0"),
    ({"health_port": "8080"}, "health_port: must be an integer, not a string"),
    ({"pod": ""}, "pod: must be a string"),
    ({"extra": 1}, "extra: unknown field"),
    ({"services": {}}, "services: must be a list, not an object"),
    ({"services": [{"name": "dns", "protocol": "sctp", "port": 53}]},
     "services[0].protocol: must be one of udp, tcp, not 'sctp'"),
    ({"services": [{"name": "dns", "protocol": "udp"}]}, "services[0].port: field required"),
    ({"services": [{"name": "a", "protocol": "tcp", "port": 8080}]},
     "services[0].port: tcp/8080 is already used by health_port"),
], ids=["address", "port-range", "port-type", "empty", "unknown", "services-type", "protocol",
        "missing-port", "port-clash"])
def test_bad_fields_are_reported_with_their_path(tmp_path: Path, change: dict[str, object],
                                                 message: str) -> None:
    assert message in errors(tmp_path, {**GOOD, **change})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    document = {k: v for k, v in GOOD.items() if k not in ("site", "node")}
    text = errors(tmp_path, {**document, "health_port": -1})
    assert "3 problems in spec input" in text
    assert "site: field required" in text and "node: field required" in text


def test_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{\n "lab": \n}')
    with pytest.raises(SpecError) as info:
        load_server_spec(path)
    assert info.value.issues[0].line == 3
    assert "not valid JSON" in str(info.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_server_spec(tmp_path / "absent.json")


def test_the_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert "must be an object, not a list" in errors(tmp_path, [])
