"""A service's own server in the pods (``workload:``) and how clients probe it (``probe:``).

Without ``workload:`` every pod answers the service with the lab's built-in server (an echo
that names the pod). With it, each pod of the service runs the user's command in the pod, with
the files written for that pod; a readiness check (as a kubelet's probe) decides when the
pod's endpoint counts. Placeholders ``{site}``, ``{cluster}``, ``{node}``, ``{pod}``,
``{address}``, ``{address6}``, ``{port}``, ``{service}`` and ``{dir}`` (the folder of the
pod's files) are replaced in the command, the environment and the files; any other brace is
left as it is (configuration languages use braces).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from lab.topology.fields import DurationMs
from lab.topology.fields import custom_error as _custom

PLACEHOLDERS = ("site", "cluster", "node", "pod", "address", "address6", "port", "service", "dir")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian Policy 5.6.1
# RR types by name (the ones a probe or check plausibly asks); a number is taken as it is
CheckKind = Literal["dns", "http", "tcp", "udp", "exec"]
CHECK_KINDS: tuple[CheckKind, ...] = ("dns", "http", "tcp", "udp", "exec")
RR_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
            "AAAA": 28, "SRV": 33, "HTTPS": 65}


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each known placeholder replaced by its value (unknown braces stay)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _dns_name(value: str) -> str:
    name = value.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _custom("dns_name", f"{value!r} is not a DNS name (labels of 1-63 letters, "
                                  "digits, '-' or '_', separated by dots)")
    return name


def _rr_type(value: str | int) -> int:
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise _custom("rr_type", f"RR type {value} is out of range 1-65535")
        return value
    number = RR_TYPES.get(value.upper())
    if number is None:
        raise _custom("rr_type", f"unknown RR type {value!r}: use one of "
                                 f"{', '.join(RR_TYPES)} or its number")
    return number


def _file_name(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or not path.parts or ".." in path.parts or value.endswith("/"):
        raise _custom("file_name", f"{value!r} must be a relative path inside the pod's "
                                   "folder (no '..')")
    return value


def _header_name(value: str) -> str:
    if not _HEADER.fullmatch(value):
        raise _custom("header", f"{value!r} is not an HTTP header name")
    return value


def _package_name(value: str) -> str:
    if not _PACKAGE.fullmatch(value):
        raise _custom("package", f"{value!r} is not a Debian package name (lower case letters, "
                                 "digits, '+', '-', '.'; e.g. nsd, nginx-light)")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise _custom("env_name", f"{value!r} is not an environment variable name")
    return value


DnsName = Annotated[str, AfterValidator(_dns_name)]
Port = Annotated[int, Field(ge=1, le=65535)]
FileName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_file_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]
PackageName = Annotated[str, AfterValidator(_package_name)]

ProbeInterval = Annotated[DurationMs, Field(gt=0, le=60_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RrTyped(_Strict):
    name: DnsName
    type: Annotated[int, Field(ge=1, le=65535)] = 1

    @model_validator(mode="before")
    @classmethod
    def _type_by_name(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            return {**data, "type": _rr_type(data["type"])}
        return data


class DnsCheck(_RrTyped):
    """Ready when a query for ``name``/``type`` gets NOERROR with at least one answer."""


class HttpCheck(_Strict):
    """Ready when GET ``path`` answers 200-399 (as a Kubernetes httpGet probe)."""

    path: Annotated[str, Field(pattern=r"^/[\x21-\x7e]*$")] = "/"
    port: Port | None = None  # the service's port


class TcpCheck(_Strict):
    """Ready when a TCP connection is accepted."""

    port: Port | None = None


class UdpCheck(_Strict):
    """Ready when a datagram ``send`` gets any datagram back."""

    port: Port | None = None
    send: Annotated[str, Field(min_length=1, max_length=1024)] = "ping\n"


class WorkloadReadiness(_Strict):
    """Exactly one check."""

    dns: DnsCheck | None = None
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    udp: UdpCheck | None = None
    exec: Annotated[list[str], Field(min_length=1)] | None = None  # exit code 0: ready

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkloadReadiness:
        given = [name for name in CHECK_KINDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise _custom("readiness", "give exactly one check: dns, http, tcp, udp or exec"
                          + (f" (given: {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> CheckKind:
        return next(name for name in CHECK_KINDS if getattr(self, name) is not None)


class Workload(_Strict):
    """The user's server, run in every pod of the service. On the netns and mininet
    backends the pods share this machine's programs; on the containerlab backend the pods
    (and nodes, for ``exec`` checks) run an image built from Debian's packages with
    ``packages`` added."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    files: dict[FileName, str] = {}
    env: dict[EnvName, str] = {}
    readiness: WorkloadReadiness
    packages: Annotated[list[PackageName], Field(max_length=32)] = []


class DnsProbe(_RrTyped):
    """Clients send one DNS query per probe. ``identity``: how the answering instance names
    itself — ``nsid`` (RFC 5001, asked in every query), ``chaos`` (``name`` is then asked as
    TXT in class CH, e.g. ``hostname.bind``, RFC 4892) or ``none``. The identity is matched
    against the pods' names: set it to ``{pod}`` in the server's configuration."""

    identity: Literal["nsid", "chaos", "none"] = "nsid"


class HttpProbe(_Strict):
    """Clients send ``GET path`` every ``interval`` on each flow, over one kept-alive
    connection (``keepalive``) or a new connection per request; the answering instance names
    itself in the response header ``identity_header`` (its pod's name, ``{pod}``). A status
    outside 200-399 counts as a failed probe, its code recorded."""

    path: Annotated[str, Field(pattern=r"^/[\x21-\x7e]*$")] = "/"
    host: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[\x21-\x7e]+$")] \
        | None = None  # the Host header (default: the VIP)
    identity_header: Annotated[str, AfterValidator(_header_name)] | None = "X-Served-By"
    keepalive: bool = True
    interval: ProbeInterval = 10.0


class ConnectProbe(_Strict):
    """Clients open a TCP connection every ``interval`` on each flow; a completed handshake
    is an answer (its time the RTT), the answering instance unknown."""

    interval: ProbeInterval = 10.0


PROBE_KINDS = ("echo", "dns", "http", "connect")


class ServiceProbe(_Strict):
    """How scenarios probe the service: ``echo`` (the built-in server's, the default),
    ``dns``, ``http`` or ``connect``."""

    dns: DnsProbe | None = None
    http: HttpProbe | None = None
    connect: ConnectProbe | None = None
    echo: Literal[True] | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> ServiceProbe:
        given = [kind for kind in PROBE_KINDS if getattr(self, kind) is not None]
        if len(given) > 1:
            raise _custom("probe", f"give one probe kind: {', '.join(PROBE_KINDS)} (given: "
                                   f"{', '.join(given)})")
        return self

    @property
    def kind(self) -> str:
        return next((kind for kind in PROBE_KINDS[1:] if getattr(self, kind) is not None),
                    "echo")


__all__ = ["PLACEHOLDERS", "PROBE_KINDS", "RR_TYPES", "ConnectProbe", "DnsCheck", "DnsProbe",
           "HttpCheck", "HttpProbe", "ServiceProbe",
           "TcpCheck", "UdpCheck", "Workload", "WorkloadReadiness", "substitute"]
