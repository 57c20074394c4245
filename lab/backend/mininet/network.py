"""A lab's hosts and links as a Mininet network: one Mininet host per plan node, pod and (when
links are emulated) the link emulator, one Mininet link per veth pair of the lab
(``lab.backend.wiring``) with the plan's interface names and MACs.

Mininet makes each host the way it always does: a shell started by ``mnexec`` in a network
namespace of its own (no name under /run/netns); each link is made from inside its first host
with the peer put straight into the second (``ip link add ... netns PID``), so nothing appears
in this machine's own namespace. The lab's programs enter a host through
``/proc/PID/ns/net`` of its shell (``lab.backend.mininet.backend``). Addresses, routes and
neighbours are set by the lab's netlink worker exactly as on the other backends; Mininet's
interface objects are told the addresses too, so its CLI (``dump``, ``net``) shows them.

What Mininet would otherwise change on this machine is left alone: ``Mininet.init`` raises
system-wide limits (``fs.file-max``, ``kernel.pty.max``, network buffer sizes, neighbour table
sizes) with sysctl; the lab needs none of them, so the class is marked initialised first and
only this process's own limit of open files is raised. Each host's shell carries the lab's tag,
so a forced teardown finds it like any other process of the lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.atomicfile import write_atomic
from lab.backend.names import tag_environment
from lab.backend.processes import start_ticks
from lab.backend.wiring import Wire
from lab.errors import BackendError

OPEN_FILES = 16384  # two descriptors per host's terminal, plus Mininet's polls


@dataclass(frozen=True)
class LinkShaping:
    """What Mininet's TCLink applies to both ends of a link (where sch_netem exists)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    rate_mbps: float | None = None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.delay_ms:
            params["delay"] = f"{self.delay_ms:g}ms"
        if self.jitter_ms:
            params["jitter"] = f"{self.jitter_ms:g}ms"
        if self.loss_pct:
            params["loss"] = self.loss_pct
        if self.rate_mbps:
            params["bw"] = self.rate_mbps
        return params


@dataclass
class NetworkSpec:
    """What the Mininet network is made of: hosts, links, and the addresses of interfaces
    (for Mininet's own view)."""

    lab: str
    hosts: list[str]
    wires: list[Wire]
    shaping: dict[int, LinkShaping] = field(default_factory=dict)  # wire index -> TCLink
    addresses: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> ifname -> ip

    def to_json(self) -> str:
        return json.dumps({"lab": self.lab, "hosts": self.hosts,
                           "wires": [asdict(w) for w in self.wires],
                           "shaping": {str(k): asdict(v) for k, v in self.shaping.items()},
                           "addresses": self.addresses})

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        data = json.loads(text)
        return cls(data["lab"], list(data["hosts"]), [Wire(**w) for w in data["wires"]],
                   {int(k): LinkShaping(**v) for k, v in data["shaping"].items()},
                   data["addresses"])


@dataclass(frozen=True)
class HostShell:
    """A host's shell: its PID and start time (``/proc/PID/stat``), so a PID reused by
    another process is never taken for the host."""

    pid: int
    ticks: int

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.ticks

    def netns(self) -> str:
        return f"/proc/{self.pid}/ns/net"


def write_hosts(path: Path, shells: dict[str, HostShell]) -> None:
    write_atomic(path, json.dumps({name: [s.pid, s.ticks] for name, s in shells.items()}))


def read_hosts(path: Path) -> dict[str, HostShell]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: HostShell(int(v[0]), int(v[1])) for name, v in data.items()
            if isinstance(v, list)}


class MininetNetwork:
    """The Mininet network of one lab, in this process (``net`` is Mininet's object)."""

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self.net: Any = None

    def build(self) -> dict[str, HostShell]:
        """Make the hosts and links; the shell of each host. Stops what it made on failure."""
        from lab.backend.mininet.tools import import_mininet

        import_mininet()
        from mininet.link import Link, TCLink
        from mininet.net import Mininet
        from mininet.node import Host

        tag = tag_environment(self.spec.lab)

        class LabHost(Host):  # type: ignore[misc]
            """A Mininet host whose shell carries the lab's tag."""

            def _popen(self, cmd: list[str], **params: Any) -> Any:
                return super()._popen(cmd, env={**os.environ, **tag}, **params)

        _raise_open_files()
        Mininet.inited = True  # see the module's docstring: no system-wide sysctls
        self.net = Mininet(topo=None, controller=None, host=LabHost, link=Link, build=False)
        try:
            for name in self.spec.hosts:
                self.net.addHost(name, ip=None)
            for index, wire in enumerate(self.spec.wires):
                shaping = self.spec.shaping.get(index)
                macs = {"addr1": wire.a_mac, "addr2": wire.b_mac}
                self.net.addLink(wire.a, wire.b, intfName1=wire.a_ifname,
                                 intfName2=wire.b_ifname,
                                 cls=TCLink if shaping else Link,
                                 **{k: v for k, v in macs.items() if v is not None},
                                 **(shaping.params() if shaping else {}))
            self._note_addresses()
            self.net.build()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, Exception):
                raise BackendError(f"Mininet could not build the network: {exc}") from exc
            raise
        return self.shells()

    def _note_addresses(self) -> None:
        """Tell Mininet's interface objects the addresses the netlink worker sets."""
        for host_name, addresses in self.spec.addresses.items():
            host = self.net[host_name]
            for ifname, address in addresses.items():
                intf = host.nameToIntf.get(ifname)
                if intf is not None:
                    intf.ip, prefix = address.split("/")
                    intf.prefixLen = int(prefix)

    def shells(self) -> dict[str, HostShell]:
        shells = {}
        for host in self.net.hosts:
            ticks = start_ticks(host.pid)
            if ticks is None:
                raise BackendError(f"Mininet host {host.name} has no shell (PID {host.pid})")
            shells[host.name] = HostShell(host.pid, ticks)
        return shells

    def stop(self) -> None:
        """End every host's shell. Links need no deleting: a namespace takes its interfaces
        with it once its last process (the lab's own ones are stopped by the teardown) ends."""
        if self.net is None:
            return
        for host in self.net.hosts:
            host.terminate()
        for host in self.net.hosts:  # reap them: a teardown would wait for the zombies
            if host.shell is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.shell.wait(timeout=2)
        self.net = None


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
