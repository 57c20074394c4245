"""The spec file of ``python -m lab.measure.probe.tcpflows``: long-lived TCP flows from client
namespaces.

```json
{"lab": "three-sites",
 "flows": [{"client": "us-c1", "netns": "al.three-sites.us-c1", "service": "web",
            "vip": "192.0.2.80", "port": 80, "flow": 0}],
 "message_interval_ms": 50, "timeout_ms": 1000, "reconnect_ms": 100,
 "events": "/path/events.jsonl", "trial": 0}
```
``netns`` is a name under /run/netns or an absolute path; ``vip`` an IPv4 or IPv6 address (a
dual-stack service has flows to each: every event names the flow's family); the three timings
have these defaults;
``trial`` is optional (when given, every event carries it). Read with the runtime programs'
``SpecReader`` (no pydantic: it starts with the lab), every problem reported at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from lab.apps.server.spec import SpecReader, read_spec_document

TOP_FIELDS = ("lab", "flows", "message_interval_ms", "timeout_ms", "reconnect_ms", "events",
              "trial")
FLOW_FIELDS = ("client", "netns", "service", "vip", "port", "flow")
DEFAULT_MESSAGE_INTERVAL_MS = 50
DEFAULT_TIMEOUT_MS = 1000
DEFAULT_RECONNECT_MS = 100
MAX_MS = 600_000


@dataclass(frozen=True)
class TcpFlowSpec:
    """One long-lived connection: from ``client`` (inside ``netns``) to ``vip``:``port``."""

    client: str
    netns: str
    service: str
    vip: str
    port: int
    flow: int

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.vip else "ipv4"


@dataclass(frozen=True)
class TcpFlowsSpec:
    lab: str
    flows: tuple[TcpFlowSpec, ...]
    events: Path
    message_interval_ms: int = DEFAULT_MESSAGE_INTERVAL_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    reconnect_ms: int = DEFAULT_RECONNECT_MS
    trial: int | None = None

    def document(self) -> dict[str, Any]:
        """The JSON document of this spec (what ``load_tcp_flows_spec`` reads back)."""
        doc: dict[str, Any] = {
            "lab": self.lab,
            "flows": flows_document(self.flows),
            "message_interval_ms": self.message_interval_ms, "timeout_ms": self.timeout_ms,
            "reconnect_ms": self.reconnect_ms, "events": str(self.events)}
        if self.trial is not None:
            doc["trial"] = self.trial
        return doc


def flows_document(flows: Sequence[TcpFlowSpec]) -> list[dict[str, Any]]:
    """The ``flows`` of a spec document (TCP flows, HTTP probes)."""
    return [{"client": f.client, "netns": f.netns, "service": f.service, "vip": f.vip,
             "port": f.port, "flow": f.flow} for f in flows]


def write_spec(document: dict[str, Any], path: Path) -> Path:
    """A probing program's spec file (its folder made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def write_tcp_flows_spec(spec: TcpFlowsSpec, path: Path) -> Path:
    return write_spec(spec.document(), path)


def check_flows(reader: SpecReader, top: Any) -> tuple[TcpFlowSpec, ...]:
    """The ``flows`` list of a spec (the TCP flows' and the HTTP probes'): each flow checked,
    duplicates refused; problems go to ``reader``."""
    flows: list[TcpFlowSpec] = []
    seen: dict[tuple[str, str, str, int], str] = {}
    items = reader.items(top, "flows")
    if "flows" in top and isinstance(top["flows"], list) and not items:
        reader.fail("flows", "must list at least one flow")
    for path, item in items:
        obj = reader.mapping(item, path, FLOW_FIELDS)
        flow = TcpFlowSpec(client=reader.text(obj, "client", path),
                           netns=reader.text(obj, "netns", path),
                           service=reader.text(obj, "service", path),
                           vip=_address(reader, obj, path),
                           port=reader.integer(obj, "port", path, low=1, high=65535),
                           flow=reader.integer(obj, "flow", path, low=0, high=32767))
        key = (flow.client, flow.service, flow.family, flow.flow)
        if key in seen:
            reader.fail(f"{path}.flow", f"flow {flow.flow} of {flow.client}/{flow.service} "
                        f"({flow.family}) is already defined at {seen[key]}")
        seen[key] = path
        if "/" in flow.netns and not flow.netns.startswith("/"):
            reader.fail(f"{path}.netns", f"must be a namespace name or an absolute path, "
                        f"not {flow.netns!r}")
        flows.append(flow)
    return tuple(flows)


def _address(reader: SpecReader, obj: Any, path: str) -> str:
    text = reader.text(obj, "vip", path)
    try:
        return str(ip_address(text))
    except ValueError:
        if text:
            reader.fail(f"{path}.vip", f"must be an IP address, not {text!r}")
        return "0.0.0.0"


def load_tcp_flows_spec(path: Path) -> TcpFlowsSpec:
    """Read and validate a TCP flows spec; SpecError lists every problem."""
    reader, document = read_spec_document(path)
    top = reader.mapping(document, "", TOP_FIELDS)
    flows = check_flows(reader, top)
    trial = reader.integer(top, "trial", low=0, high=32767) if top.get("trial") is not None \
        else None
    spec = TcpFlowsSpec(
        lab=reader.text(top, "lab"), flows=flows, events=Path(reader.text(top, "events")),
        message_interval_ms=reader.integer(top, "message_interval_ms", low=1, high=MAX_MS,
                                           default=DEFAULT_MESSAGE_INTERVAL_MS),
        timeout_ms=reader.integer(top, "timeout_ms", low=1, high=MAX_MS,
                                  default=DEFAULT_TIMEOUT_MS),
        reconnect_ms=reader.integer(top, "reconnect_ms", low=0, high=MAX_MS,
                                    default=DEFAULT_RECONNECT_MS),
        trial=trial)
    reader.check()
    return spec
