"""A scratch world of namespaces for the probers' tests and benchmark (needs root).

Clients and anycast servers joined by one router namespace::

    client i (198.18.i.2) --- router --- server j (198.19.j.2, VIP on lo)

The router reaches the VIP over equal-cost next hops (one per server) with L4 hashing
(``fib_multipath_hash_policy=1``), so flows with different source ports spread over the
servers. Every server is a real ``lab.apps.server`` process answering the services in SERVICES.
Nothing is created in the host namespace; ``close`` stops the processes this world started
(by PID) and removes its namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.backend.processes import Spawn, launch, start_ticks, stop_pids
from lab.backend.state import ProcessRecord
from lab.errors import ImpairmentError, ProbeError
from lab.impair.measure import unique_name
from lab.impair.namespaces import create_veth, ensure_netns, remove_netns, require_index, rtnl
from lab.netns import in_netns, netns_path

NSENTER = "/usr/bin/nsenter"
VIP = "192.0.2.53"
SERVICES = ({"name": "dns", "protocol": "udp", "port": 53},
            {"name": "ntp", "protocol": "udp", "port": 123},
            {"name": "web", "protocol": "tcp", "port": 80})
HEALTH_PORT = 8080
SERVER_START_S = 15.0


def _sysctl(netns: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl (net.*) from a thread inside ``netns``."""
    with in_netns(netns):
        Path("/proc/sys", *key.split(".")).write_text(value + "\n")


def _address(netns: str, ifname: str, ip: str, gateway: str | None) -> None:
    with rtnl(netns) as ipr:
        index = require_index(ipr, ifname, netns)
        ipr.addr("add", index=index, address=ip, prefixlen=24)
        if gateway is not None:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway)


def _loopback(netns: str, vip: str | None = None) -> None:
    with rtnl(netns) as ipr:
        index = require_index(ipr, "lo", netns)
        ipr.link("set", index=index, state="up")
        if vip is not None:
            ipr.addr("add", index=index, address=vip, prefixlen=32)


@dataclass
class ProbeWorld:
    """Names, processes and switches of one scratch world."""

    lab: str
    workdir: Path
    router: str
    clients: list[str]
    servers: list[str]
    vip: str = VIP
    processes: dict[str, ProcessRecord] = field(default_factory=dict)  # server ns -> process

    @staticmethod
    def client_ip(i: int) -> str:
        return f"198.18.{i}.2"

    @staticmethod
    def server_ip(j: int) -> str:
        return f"198.19.{j}.2"

    def site(self, j: int) -> str:
        return f"site{j}"

    def spawn_in(self, netns: str, node: str, kind: str) -> Spawn:
        """What a backend's spawn does for a lab node: the command inside ``netns``."""
        def spawn(argv: Sequence[str], log: Path) -> ProcessRecord:
            return launch(self.lab, node, kind,
                          [NSENTER, f"--net={netns_path(netns)}", "--", *argv], log)
        return spawn

    def spawn_outside(self, kind: str) -> Spawn:
        """A process on the machine, outside every namespace of the world."""
        return lambda argv, log: launch(self.lab, f"_{kind}", kind, argv, log)

    def build(self) -> None:
        for ns in (self.router, *self.clients, *self.servers):
            ensure_netns(ns)
            _loopback(ns)
        _sysctl(self.router, "net.ipv4.ip_forward", "1")
        _sysctl(self.router, "net.ipv4.fib_multipath_hash_policy", "1")
        for i, client in enumerate(self.clients):
            create_veth(client, "eth0", self.router, f"c{i}", 1500)
            _address(client, "eth0", self.client_ip(i), f"198.18.{i}.1")
            _address(self.router, f"c{i}", f"198.18.{i}.1", None)
        for j, server in enumerate(self.servers):
            create_veth(server, "eth0", self.router, f"s{j}", 1500)
            _loopback(server, self.vip)
            _address(server, "eth0", self.server_ip(j), f"198.19.{j}.1")
            _address(self.router, f"s{j}", f"198.19.{j}.1", None)
        self.restore_route()

    def restore_route(self) -> None:
        """The VIP over every server, equal cost (also undoes ``blackhole``)."""
        hops = [{"gateway": self.server_ip(j)} for j in range(len(self.servers))]
        with rtnl(self.router) as ipr:
            if len(hops) == 1:
                ipr.route("replace", dst=f"{self.vip}/32", gateway=hops[0]["gateway"])
            else:
                ipr.route("replace", dst=f"{self.vip}/32", multipath=hops)

    def blackhole(self) -> int:
        """Make the router drop traffic to the VIP silently; returns the instant (ns)."""
        with rtnl(self.router) as ipr:
            ipr.route("replace", dst=f"{self.vip}/32", type="blackhole")
        return time.monotonic_ns()

    def server_spec(self, j: int) -> Path:
        path = self.workdir / f"server{j}.json"
        spec = {"lab": self.lab, "site": self.site(j), "cluster": f"k{j}", "node": f"n{j}",
                "pod": f"pod{j}", "address": self.vip, "services": list(SERVICES),
                "health_port": HEALTH_PORT, "unready_flag": str(self.workdir / f"unready{j}")}
        path.write_text(json.dumps(spec))
        return path

    def start_server(self, j: int) -> ProcessRecord:
        """Start (or restart) the anycast server of server namespace ``j``; waits until bound."""
        log = self.workdir / f"server{j}.log"
        mark = log.stat().st_size if log.exists() else 0
        spawn = self.spawn_in(self.servers[j], f"n{j}", "server")
        record = spawn([sys.executable, "-m", "lab.apps.server", "--spec",
                        str(self.server_spec(j))], log)
        self.processes[self.servers[j]] = record
        deadline = time.monotonic() + SERVER_START_S
        while b"ready on" not in log.read_bytes()[mark:]:
            if time.monotonic() > deadline or start_ticks(record.pid) is None:
                raise ProbeError(f"server {j} did not start: {log.read_text()[-500:]}")
            time.sleep(0.02)
        return record

    def kill_server(self, j: int) -> int:
        """SIGKILL server ``j``; returns the instant (ns) once it is gone."""
        record = self.processes.pop(self.servers[j])
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        stop_pids([record.pid], grace_s=0.0)  # reaps it
        return time.monotonic_ns()

    def close(self) -> None:
        stop_pids([r.pid for r in self.processes.values() if start_ticks(r.pid) == r.start_ticks],
                  grace_s=1.0)
        self.processes.clear()
        for ns in (*self.clients, *self.servers, self.router):
            with contextlib.suppress(ImpairmentError):
                remove_netns(ns)


@contextlib.contextmanager
def probe_world(workdir: Path, clients: int = 1, servers: int = 1, prefix: str = "altest",
                start_servers: bool = True) -> Iterator[ProbeWorld]:
    """A built world (servers running unless told otherwise), removed afterwards."""
    tag = unique_name("w", prefix)
    workdir.mkdir(parents=True, exist_ok=True)
    world = ProbeWorld(lab=tag, workdir=workdir, router=f"{tag}-r",
                       clients=[f"{tag}-c{i}" for i in range(clients)],
                       servers=[f"{tag}-s{j}" for j in range(servers)])
    try:
        world.build()
        if start_servers:
            for j in range(servers):
                world.start_server(j)
        yield world
    finally:
        world.close()
