"""HTTP probes for real: client namespaces, two anycast HTTP servers behind ECMP, one killed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.backend.processes import stop_pids
from lab.measure.probe import (
    HttpFlowSpec,
    HttpProbeSpec,
    load_http_probes,
    start_http_probes,
    write_http_probe_spec,
)
from lab.measure.probe.httprecords import read_http_records
from tests.conftest import require_root
from tests.integration.probeworld import ProbeWorld, probe_world

pytestmark = pytest.mark.integration
PORT = 8000
# A real HTTP/1.1 server naming its pod in X-Served-By (argv: address, port, pod).
SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("X-Served-By", sys.argv[3])
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")

server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ProbeWorld]:
    require_root()
    with probe_world(tmp_path / "world", clients=2, servers=2, start_servers=False) as built:
        for j, netns in enumerate(built.servers):
            log = tmp_path / f"http{j}.log"
            spawn = built.spawn_in(netns, f"n{j}", "httpserver")
            built.processes[netns] = spawn(
                [sys.executable, "-c", SERVER, built.vip, str(PORT), f"pod{j}"], log)
            deadline = time.monotonic() + 15
            while not (log.exists() and b"ready" in log.read_bytes()):
                assert time.monotonic() < deadline, "HTTP server did not start"
                time.sleep(0.02)
        yield built


def test_probes_follow_the_anycast_servers(world: ProbeWorld, tmp_path: Path) -> None:
    flows = tuple(HttpFlowSpec(f"c{i}", ns if i else f"/run/netns/{ns}", "web", world.vip,
                               PORT, k)
                  for i, ns in enumerate(world.clients) for k in range(3))
    out = tmp_path / "http.txt"
    spec = HttpProbeSpec(lab=world.lab, flows=flows, out=out, identity_header="X-Served-By",
                         interval_ms=10, timeout_ms=300, trial=0)
    record = start_http_probes(world.spawn_outside("httpprobe"),
                               write_http_probe_spec(spec, tmp_path / "http.json"),
                               tmp_path / "http.log")
    try:
        time.sleep(1.0)
        killed = world.kill_server(0)
        time.sleep(1.5)
        stopping = time.monotonic_ns()
    finally:
        stop_pids([record.pid], grace_s=3.0)
    instances = {f"pod{j}": {"site": world.site(j), "cluster": f"k{j}", "node": f"n{j}",
                             "pod": f"pod{j}"} for j in range(2)}
    frame = load_http_probes(out, 0, instances)
    records = read_http_records(out)
    assert records.counters is not None, (tmp_path / "http.log").read_text()
    assert set(frame["client"]) == {"c0", "c1"} and len(frame) >= 6 * 200
    before = frame[frame["send_ns"] < killed]
    assert before["recv_ns"].notna().mean() > 0.95 and set(before["status"].dropna()) == {200}
    assert before["rtt_ms"].median() < 5 and set(before["site"].dropna()) <= {"site0", "site1"}
    # after the kill, connections to the dead server are refused; a new connection is a new
    # source port, hashed anew: every flow ends up on the survivor
    settled = frame[frame["send_ns"] < stopping - 50_000_000]  # none in flight at the stop
    last = settled.sort_values("seq").groupby(["client", "flow"]).tail(20)
    assert last["recv_ns"].notna().all() and set(last["pod"]) == {"pod1"}
    reasons = {o.reason for o in records.outcomes if o.reason is not None}
    assert reasons <= {"refused", "reset", "eof", "busy", "timeout", "stopped"}
