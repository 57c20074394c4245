"""The spec file of ``python -m lab.measure.probe.httpprobe``: HTTP (or plain TCP connect)
probes from client namespaces.

```json
{"lab": "three-sites",
 "flows": [{"client": "us-c1", "netns": "al.three-sites.us-c1", "service": "web",
            "vip": "192.0.2.80", "port": 80, "flow": 0}],
 "mode": "http", "path": "/", "host": "www.example.test", "identity_header": "X-Served-By",
 "keepalive": true, "interval_ms": 10, "timeout_ms": 1000,
 "out": "/path/http-0.txt", "trial": 0, "duration_ms": 60000}
```
``netns`` is a name under /run/netns or an absolute path; ``vip`` an IPv4 or IPv6 address.
``mode`` is ``http`` (a GET of ``path``; ``host`` is the Host header, by default the VIP and
port; ``identity_header`` the response header that names the answering instance, null: none)
or ``connect`` (the TCP handshake alone). ``keepalive``: one persistent connection per flow
(HTTP only). Defaults: ``mode`` http, ``path`` /, ``host`` and ``identity_header`` null,
``keepalive`` true, ``interval_ms`` 10, ``timeout_ms`` 1000; ``trial`` (written in the
record header) and ``duration_ms`` (no limit) are optional. Read with the runtime programs'
``SpecReader`` (no pydantic: the program starts cheaply), every problem reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.apps.server.spec import SpecReader, read_spec_document
from lab.measure.probe.tcpspec import (
    MAX_MS,
    TcpFlowSpec,
    check_flows,
    flows_document,
    write_spec,
)

TOP_FIELDS = ("lab", "flows", "mode", "path", "host", "identity_header", "keepalive",
              "interval_ms", "timeout_ms", "out", "trial", "duration_ms")
MODES = ("http", "connect")
DEFAULT_INTERVAL_MS = 10
DEFAULT_TIMEOUT_MS = 1000
MAX_DURATION_MS = 86_400_000
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

HttpFlowSpec = TcpFlowSpec  # the same flow fields: client, netns, service, vip, port, flow


@dataclass(frozen=True)
class HttpProbeSpec:
    lab: str
    flows: tuple[HttpFlowSpec, ...]
    out: Path
    mode: str = "http"
    path: str = "/"
    host: str | None = None
    identity_header: str | None = None
    keepalive: bool = True
    interval_ms: int = DEFAULT_INTERVAL_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    trial: int | None = None
    duration_ms: int | None = None

    def document(self) -> dict[str, Any]:
        """The JSON document of this spec (what ``load_http_probe_spec`` reads back)."""
        doc: dict[str, Any] = {
            "lab": self.lab,
            "flows": flows_document(self.flows),
            "mode": self.mode, "path": self.path, "host": self.host,
            "identity_header": self.identity_header, "keepalive": self.keepalive,
            "interval_ms": self.interval_ms, "timeout_ms": self.timeout_ms,
            "out": str(self.out)}
        if self.trial is not None:
            doc["trial"] = self.trial
        if self.duration_ms is not None:
            doc["duration_ms"] = self.duration_ms
        return doc


def write_http_probe_spec(spec: HttpProbeSpec, path: Path) -> Path:
    return write_spec(spec.document(), path)


def _optional_text(reader: SpecReader, top: Any, key: str) -> str | None:
    return reader.text(top, key) if top.get(key) is not None else None


def _visible(text: str) -> bool:
    """Printable ASCII without blanks: what may go into a request line or header as is."""
    return all(33 <= ord(c) <= 126 for c in text)


def _check_request(reader: SpecReader, spec: HttpProbeSpec) -> None:
    if spec.path and (not spec.path.startswith("/") or not _visible(spec.path)):
        reader.fail("path", f"must start with / and hold printable characters without blanks, "
                            f"not {spec.path!r}")
    if spec.host is not None and not _visible(spec.host):
        reader.fail("host", f"must be printable characters without blanks, not {spec.host!r}")
    if spec.identity_header is not None and not set(spec.identity_header) <= _TOKEN:
        reader.fail("identity_header", f"must be a header name, not {spec.identity_header!r}")
    if spec.mode == "connect" and (spec.identity_header is not None or spec.host is not None):
        reader.fail("mode", "connect probes send no request: host and identity_header must "
                            "be null")
    for i, flow in enumerate(spec.flows):
        for key in ("client", "service"):
            if not _visible(getattr(flow, key)):
                reader.fail(f"flows[{i}].{key}", "must be printable characters without blanks")


def load_http_probe_spec(path: Path) -> HttpProbeSpec:
    """Read and validate an HTTP probe spec; SpecError lists every problem."""
    reader, document = read_spec_document(path)
    top = reader.mapping(document, "", TOP_FIELDS)
    flows = check_flows(reader, top)
    optional = {key: reader.integer(top, key, low=low, high=high)
                for key, low, high in (("trial", 0, 32767), ("duration_ms", 1, MAX_DURATION_MS))
                if top.get(key) is not None}
    spec = HttpProbeSpec(
        lab=reader.text(top, "lab"), flows=flows, out=Path(reader.text(top, "out")),
        mode=reader.choice(top, "mode", "", MODES, default="http"),
        path=reader.text(top, "path", default="/"),
        host=_optional_text(reader, top, "host"),
        identity_header=_optional_text(reader, top, "identity_header"),
        keepalive=reader.boolean(top, "keepalive") if top.get("keepalive") is not None \
        else True,
        interval_ms=reader.integer(top, "interval_ms", low=1, high=MAX_MS,
                                   default=DEFAULT_INTERVAL_MS),
        timeout_ms=reader.integer(top, "timeout_ms", low=1, high=MAX_MS,
                                  default=DEFAULT_TIMEOUT_MS),
        trial=optional.get("trial"), duration_ms=optional.get("duration_ms"))
    _check_request(reader, spec)
    reader.check()
    return spec
