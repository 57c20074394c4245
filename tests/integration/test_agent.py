"""The node agent and the anycast server in a tiny real world (root, FRR, GoBGP, nftables).

    leaf (FRR zebra+bgpd, AS 65001) --veth 10.0.0.0/31-- node (gobgpd or FRR, AS 65101, agent)
                                                           |  bridge 10.64.0.1/24
                                                          pod (anycast server, 10.64.0.2)

The leaf is also the client: it reaches the VIP only through the BGP route the agent announces,
and the node DNATs it to the pod. Every namespace is named ``altest-<pid><random>-*``; the
fixture kills only the processes it started (by PID) and deletes its namespaces even on failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.apps.agent.events import read_events
from tests.conftest import REPO, require_root, require_tool

pytestmark = pytest.mark.integration

VIP = "192.0.2.53"
POD = "10.64.0.2"
PERIOD_MS = 200
FAILURE_THRESHOLD = 3
FRR_DIR = "/usr/lib/frr"
LEAF_CONF = """frr defaults datacenter
hostname leaf
router bgp 65001
 bgp router-id 10.0.0.0
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 10.0.0.1 remote-as 65101
 neighbor 10.0.0.1 timers 1 3
 neighbor 10.0.0.1 timers connect 1
 address-family ipv4 unicast
  neighbor 10.0.0.1 activate
 exit-address-family
"""
NODE_FRR_CONF = """frr defaults datacenter
hostname node
router bgp 65101
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor 10.0.0.0 remote-as 65001
 neighbor 10.0.0.0 timers 1 3
 neighbor 10.0.0.0 timers connect 1
 address-family ipv4 unicast
  network 10.64.0.0/24
  neighbor 10.0.0.0 activate
 exit-address-family
"""
# GoBGP applies its global import policy to paths added through its API too: "reject-route"
# there would silently drop every announcement (the agent reports that as a verify error).
NODE_GOBGP_TOML = """[global.config]
as = 65101
router-id = "10.0.0.1"
local-address-list = ["10.0.0.1"]
[global.apply-policy.config]
default-import-policy = "accept-route"
default-export-policy = "accept-route"
[[neighbors]]
[neighbors.config]
neighbor-address = "10.0.0.0"
peer-as = 65001
[neighbors.timers.config]
connect-retry = 1
hold-time = 3
keepalive-interval = 1
[neighbors.transport.config]
local-address = "10.0.0.1"
[[neighbors.afi-safis]]
[neighbors.afi-safis.config]
afi-safi-name = "ipv4-unicast"
"""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll observable state (not a stopwatch: event times come from the events file)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sh(*argv: str, input_text: str | None = None) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=20,
                          input=input_text).stdout


class World:
    """Namespaces, daemons and programs of one test world; ``close`` undoes all of it."""

    def __init__(self, speaker: str, tmp: Path) -> None:
        self.speaker = speaker
        self.tmp = tmp
        self.tag = f"altest-{os.getpid()}{secrets.token_hex(2)}"
        self.ns = {role: f"{self.tag}-{role}" for role in ("leaf", "node", "pod")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.made: list[str] = []
        self.unready_flag = tmp / "unready"
        self.events = tmp / "node" / "agent-events.jsonl"

    # -- building --------------------------------------------------------------------------
    def build(self) -> None:
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        leaf, node, pod = self.ns["leaf"], self.ns["node"], self.ns["pod"]
        sh("ip", "-n", node, "link", "add", "uplink", "type", "veth", "peer", "name", "down1",
           "netns", leaf)
        sh("ip", "-n", node, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", node, "link", "add", "vpod1", "type", "veth", "peer", "name", "eth0",
           "netns", pod)
        sh("ip", "-n", node, "link", "set", "vpod1", "master", "br0")
        for ns, dev, address in ((leaf, "down1", "10.0.0.0/31"), (node, "uplink", "10.0.0.1/31"),
                                 (node, "br0", "10.64.0.1/24"), (pod, "eth0", f"{POD}/24")):
            sh("ip", "-n", ns, "addr", "add", address, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", node, "link", "set", "vpod1", "up")
        sh("ip", "-n", pod, "route", "add", "default", "via", "10.64.0.1")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.start_frr("leaf", LEAF_CONF)
        if self.speaker == "frr":
            self.start_frr("node", NODE_FRR_CONF)
        else:
            conf = self.tmp / "node.toml"
            conf.write_text(NODE_GOBGP_TOML)
            self.spawn("gobgpd", "node", ["gobgpd", "-f", str(conf), "-t", "toml", "-p",
                                          "--pprof-disable", "--api-hosts", "127.0.0.1:50051"])
        self.start_server()
        self.start_agent()

    def spawn(self, name: str, ns_role: str, argv: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        env = {**os.environ, "LAB_ID": self.tag}
        self.procs[name] = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns[ns_role]}", *argv], stdout=log,
            stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()

    def start_frr(self, role: str, config: str) -> None:
        folder = self.tmp / role
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)
        common = ["-u", "root", "-g", "frrvty", "-A", "127.0.0.1", "-P", "0", "-z",
                  str(folder / "zserv.api"), "--vty_socket", str(folder), "-f", "/dev/null"]
        self.spawn(f"{role}-zebra", role, [f"{FRR_DIR}/zebra", *common, "-i",
                                           str(folder / "zebra.pid"), "--log",
                                           f"file:{folder}/zebra.log", "-s", "90000000"])
        wait_for("zebra", (folder / "zserv.api").exists)
        self.spawn(f"{role}-bgpd", role, [f"{FRR_DIR}/bgpd", *common, "-i",
                                          str(folder / "bgpd.pid"), "--log",
                                          f"file:{folder}/bgpd.log"])
        wait_for("bgpd", (folder / "bgpd.vty").exists)
        (folder / "frr.conf").write_text(config)
        sh("vtysh", "--vty_socket", str(folder), "-f", str(folder / "frr.conf"))

    def start_server(self) -> None:
        spec = {"lab": self.tag, "site": "nyc", "cluster": "nyc-k8s", "node": "n1", "pod": "p1",
                "address": POD, "services": [{"name": "dns", "protocol": "udp", "port": 53},
                                             {"name": "web", "protocol": "tcp", "port": 80}],
                "health_port": 8080, "unready_flag": str(self.unready_flag)}
        path = self.tmp / "server.json"
        path.write_text(json.dumps(spec))
        self.spawn("server", "pod", [sys.executable, "-m", "lab.apps.server", "--spec", str(path)])

    def start_agent(self) -> None:
        spec = {"lab": self.tag, "node": "n1", "cluster": "nyc-k8s", "speaker": self.speaker,
                "asn": 65101, "pod_cidr": "10.64.0.0/24",
                "readiness": {"period_ms": PERIOD_MS, "timeout_ms": 150,
                              "failure_threshold": FAILURE_THRESHOLD, "success_threshold": 1},
                "services": [{"name": n, "vip": VIP, "protocol": p, "port": port,
                              "traffic_policy": "Local"}
                             for n, p, port in (("dns", "udp", 53), ("web", "tcp", 80))],
                "pods": [{"name": "p1", "address": POD, "health_port": 8080, "local": True}],
                "events": str(self.events), "nft": shutil.which("nft") or "nft"}
        if self.speaker == "frr":
            spec["vty_socket_dir"] = str(self.tmp / "node")
        else:
            spec["gobgp_api"] = "127.0.0.1:50051"
        path = self.tmp / "agent.json"
        path.write_text(json.dumps(spec))
        self.spawn("agent", "node", [sys.executable, "-m", "lab.apps.agent", "--spec", str(path)])

    # -- observing -------------------------------------------------------------------------
    def leaf_route(self) -> list[dict[str, object]]:
        routes: list[dict[str, object]] = json.loads(
            sh("ip", "-j", "-n", self.ns["leaf"], "route", "show", "exact", f"{VIP}/32"))
        return routes

    def has_route(self) -> bool:
        return bool(self.leaf_route())

    def event_list(self, since: int = 0) -> list[dict[str, object]]:
        if not self.events.exists():
            return []
        return [e for e in read_events(self.events) if int(str(e["t_ns"])) >= since]

    def udp_query(self, payload: bytes) -> bytes:
        script = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                  "s.settimeout(2);s.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],53));"
                  "sys.stdout.write(s.recv(4096).hex())")
        out = sh("ip", "netns", "exec", self.ns["leaf"], sys.executable, "-c", script,
                 payload.hex(), VIP)
        return bytes.fromhex(out)

    def tcp_lines(self, lines: list[str]) -> list[str]:
        script = ("import socket,sys;c=socket.create_connection((sys.argv[1],80),timeout=2);"
                  "f=c.makefile('rwb')\nfor line in sys.argv[2:]:\n"
                  " f.write(line.encode()+b'\\n');f.flush();"
                  "sys.stdout.write(f.readline().decode())")
        out = sh("ip", "netns", "exec", self.ns["leaf"], sys.executable, "-c", script, VIP,
                 *lines)
        return out.splitlines()

    # -- tearing down ----------------------------------------------------------------------
    def stop(self, name: str, sig: int = signal.SIGTERM) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True,
                           timeout=20)


@pytest.fixture(scope="module", params=["gobgp", "frr"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[World]:
    require_root()
    require_tool("vtysh", "zebra", "bgpd", "gobgpd", "gobgp", "nft", "nsenter")
    built = World(request.param, tmp_path_factory.mktemp(f"agent-{request.param}"))
    try:
        built.build()
        wait_for("the VIP route on the leaf", built.has_route, timeout=20)
        yield built
    finally:
        built.close()


def test_the_vip_is_announced_with_the_node_as_next_hop(world: World) -> None:
    route = world.leaf_route()[0]
    assert route["gateway"] == "10.0.0.1"
    kinds = [e["event"] for e in world.event_list()]
    assert kinds[0] == "agent_start"
    assert {"pod_ready", "nft_apply", "announce"} <= set(kinds)
    status = json.loads((world.events.parent / "status.json").read_text())
    assert status["announced"] == [VIP] and status["pods"] == {"p1": "ready"}
    assert status["endpoints"] == {"dns": [POD], "web": [POD]}


def test_udp_to_the_vip_is_answered_by_the_pod(world: World) -> None:
    request = (1).to_bytes(8, "big") + time.monotonic_ns().to_bytes(8, "big")
    reply = world.udp_query(request)
    # split by length: the request's timestamp bytes may contain a newline (0x0a)
    head, newline, identity = (reply[:len(request)], reply[len(request):len(request) + 1],
                               reply[len(request) + 1:])
    assert head == request and newline == b"\n"
    assert json.loads(identity) == {"site": "nyc", "cluster": "nyc-k8s", "node": "n1",
                                    "pod": "p1", "service": "dns"}


def test_tcp_lines_are_echoed_over_one_connection(world: World) -> None:
    replies = world.tcp_lines(["hello", "again"])
    assert [r.split(" ", 1)[0] for r in replies] == ["hello", "again"]
    assert json.loads(replies[1].split(" ", 1)[1])["service"] == "web"


def test_an_unready_pod_is_withdrawn_and_announced_again(world: World) -> None:
    touched = time.monotonic_ns()
    world.unready_flag.touch()
    try:
        wait_for("the withdrawal", lambda: not world.has_route())
    finally:
        world.unready_flag.unlink()
    events = world.event_list(since=touched)
    kinds = [e["event"] for e in events]
    assert kinds[:4] == ["pod_unready", "nft_apply", "conntrack_flush", "withdraw"]
    times = [int(str(e["t_ns"])) for e in events[:4]]
    assert times == sorted(times)
    detection_ms = (times[0] - touched) / 1e6
    assert detection_ms >= (FAILURE_THRESHOLD - 1) * PERIOD_MS * 0.9
    assert detection_ms <= FAILURE_THRESHOLD * PERIOD_MS + 500
    assert events[0]["probe"] == "503"
    assert int(str(events[3]["done_ns"])) >= times[3]
    wait_for("the new announcement", world.has_route)
    assert [e["event"] for e in world.event_list(since=touched)][-3:] == [
        "pod_ready", "nft_apply", "announce"]


def test_a_restarted_agent_keeps_the_route_and_adopts_it(world: World) -> None:
    assert world.stop("agent") == 0  # SIGTERM: no withdrawal, as after a crash
    assert world.has_route()
    restarted = time.monotonic_ns()
    world.start_agent()
    wait_for("the second agent_start", lambda: any(
        e["event"] == "nft_apply" for e in world.event_list(since=restarted)))
    events = world.event_list(since=restarted)
    assert events[0]["event"] == "agent_start"
    assert f"{VIP}/32" in events[0]["found"]  # type: ignore[operator]
    assert "withdraw" not in [e["event"] for e in events]
    assert not [e for e in events if e["event"] == "announce" and e["kind"] == "vip"]
    assert world.has_route()


def test_killing_the_server_withdraws_the_vip(world: World) -> None:
    killed = time.monotonic_ns()
    world.stop("server", signal.SIGKILL)
    wait_for("the withdrawal", lambda: not world.has_route())
    events = world.event_list(since=killed)
    assert [e["event"] for e in events][:4] == ["pod_unready", "nft_apply", "conntrack_flush",
                                                "withdraw"]
    assert events[0]["probe"] == "connection refused"
    world.start_server()
    wait_for("the new announcement", world.has_route)


def test_graceful_stop_withdraws(world: World) -> None:
    world.stop("agent")
    spec = world.tmp / "agent.json"
    world.spawn("agent", "node", [sys.executable, "-m", "lab.apps.agent", "--spec", str(spec),
                                  "--withdraw-on-exit"])
    started = time.monotonic_ns()
    wait_for("the restarted agent", lambda: any(
        e["event"] == "nft_apply" for e in world.event_list(since=started)))
    assert world.stop("agent") == 0
    wait_for("the withdrawal", lambda: not world.has_route())
    stop = world.event_list(since=started)[-1]
    assert stop["event"] == "agent_stop" and stop["withdrawn"] == [VIP]
