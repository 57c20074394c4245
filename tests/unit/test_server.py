"""The anycast pod server (C, started from its spec) on loopback: UDP echo + identity, TCP line
echo, HTTP health, draining on SIGTERM, and the Python wrapper that checks the spec."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lab.apps.server import main as server_module
from lab.apps.server.build import ensure_server_built
from lab.apps.server.main import identity_bytes, server_argv
from lab.apps.server.spec import ServerSpec, ServiceSpec
from tests.unit.podserver import RunningServer, ports_of, running_server

IDENTITY = {"site": "nyc", "cluster": "nyc-k8s", "node": "n1", "pod": "p1"}
MAX_LINE = 4096


def make_spec(tmp_path: Path, port: int = 0, address: str = "127.0.0.1") -> ServerSpec:
    return ServerSpec(lab="t", site="nyc", cluster="nyc-k8s", node="n1", pod="p1",
                      address=IPv4Address(address),
                      services=(ServiceSpec("dns", "udp", port), ServiceSpec("web", "tcp", port)),
                      health_port=port, unready_flag=tmp_path / "unready")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(make_spec(tmp_path)) as server:
        yield server


def test_identity_is_compact_json_in_a_fixed_order(tmp_path: Path) -> None:
    text = identity_bytes(make_spec(tmp_path), "dns")
    assert text == (b'{"site":"nyc","cluster":"nyc-k8s","node":"n1","pod":"p1",'
                    b'"service":"dns"}')


def test_the_command_line_carries_every_service_and_its_identity(tmp_path: Path) -> None:
    argv = server_argv(make_spec(tmp_path, port=53), Path("/bin/podserver"), nice=-5)
    assert argv[0] == "/bin/podserver"
    assert argv[argv.index("--nice") + 1] == "-5"
    assert "--address6" not in argv
    first = argv.index("--service")
    assert argv[first:first + 5] == ["--service", "udp", "53", "dns",
                                     identity_bytes(make_spec(tmp_path), "dns").decode()]
    assert argv.count("--service") == 2


def test_udp_service_echoes_with_identity(running: RunningServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        request = (7).to_bytes(8, "big") + (123456789).to_bytes(8, "big")
        for _ in range(50):
            client.sendto(request, ("127.0.0.1", running.ports["dns"]))
        replies = [client.recv(2048) for _ in range(50)]
    for reply in replies:
        head, newline, ident = reply.partition(b"\n")
        assert head == request and newline
        assert json.loads(ident) == {**IDENTITY, "service": "dns"}


def test_tcp_connections_stay_open_and_echo_lines(running: RunningServer) -> None:
    clients = [socket.create_connection(("127.0.0.1", running.ports["web"]), timeout=5)
               for _ in range(20)]
    try:
        for round_ in range(3):
            for i, client in enumerate(clients):
                client.sendall(f"hello {i} {round_}\n".encode())
            for i, client in enumerate(clients):
                line = _read_line(client)
                text, _, ident = line.partition(" {")
                assert text == f"hello {i} {round_}"
                assert json.loads("{" + ident) == {**IDENTITY, "service": "web"}
    finally:
        for client in clients:
            client.close()


def test_tcp_line_split_across_segments(running: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", running.ports["web"]), timeout=5) as client:
        client.sendall(b"par")
        time.sleep(0.05)
        client.sendall(b"tial\r\nsecond\n")
        assert _read_line(client).startswith("partial {")
        assert _read_line(client).startswith("second {")


def test_a_line_of_4_kib_is_answered_and_a_longer_one_closes_the_connection(
        running: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", running.ports["web"]), timeout=5) as client:
        client.sendall(b"x" * MAX_LINE + b"\n")
        assert _read_line(client).startswith("x" * MAX_LINE + " {")
        client.sendall(b"y" * (MAX_LINE + 1) + b"\n")
        assert client.recv(100) == b""
    with socket.create_connection(("127.0.0.1", running.ports["web"]), timeout=5) as client:
        client.sendall(b"z" * (MAX_LINE + 10))  # no end of line in sight
        assert client.recv(100) == b""


def test_a_client_that_reads_nothing_holds_up_no_other(running: RunningServer) -> None:
    port = running.ports["web"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as greedy, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as polite:
        greedy.setblocking(False)
        sent = 0
        line = b"q" * 1000 + b"\n"
        with pytest.raises(BlockingIOError):
            for _ in range(20_000):  # until both directions' buffers are full
                sent += greedy.send(line)
        assert sent > 256 * 1024
        polite.sendall(b"still here\n")
        assert _read_line(polite).startswith("still here {")


def test_health_responses(running: RunningServer, tmp_path: Path) -> None:
    port = running.ports["health"]
    assert _http(port, b"GET /ready HTTP/1.0\r\n\r\n") == (200, b"ok")
    (tmp_path / "unready").touch()
    assert _http(port, b"GET /ready?x=1 HTTP/1.1\r\nHost: x\r\n\r\n") == (503, b"unready")
    assert _http(port, b"GET /live HTTP/1.0\n\n") == (200, b"ok")
    (tmp_path / "unready").unlink()
    assert _http(port, b"GET /ready HTTP/1.0\r\n\r\n") == (200, b"ok")
    assert _http(port, b"GET /nope HTTP/1.0\r\n\r\n") == (404, b"not found\n")
    assert _http(port, b"POST /ready HTTP/1.0\r\n\r\n") == (405, b"method not allowed\n")
    assert _http(port, b"\r\n\r\n") == (400, b"bad request\n")
    assert _http(port, b"G3T /live HTTP/1.0\r\n\r\n") == (400, b"bad request\n")
    raw = _exchange(port, b"HEAD /live HTTP/1.0\r\n\r\n")
    assert raw == (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                   b"Connection: close\r\n\r\n")


def test_the_ready_line_names_every_port(running: RunningServer) -> None:
    text = running.ready_line
    assert text.startswith("anycast server p1 ready on 127.0.0.1: udp/")
    assert f"tcp/{running.ports['web']} (web)" in text
    assert set(running.ports) == {"dns", "web", "health"}


def test_main_reports_a_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"lab": "t"}')
    assert server_module.main(["--spec", str(spec)]) == 2
    assert "field required" in capsys.readouterr().err


def test_main_becomes_the_c_server_in_the_same_process(tmp_path: Path) -> None:
    spec = tmp_path / "server.json"
    spec.write_text(json.dumps({
        "lab": "t", "site": "nyc", "cluster": "nyc-k8s", "node": "n1", "pod": "p1",
        "address": "127.0.0.1", "health_port": _free_port(), "unready_flag": str(tmp_path / "u"),
        "services": [{"name": "dns", "protocol": "udp", "port": _free_port(socket.SOCK_DGRAM)}]}))
    process = subprocess.Popen([sys.executable, "-m", "lab.apps.server", "--spec", str(spec)],
                               stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        line = process.stderr.readline().decode()
        assert "anycast server p1 ready on 127.0.0.1: udp/" in line, line
        assert os.readlink(f"/proc/{process.pid}/exe") == str(ensure_server_built())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"q", ("127.0.0.1", ports_of(line)["dns"]))
            assert client.recv(4096).startswith(b"q\n{")
    finally:
        process.terminate()
        assert process.wait(5) == 0  # nothing open: it drains at once
        process.stderr.close()


def test_a_port_that_cannot_be_bound_fails_with_its_address(tmp_path: Path) -> None:
    argv = server_argv(make_spec(tmp_path, address="192.0.2.1"), ensure_server_built())
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 1
    assert "cannot bind udp 192.0.2.1 port 0 (dns)" in result.stderr


def test_bad_arguments_exit_2_with_the_usage() -> None:
    result = subprocess.run([str(ensure_server_built()), "--pod"], capture_output=True,
                            text=True, timeout=10, check=False)
    assert result.returncode == 2 and "usage: podserver" in result.stderr


def test_a_stopped_server_drains_its_open_connections(tmp_path: Path) -> None:
    """SIGTERM as a terminating pod: no new connection, no health port; the open connection
    and datagrams are still answered; the server exits when it closes."""
    with running_server(make_spec(tmp_path)) as server:
        web, health = server.ports["web"], server.ports["health"]
        client = socket.create_connection(("127.0.0.1", web), timeout=5)
        try:
            client.sendall(b"before\n")
            assert _read_line(client).startswith("before ")
            server.process.send_signal(signal.SIGTERM)
            _wait_until_refused(web)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", health), timeout=1)
            client.sendall(b"after\n")
            assert _read_line(client).startswith("after ")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(5)
                udp.sendto(b"q", ("127.0.0.1", server.ports["dns"]))
                assert udp.recv(4096).startswith(b"q\n")
            assert server.process.poll() is None
        finally:
            client.close()
        assert server.process.wait(5) == 0


def _wait_until_refused(port: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        except ConnectionResetError:
            pass  # queued on the listener as it closed (the kernel resets those): again
        time.sleep(0.01)
    pytest.fail("the stopped server still accepts connections")


def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        assert chunk, "connection closed"
        data += chunk
    return data[:-1].decode()


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def _http(port: int, request: bytes) -> tuple[int, bytes]:
    head, _, body = _exchange(port, request).partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(body)
    return int(head.split()[1]), body


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_front_needs_only_the_standard_library() -> None:
    """The containerlab pod image has Debian's Python and no third-party package: the front
    (and the build helpers it imports) must start there."""
    root = Path(server_module.__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-S", "-c", "import lab.apps.server.main"],
                            capture_output=True, text=True, timeout=30, check=False,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
