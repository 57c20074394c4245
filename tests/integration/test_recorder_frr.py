"""Two real FRR 8.4 routers (zebra, bgpd, bfdd) peering eBGP with BFD over a veth; a silent
blackhole of the link must show as bfd_down and session_down about interval x multiplier
after the blackhole instant, and the FIB delete of the VIP right after (root; own
namespaces and daemons only)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.backend import processes
from lab.impair.measure import scratch_namespaces
from lab.measure.recorder import (
    RecorderSpec,
    load_routes,
    parse_frr_logs,
    read_clock_pair,
    start_recorder,
    wait_ready,
)
from lab.measure.recorder.fib import read_rows
from tests.conftest import require_root, require_tool

pytestmark = pytest.mark.integration

VIP = "192.0.2.53/32"
BFD_INTERVAL_MS, BFD_MULTIPLIER = 300, 3
DAEMONS = ("zebra", "bgpd", "bfdd")
ADDRESSES = {"ra": "10.254.0.0", "rb": "10.254.0.1"}
ASNS = {"ra": 65001, "rb": 65002}
BLACKHOLE = """table netdev altest_blackhole {
  chain ingress { type filter hook ingress device "e0" priority 0; policy drop; }
  chain egress { type filter hook egress device "e0" priority 0; policy drop; }
}
"""


def frr_conf(router: str, peer: str, log: Path, announce: bool) -> str:
    """The lab's template plus the three lines the recorder needs (log file, precision,
    debug bfd peer)."""
    me, other = ADDRESSES[router], ADDRESSES[peer]
    network = f"  network {VIP}\n" if announce else ""
    return f"""frr version 8.4.4
frr defaults datacenter
hostname {router}
log file {log} debugging
log timestamp precision 6
service integrated-vtysh-config
bgp route-map delay-timer 0
debug bfd peer
!
bfd
 profile fast
  detect-multiplier {BFD_MULTIPLIER}
  receive-interval {BFD_INTERVAL_MS}
  transmit-interval {BFD_INTERVAL_MS}
 exit
 peer {other} local-address {me} interface e0
  profile fast
 exit
exit
!
router bgp {ASNS[router]}
 bgp router-id {me}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor {other} remote-as {ASNS[peer]}
 neighbor {other} timers 3 9
 neighbor {other} timers connect 2
 neighbor {other} bfd profile fast
 address-family ipv4 unicast
{network}  neighbor {other} activate
 exit-address-family
exit
!
end
"""


@dataclass
class Router:
    name: str
    netns: str
    directory: Path
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.directory / "frr.log"

    def vtysh(self, *args: str) -> str:
        return subprocess.run(["vtysh", "--vty_socket", str(self.directory), *args],
                              capture_output=True, text=True, timeout=20, check=True).stdout


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(list(argv), input=stdin, text=True, capture_output=True, timeout=20,
                   check=True)


def start_daemons(router: Router) -> None:
    folder = router.directory
    for daemon in DAEMONS:
        argv = ["nsenter", f"--net=/run/netns/{router.netns}", f"/usr/lib/frr/{daemon}",
                "-u", "root", "-g", "frrvty", "-A", "127.0.0.1", "-P", "0",
                "-i", str(folder / f"{daemon}.pid"), "-z", str(folder / "zserv.api"),
                "--vty_socket", str(folder), "--log", f"file:{folder / daemon}.log",
                "-f", "/dev/null"]
        argv += {"zebra": ["-s", "90000000"], "bfdd": ["--bfdctl", str(folder / "bfdd.sock")]
                 }.get(daemon, [])
        with (folder / f"{daemon}.out").open("wb") as out:
            router.daemons.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL))
        wait_for(lambda d=daemon: (folder / f"{d}.vty").exists(), 10, f"{daemon} vty")


def stop_daemons(router: Router) -> None:
    for proc in reversed(router.daemons):  # only the daemons this test started
        if proc.poll() is None:
            proc.terminate()
    for proc in router.daemons:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def two_routers() -> Iterator[tuple[Router, Router]]:
    folder = Path(tempfile.mkdtemp(prefix="altest-frr-"))  # short: vty socket paths
    routers: list[Router] = []
    try:
        with scratch_namespaces("ra", "rb") as (ns_a, ns_b):
            run("ip", "-n", ns_a, "link", "add", "e0", "type", "veth", "peer", "name", "e0",
                "netns", ns_b)
            for name, ns in (("ra", ns_a), ("rb", ns_b)):
                run("ip", "-n", ns, "link", "set", "lo", "up")
                run("ip", "-n", ns, "address", "add", f"{ADDRESSES[name]}/31", "dev", "e0")
                run("ip", "-n", ns, "link", "set", "e0", "up")
                router = Router(name, ns, folder / name)
                router.directory.mkdir()
                routers.append(router)
            try:
                for router in routers:
                    start_daemons(router)
                yield routers[0], routers[1]
            finally:
                for router in routers:
                    stop_daemons(router)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def established(router: Router) -> bool:
    out = router.vtysh("-c", "show bfd peers brief")
    rib = router.vtysh("-c", f"show ip route {VIP} json")
    return " up " in out and '"installed":true' in rib.replace(" ", "")


def test_blackhole_detected_by_bfd_and_recorded(tmp_path: Path) -> None:
    require_root()
    require_tool("vtysh", "nft", "nsenter", "ip", "zebra", "bgpd", "bfdd")
    with two_routers() as (ra, rb):
        spec = RecorderSpec.build("altest", {"ra": ra.netns, "rb": rb.netns}, [VIP],
                                  tmp_path / "fib.jsonl", tmp_path / "ready")
        log = tmp_path / "recorder.log"
        lab = f"altest{os.getpid()}{secrets.token_hex(2)}"
        record = start_recorder(
            lambda argv, out: processes.launch(lab, "_recorder", "recorder", argv, out),
            spec.write(tmp_path / "recorder.json"), log)
        try:
            wait_ready(tmp_path / "ready", 10, record, log)
            for router, peer in ((ra, rb), (rb, ra)):
                conf = router.directory / "frr.conf"
                conf.write_text(frr_conf(router.name, peer.name, router.log,
                                         announce=router is ra))
                router.vtysh("-f", str(conf))
            wait_for(lambda: established(rb), 30, "BGP + BFD up and the VIP installed on rb")
            time.sleep(1.0)  # let a startup flap, if any, pass
            clock = read_clock_pair()
            before = time.monotonic_ns()
            run("ip", "netns", "exec", ra.netns, "nft", "-f", "-", stdin=BLACKHOLE)
            after = time.monotonic_ns()
            wait_for(lambda: any(r["router"] == "rb" and r["action"] == "del"
                                 for r in read_rows(tmp_path / "fib.jsonl")), 15,
                     "the VIP deleted from rb's FIB")
            time.sleep(0.2)
        finally:
            processes.stop_records([record])
        check_events(ra, rb, clock, before, after)
        check_fib(tmp_path / "fib.jsonl", before)


def check_events(ra: Router, rb: Router, clock: tuple[int, int], before: int,
                 after: int) -> None:
    nodes = {address: name for name, address in ADDRESSES.items()}
    paths = {r.name: {"frr": r.log} for r in (ra, rb)}
    events = parse_frr_logs(paths, nodes, clock, since_monotonic_ns=before)
    down = {(e["router"], e["kind"]): e for e in events
            if e["kind"] in {"bfd_down", "session_down"}}
    assert set(down) == {("ra", "bfd_down"), ("rb", "bfd_down"), ("ra", "session_down"),
                         ("rb", "session_down")}, events
    detect_ns = BFD_INTERVAL_MS * BFD_MULTIPLIER * 1_000_000
    for router, peer in (("ra", "rb"), ("rb", "ra")):
        bfd, bgp = down[(router, "bfd_down")], down[(router, "session_down")]
        assert (bfd["peer"], bfd["reason"]) == (peer, "control-expired")
        assert (bgp["peer"], bgp["reason"]) == (peer, "bfd-down")
        # the last packet before the blackhole came 0..interval earlier (jitter up to 25 %)
        assert after + detect_ns // 2 <= bfd["t_ns"] <= before + detect_ns + 200_000_000, (
            (bfd["t_ns"] - before) / 1e6)
        # bfdd tells bgpd (through zebra) before it writes its own line, so on a busy
        # machine the session_down line can carry the earlier stamp
        assert abs(bgp["t_ns"] - bfd["t_ns"]) <= 50_000_000


def check_fib(out: Path, blackhole_ns: int) -> None:
    frame = load_routes(out, trial=0)
    rb = frame[frame["router"] == "rb"]
    adds = rb[(rb["action"] == "add") & (rb["t_ns"] < blackhole_ns)]
    assert adds["nexthops"].tolist()[-1:] == ["10.254.0.0"]
    deletes = rb[(rb["action"] == "del") & (rb["t_ns"] > blackhole_ns)]
    assert len(deletes) == 1
    delay_ms = (int(deletes["t_ns"].iloc[0]) - blackhole_ns) / 1e6
    assert 450 <= delay_ms <= 1500, delay_ms
