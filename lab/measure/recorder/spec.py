"""What the FIB recorder process watches and where it writes: a small JSON file.

Kept free of heavy imports: the recorder process loads it at start.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.atomicfile import write_atomic
from lab.errors import RecorderError
from lab.netns import netns_path


@dataclass(frozen=True)
class RouterNamespace:
    name: str
    netns: str  # the path of the router's namespace, as the backend gives it


@dataclass(frozen=True)
class RecorderSpec:
    lab: str
    prefixes: tuple[str, ...]
    routers: tuple[RouterNamespace, ...]
    out: str
    ready: str

    @classmethod
    def build(cls, lab: str, routers: Mapping[str, str], prefixes: Iterable[str], out: Path,
              ready: Path) -> RecorderSpec:
        """A spec for ``routers`` (node -> its namespace: a path, or a name under /run/netns).
        Prefixes are normalised (``192.0.2.53/32``)."""
        pairs = [(node, _netns_path(ns)) for node, ns in routers.items()]
        spec = cls(lab=lab, prefixes=normalise_prefixes(prefixes),
                   routers=tuple(RouterNamespace(n, p) for n, p in sorted(pairs)),
                   out=str(out), ready=str(ready))
        spec.check()
        return spec

    def check(self) -> None:
        names = [r.name for r in self.routers]
        if not self.prefixes:
            raise RecorderError("recorder spec: no prefixes to watch")
        if len(set(names)) != len(names):
            raise RecorderError(f"recorder spec: duplicate router names in {names}")

    def to_json(self) -> str:
        return json.dumps({
            "lab": self.lab, "prefixes": list(self.prefixes),
            "routers": [{"name": r.name, "netns": r.netns} for r in self.routers],
            "out": self.out, "ready": self.ready}, indent=1)

    def write(self, path: Path) -> Path:
        return write_atomic(path, self.to_json() + "\n", durable=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecorderSpec:
        try:
            spec = cls(lab=str(data["lab"]),
                       prefixes=normalise_prefixes(data["prefixes"]),
                       routers=tuple(RouterNamespace(str(r["name"]), _netns_path(r["netns"]))
                                     for r in data["routers"]),
                       out=str(data["out"]), ready=str(data["ready"]))
        except (KeyError, TypeError) as exc:
            raise RecorderError(f"recorder spec: missing or wrong field: {exc}") from exc
        spec.check()
        return spec

    @classmethod
    def load(cls, path: Path) -> RecorderSpec:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecorderError(f"cannot read recorder spec {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise RecorderError(f"recorder spec {path}: expected a JSON object")
        return cls.from_dict(data)


def _netns_path(netns: str) -> str:
    return str(netns_path(netns))


def normalise_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """IPv4 and IPv6 prefixes in their normal text form, IPv4 first, sorted, unique; host
    bits must be zero."""
    found = set()
    for text in prefixes:
        try:
            network = ipaddress.ip_network(str(text), strict=True)
        except ValueError as exc:
            raise RecorderError(f"recorder spec: bad prefix {text!r}: {exc}") from exc
        found.add(network)
    return tuple(str(n) for n in sorted(found, key=lambda n: (n.version, n)))
