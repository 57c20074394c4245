"""The HTTP prober against small HTTP servers on loopback (the real program, no namespaces:
a flow's netns is the program's own), its response parser and its record loader."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lab.apps.server.spec import SpecError
from lab.errors import ProbeError
from lab.measure.probe.httpprobe import (
    MAX_BODY,
    Malformed,
    ResponseReader,
    http_probe_argv,
    main,
    start_http_probes,
)
from lab.measure.probe.httprecords import (
    http_prober_timing,
    load_http_probes,
    read_http_records,
)
from lab.measure.probe.httpspec import HttpFlowSpec, HttpProbeSpec, write_http_probe_spec

INSTANCES = {"pod-a": {"site": "nyc", "cluster": "k1", "node": "n1", "pod": "pod-a"}}
OWN_NETNS = "/proc/self/ns/net"
DTYPES = {"trial": "int16", "client": "object", "service": "object", "family": "object",
          "flow": "int16", "seq": "int64", "send_ns": "int64", "recv_ns": "Int64",
          "rtt_ms": "float64", "status": "Int32", "site": "object", "cluster": "object",
          "node": "object", "pod": "object"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests += 1
        mode = self.server.mode
        if mode == "hang":
            self.server.answer_again.wait(3)
            self.close_connection = True
            return
        if mode == "garbage":
            self.wfile.write(b"SPAM SPAM SPAM\r\n\r\n")
            self.close_connection = True
            return
        body = b"hello\n"
        self.send_response(503 if mode == "503" else 200)
        self.send_header("X-Served-By", "pod-a")
        if mode == "close":
            self.send_header("Connection", "close")
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"3;ext=1\r\nhel\r\n3\r\nlo\n\r\n0\r\nTrailer: x\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = mode
        self.connections = 0
        self.requests = 0
        self.answer_again = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the prober resets connections it is done with

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.answer_again.set()


@pytest.fixture
def servers() -> Iterator[dict[str, Server]]:
    made: dict[str, Server] = {}
    for mode in ("ok", "503", "garbage", "chunked", "close", "hang"):
        made[mode] = Server(mode)
        threading.Thread(target=made[mode].serve_forever, args=(0.05,), daemon=True).start()
    yield made
    for server in made.values():
        server.answer_again.set()
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spec(tmp_path: Path, ports: dict[str, int], netns: str = OWN_NETNS, **fields: Any) -> Path:
    flows = [HttpFlowSpec("c1", netns, name, "127.0.0.1", port, 0)
             for name, port in ports.items()]
    document = HttpProbeSpec(lab="t", flows=tuple(flows), out=tmp_path / "http.txt",
                             identity_header="x-served-by", trial=3).document()
    document.update(fields)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document))
    return path


def run(spec_path: Path, duration_s: float | None = None, during: Any = None) -> str:
    """The program: to its spec's duration, or SIGTERM ``duration_s`` after it started
    probing (``during`` called after a third of it). Its standard error."""
    process = subprocess.Popen(http_probe_argv(spec_path), stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    if duration_s is not None:
        assert process.stderr.readline().startswith("http probes:")
        time.sleep(duration_s / 3)
        if during is not None:
            during()
        time.sleep(duration_s * 2 / 3)
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    return err


def rows(tmp_path: Path) -> pd.DataFrame:
    return load_http_probes(tmp_path / "http.txt", 3, INSTANCES)


def test_keepalive_probes_of_every_kind_of_server(tmp_path: Path,
                                                  servers: dict[str, Server]) -> None:
    ports = {m: servers[m].port for m in ("ok", "503", "garbage", "chunked", "close")}
    run(spec(tmp_path, {**ports, "refused": closed_port()}, interval_ms=20, duration_ms=600))
    frame = rows(tmp_path)
    assert frame.dtypes.astype(str).to_dict() == DTYPES
    records = read_http_records(tmp_path / "http.txt")
    n = 30 - records.skipped_slots  # slots every 20 ms for 600 ms (a stall skips some)
    reasons: dict[str, list[str | None]] = {}
    for outcome in sorted(records.outcomes, key=lambda o: o.seq):
        reasons.setdefault(records.flows[outcome.key].service, []).append(outcome.reason)
    by = {str(name): group for name, group in frame.groupby("service")}
    for name, group in by.items():  # one probe per slot made
        assert group["seq"].tolist() == list(range(n)), name
        slots = (group["send_ns"].diff().dropna() / 1e6).median()
        assert 19 <= slots <= 21, name
    # a slow answer (this test's server shares its process with pytest) makes slots busy
    for name in ("ok", "503", "chunked", "close"):
        assert set(reasons[name]) <= {None, "busy"} and reasons[name].count(None) > n / 2
    garbage = reasons["garbage"].count("malformed")
    assert set(reasons["garbage"]) <= {"malformed", "busy"} and garbage > n / 2
    assert set(reasons["refused"]) == {"refused"}
    ok = by["ok"][[r is None for r in reasons["ok"]]]
    assert (ok["rtt_ms"] > 0).all() and ok["rtt_ms"].median() < 20
    assert set(ok["status"]) == {200} and set(ok["pod"]) == {"pod-a"}
    assert set(ok["site"]) == {"nyc"} and set(ok["trial"]) == {3}
    assert set(ok["client"]) == {"c1"} and set(ok["family"]) == {"ipv4"}
    assert servers["ok"].connections == 1 and servers["ok"].requests == len(ok)
    assert servers["chunked"].connections == 1
    assert by["chunked"]["recv_ns"].notna().sum() == reasons["chunked"].count(None)
    failed = by["503"]
    assert failed["recv_ns"].isna().all() and failed["rtt_ms"].isna().all()
    assert failed["pod"].isna().all() and servers["503"].connections == 1
    assert set(failed["status"].dropna()) == {503}
    assert failed["status"].notna().sum() == reasons["503"].count(None)
    close = reasons["close"].count(None)  # Connection: close: a new connection per answer
    assert by["close"]["recv_ns"].notna().sum() == close == servers["close"].connections
    for name in ("garbage", "refused"):
        assert by[name]["recv_ns"].isna().all() and by[name]["status"].isna().all()
    assert records.counters is not None and records.counters["probes"] == 6 * n
    assert records.counters["lost_refused"] == n
    assert records.counters["failed"] == reasons["503"].count(None)
    # connections made: ok, 503, chunked one each; a new one per answer of close and per
    # malformed answer
    assert records.counters["connections"] == 3 + close + garbage
    assert records.header.keepalive and records.header.interval_ns == 20_000_000
    assert records.header.trial == 3


def test_a_hanging_server_times_out_busy_slots_then_recovers(
        tmp_path: Path, servers: dict[str, Server]) -> None:
    hang = servers["hang"]
    path = spec(tmp_path, {"web": hang.port}, interval_ms=20, timeout_ms=100)
    run(path, 0.45, during=lambda: hang.set_mode("ok"))
    records = read_http_records(tmp_path / "http.txt")
    reasons = [o.reason for o in sorted(records.outcomes, key=lambda o: o.seq)]
    # the first request unanswered for 100 ms, the slots meanwhile busy; once the server
    # answers again (its hung requests end with a close), so do the probes
    assert reasons[0] == "timeout" and set(reasons[1:4]) == {"busy"}
    assert set(reasons) <= {"timeout", "busy", "eof", None}
    assert reasons[-1] is None and reasons.count(None) >= 5
    assert records.counters is not None and records.counters["lost_timeout"] >= 1
    # a busy slot sent nothing: no row; the timed-out request is the lost probe of its time
    frame = rows(tmp_path)
    assert len(frame) == len(reasons) - reasons.count("busy")
    assert frame["recv_ns"].isna().sum() == len(reasons) - reasons.count("busy") \
        - reasons.count(None)
    assert frame["pod"].iloc[-1] == "pod-a"


def test_stop_by_signal_records_unanswered_probes_and_counters(
        tmp_path: Path, servers: dict[str, Server]) -> None:
    run(spec(tmp_path, {"web": servers["hang"].port}, interval_ms=50, timeout_ms=5000), 0.3)
    records = read_http_records(tmp_path / "http.txt")
    assert [o.reason for o in records.outcomes] == ["busy"] * (len(records.outcomes) - 1) \
        + ["stopped"]
    assert records.counters is not None and records.counters["lost_stopped"] == 1


def test_a_connection_per_probe(tmp_path: Path, servers: dict[str, Server]) -> None:
    run(spec(tmp_path, {"ok": servers["ok"].port, "503": servers["503"].port},
             keepalive=False, interval_ms=20, duration_ms=300))
    frame = rows(tmp_path)
    n = 15 - read_http_records(tmp_path / "http.txt").skipped_slots
    assert len(frame) == 2 * n and servers["ok"].connections == n
    ok = frame[frame["service"] == "ok"]
    assert ok["recv_ns"].notna().all() and set(ok["pod"]) == {"pod-a"}
    assert frame[frame["service"] == "503"]["recv_ns"].isna().all()


def test_connect_mode(tmp_path: Path, servers: dict[str, Server]) -> None:
    path = spec(tmp_path, {"web": servers["ok"].port, "down": closed_port()}, mode="connect",
                identity_header=None, duration_ms=200)
    run(path)
    frame = rows(tmp_path)
    web, down = frame[frame["service"] == "web"], frame[frame["service"] == "down"]
    n = 20 - read_http_records(tmp_path / "http.txt").skipped_slots
    assert len(web) == n and web["recv_ns"].notna().all() and web["status"].isna().all()
    assert web["pod"].isna().all() and (web["rtt_ms"] < 50).all()
    assert down["recv_ns"].isna().all() and len(down) == n
    assert servers["ok"].requests == 0
    assert read_http_records(tmp_path / "http.txt").header.mode == "connect"


def test_a_namespace_that_cannot_be_entered_is_unreachable(tmp_path: Path) -> None:
    err = run(spec(tmp_path, {"web": closed_port()}, netns=str(tmp_path / "no-such-ns"),
                   duration_ms=100))
    records = read_http_records(tmp_path / "http.txt")
    assert {o.reason for o in records.outcomes} == {"unreachable"}
    assert len(records.outcomes) == 10 - records.skipped_slots
    assert err.count("no-such-ns") == 1  # said once, not at every slot


def test_spec_problems_are_reported_at_once(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({
        "lab": "t", "out": str(tmp_path / "o.txt"), "mode": "ftp", "path": "no-slash",
        "interval_ms": 0, "keepalive": "yes", "color": 1,
        "flows": [{"client": "c 1", "netns": "a/b", "service": "s", "vip": "nope",
                   "port": 0, "flow": 0}]}))
    assert main(["--spec", str(path)]) == 2
    err = capsys.readouterr().err
    for problem in ("mode", "path", "interval_ms", "keepalive", "color", "vip", "port",
                    "netns", "flows[0].client"):
        assert problem in err, problem
    assert not (tmp_path / "o.txt").exists()
    with pytest.raises(SpecError):
        start_http_probes(lambda argv, log: pytest.fail("started"), path, tmp_path / "log")


def test_the_starter_spawns_the_program(tmp_path: Path) -> None:
    spec_path = write_http_probe_spec(HttpProbeSpec(
        lab="t", out=tmp_path / "run" / "http.txt",
        flows=(HttpFlowSpec("c1", "al.t.c1", "web", "2001:db8::80", 80, 0),)),
        tmp_path / "spec.json")
    started: list[list[str]] = []
    record: Any = object()

    def spawn(argv: Any, log: Path) -> Any:
        started.append(list(argv))
        return record

    assert start_http_probes(spawn, spec_path, tmp_path / "log") is record
    assert started == [[sys.executable, "-m", "lab.measure.probe.httpprobe", "--spec",
                        str(spec_path)]]
    assert (tmp_path / "run").is_dir()


def feed_all(reader: ResponseReader, data: bytes, step: int = 7) -> Any:
    """Feed ``data`` in small pieces; the response once complete."""
    for i in range(0, len(data), step):
        response = reader.feed(data[i:i + step])
        if response is not None:
            return response
    return None


def test_response_heads_and_bodies() -> None:
    reader = ResponseReader("X-Served-By")
    response = feed_all(reader, b"HTTP/1.1 200 OK\r\nx-served-BY:  pod-b \r\n"
                                b"Content-Length: 5\r\n\r\nhello")
    assert (response.status, response.identity, response.keep_alive) == (200, b"pod-b", True)
    reader.reset()
    response = feed_all(reader, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\n"
                                b"Content-Length: 0\n\n")
    assert (response.status, response.identity, response.keep_alive) == (404, None, False)
    reader.reset()
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody up to the close"
    assert feed_all(reader, head) is None
    response = reader.finish()
    assert response is not None and not response.keep_alive
    reader.reset()
    response = feed_all(reader, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"A\r\n0123456789\r\n0\r\n\r\nextra", step=3)
    assert response is not None and not response.keep_alive  # bytes nobody asked for
    reader.reset()
    assert feed_all(reader, b"HTTP/1.1 204 No Content\r\n\r\n").status == 204
    reader.reset()
    assert feed_all(reader, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel") is None
    assert reader.finish() is None  # cut short


@pytest.mark.parametrize("data", [
    b"SPAM\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 099 Low\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 1),
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 4000,
])
def test_malformed_responses(data: bytes) -> None:
    with pytest.raises(Malformed):
        feed_all(ResponseReader(None), data, step=1000)


def test_a_close_delimited_body_has_a_cap() -> None:
    reader = ResponseReader(None)
    reader.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(Malformed):
        reader.feed(b"x" * (MAX_BODY + 1))


def test_records_reader(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("H 1 http 1 10000000 1000000000 100 -\n"
                    "F 0 c1 web 2001:db8::80 80 1\n"
                    "I 0 pod-a\nI 1 who knows\n"
                    "A 0 1 120 2120 200 1\n"
                    "A 0 0 100 1100 302 0\n"
                    "L 0 2 140 malformed 200\n"
                    "K 150 2\n"
                    "A 0 3 1")  # cut by a killed writer
    records = read_http_records(path)
    assert records.skipped_slots == 2 and records.counters is None
    frame = load_http_probes(path, 0, INSTANCES)
    assert frame["seq"].tolist() == [0, 1, 2] and set(frame["family"]) == {"ipv6"}
    assert frame["pod"].tolist() == ["pod-a", None, None]
    assert frame["rtt_ms"].iloc[0] == 0.001 and frame["recv_ns"].iloc[1] == 2120
    assert frame["status"].tolist() == [302, 200, 200] and frame["flow"].tolist() == [1] * 3
    assert pd.isna(frame["recv_ns"].iloc[2])
    path.write_text("H 1 http 1 10000000 1000000000 100 -\nA 5 0 100 200 200 -1\n")
    with pytest.raises(ProbeError, match="without an F record"):
        read_http_records(path)
    path.write_text("P 1 2 3\n")
    with pytest.raises(ProbeError, match="no header"):
        read_http_records(path)


def test_the_program_starts_without_pandas() -> None:
    code = ("import sys, lab.measure.probe.httpprobe; "
            "print(sorted({'pandas', 'numpy', 'lab.backend'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_http_probers_own_timing_is_measured_from_its_slots(tmp_path: Path) -> None:
    """Slots every 10 ms from 100: probes of two flows on time or 1 ms after their slot (the
    selector's resolution), one 3 ms late; a stall of 2 slots and one of 4."""
    path = tmp_path / "r.txt"
    path.write_text("H 1 http 1 10000000 1000000000 100 -\n"
                    "F 0 c1 web 192.0.2.80 80 0\nF 1 c1 web 192.0.2.80 80 1\n"
                    "A 0 0 100 1100 200 -1\nA 1 0 1000100 2000100 200 -1\n"
                    "A 0 1 10000100 10500100 200 -1\nA 1 1 13000100 14000100 200 -1\n"
                    "K 40000100 2\nL 0 2 40000100 busy -\nA 1 2 40000200 40100200 200 -1\n"
                    "K 90000100 4\n")
    timing = http_prober_timing(read_http_records(path))
    assert timing == {"ticks": 3, "late_2ms": 1, "skipped_slots": 6,
                      "longest_stall_ms": 50.0, "longest_stall_at_ns": 90000100}
