"""The anycast server's spec file, and the small JSON spec reader the runtime programs share.

The runtime programs (``lab.apps.server`` per pod, ``lab.apps.agent`` per node) start hundreds
of times per lab, so their spec loaders avoid pydantic: ``SpecReader`` reads typed fields out of
decoded JSON, refuses unknown keys and collects every problem (with its path) before raising
``SpecError``, like the topology validators do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, TypeVar

from lab.errors import InputError, InputIssue

PROTOCOLS = ("udp", "tcp")
_T = TypeVar("_T")


class SpecError(InputError):
    """A runtime program's spec file does not parse or does not validate."""

    kind = "spec"


class SpecReader:
    """Typed access to a decoded JSON document that records problems instead of stopping."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[InputIssue] = []

    def fail(self, path: str, message: str, hint: str = "") -> None:
        self.issues.append(InputIssue(self.file, None, path, message, hint))

    def check(self) -> None:
        if self.issues:
            raise SpecError(self.issues)

    def mapping(self, value: object, path: str, allowed: Collection[str]) -> Mapping[str, Any]:
        """``value`` as an object whose keys are all in ``allowed`` (extra keys are errors)."""
        if not isinstance(value, dict):
            self.fail(path, f"must be an object, not {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.fail(_join(path, str(key)), "unknown field",
                          f"known fields: {', '.join(sorted(allowed))}")
        return value

    def _get(self, obj: Mapping[str, Any], key: str, path: str, required: bool) -> object:
        if key not in obj:
            if required:
                self.fail(_join(path, key), "field required")
            return None
        return obj[key]

    def _typed(self, obj: Mapping[str, Any], key: str, path: str, default: _T | None,
               expected: str, test: Callable[[object], bool]) -> object:
        value = self._get(obj, key, path, default is None)
        if value is None:
            return default
        if not test(value):
            self.fail(_join(path, key), f"must be {expected}, not {_kind(value)}")
            return default
        return value

    def text(self, obj: Mapping[str, Any], key: str, path: str = "",
             default: str | None = None) -> str:
        value = self._typed(obj, key, path, default, "a string",
                            lambda v: isinstance(v, str) and v != "")
        return value if isinstance(value, str) else ""

    def integer(self, obj: Mapping[str, Any], key: str, path: str = "", *, low: int,
                high: int, default: int | None = None) -> int:
        value = self._typed(obj, key, path, default, "an integer",
                            lambda v: isinstance(v, int) and not isinstance(v, bool))
        if not isinstance(value, int):
            return low
        if not low <= value <= high:
            self.fail(_join(path, key), f"must be between {low} and {high}, not {value}")
            return low
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str = "") -> bool:
        value = self._typed(obj, key, path, None, "true or false",
                            lambda v: isinstance(v, bool))
        return value is True

    def choice(self, obj: Mapping[str, Any], key: str, path: str, choices: Collection[str],
               default: str | None = None) -> str:
        value = self.text(obj, key, path, default)
        if value and value not in choices:
            self.fail(_join(path, key), f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def ipv4(self, obj: Mapping[str, Any], key: str, path: str = "") -> IPv4Address:
        value = self.text(obj, key, path)
        try:
            return IPv4Address(value)
        except AddressValueError:
            if value:
                self.fail(_join(path, key), f"must be an IPv4 address, not {value!r}")
            return IPv4Address(0)

    def ipv6(self, obj: Mapping[str, Any], key: str, path: str = "") -> IPv6Address | None:
        """An optional IPv6 address (absent or empty: None)."""
        value = self.text(obj, key, path, default="")
        if not value:
            return None
        try:
            return IPv6Address(value)
        except AddressValueError:
            self.fail(_join(path, key), f"must be an IPv6 address, not {value!r}")
            return None

    def items(self, obj: Mapping[str, Any], key: str, path: str = "") -> list[tuple[str, object]]:
        """The elements of a list field, each with its path (``services[2]``)."""
        value = self._typed(obj, key, path, None, "a list", lambda v: isinstance(v, list))
        if not isinstance(value, list):
            return []
        return [(f"{_join(path, key)}[{i}]", item) for i, item in enumerate(value)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_spec_document(path: Path) -> tuple[SpecReader, object]:
    """Decode a spec file; unreadable or malformed files raise SpecError at once."""
    try:
        document: object = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        issue = InputIssue(str(path), None, "", f"cannot read the spec: {exc.strerror or exc}")
        raise SpecError([issue]) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
        raise SpecError([InputIssue(str(path), line, "", f"not valid JSON: {exc}")]) from exc
    return SpecReader(str(path)), document


@dataclass(frozen=True)
class ServiceSpec:
    """One port the server answers on."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class ServerSpec:
    lab: str
    site: str
    cluster: str
    node: str
    pod: str
    address: IPv4Address
    services: tuple[ServiceSpec, ...]
    health_port: int
    unready_flag: Path
    address6: IPv6Address | None = None  # a dual-stack pod's: every service answers there too

    def identity(self, service: str) -> dict[str, str]:
        """Who answers: carried in every reply so probers can tell sites and pods apart."""
        return {"site": self.site, "cluster": self.cluster, "node": self.node, "pod": self.pod,
                "service": service}


SERVER_FIELDS = ("lab", "site", "cluster", "node", "pod", "address", "address6", "services",
                 "health_port", "unready_flag")
SERVICE_FIELDS = ("name", "protocol", "port")


def load_server_spec(path: Path) -> ServerSpec:
    """Read and validate a server spec; raise SpecError listing every problem."""
    reader, document = read_spec_document(path)
    top = reader.mapping(document, "", SERVER_FIELDS)
    services = []
    for item_path, item in reader.items(top, "services"):
        obj = reader.mapping(item, item_path, SERVICE_FIELDS)
        services.append(ServiceSpec(
            reader.text(obj, "name", item_path),
            reader.choice(obj, "protocol", item_path, PROTOCOLS),
            reader.integer(obj, "port", item_path, low=1, high=65535)))
    spec = ServerSpec(
        lab=reader.text(top, "lab"), site=reader.text(top, "site"),
        cluster=reader.text(top, "cluster"), node=reader.text(top, "node"),
        pod=reader.text(top, "pod"), address=reader.ipv4(top, "address"),
        services=tuple(services),
        health_port=reader.integer(top, "health_port", low=1, high=65535),
        unready_flag=Path(reader.text(top, "unready_flag")),
        address6=reader.ipv6(top, "address6"))
    _check_ports(reader, spec)
    reader.check()
    return spec


def _check_ports(reader: SpecReader, spec: ServerSpec) -> None:
    seen: dict[tuple[str, int], str] = {("tcp", spec.health_port): "health_port"}
    for i, service in enumerate(spec.services):
        key = (service.protocol, service.port)
        if key in seen:
            reader.fail(f"services[{i}].port", f"{service.protocol}/{service.port} is already "
                        f"used by {seen[key]}")
        seen[key] = f"service {service.name}"
