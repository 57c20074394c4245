"""The anycast server's replies: UDP echo + identity, TCP line echo, HTTP health (loopback)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from lab.apps.server import main as server_module
from lab.apps.server.main import (
    MAX_LINE,
    AnycastServer,
    health_request_complete,
    health_response,
    identity_bytes,
    take_lines,
    udp_reply,
)
from lab.apps.server.spec import ServerSpec, ServiceSpec

IDENTITY = {"site": "nyc", "cluster": "nyc-k8s", "node": "n1", "pod": "p1"}


def make_spec(tmp_path: Path, port: int = 0) -> ServerSpec:
    return ServerSpec(lab="t", site="nyc", cluster="nyc-k8s", node="n1", pod="p1",
                      address=IPv4Address("127.0.0.1"),
                      services=(ServiceSpec("dns", "udp", port), ServiceSpec("web", "tcp", port)),
                      health_port=port, unready_flag=tmp_path / "unready")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[AnycastServer]:
    server = AnycastServer(make_spec(tmp_path))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=5)
        server.close()
    assert not thread.is_alive()


def test_identity_is_compact_json_in_a_fixed_order(tmp_path: Path) -> None:
    text = identity_bytes(make_spec(tmp_path), "dns")
    assert text == (b'{"site":"nyc","cluster":"nyc-k8s","node":"n1","pod":"p1",'
                    b'"service":"dns"}')


def test_udp_reply_is_request_newline_identity() -> None:
    assert udp_reply(b"\x00" * 16, b"\n{}") == b"\x00" * 16 + b"\n{}"


def test_take_lines_answers_complete_lines_and_keeps_the_rest() -> None:
    inbox = bytearray(b"one\r\ntwo\nthr")
    assert take_lines(inbox, b" ID\n") == b"one ID\ntwo ID\n"
    assert inbox == bytearray(b"thr")
    assert take_lines(inbox, b" ID\n") == b""


def test_take_lines_refuses_a_line_longer_than_4_kib() -> None:
    assert take_lines(bytearray(b"x" * MAX_LINE + b"\n"), b"\n") == b"x" * MAX_LINE + b"\n"
    assert take_lines(bytearray(b"x" * (MAX_LINE + 1) + b"\n"), b"\n") is None
    assert take_lines(bytearray(b"x" * (MAX_LINE + 1)), b"\n") is None


def test_health_responses(tmp_path: Path) -> None:
    flag = tmp_path / "unready"
    assert health_response(b"GET /ready HTTP/1.0\r\n\r\n", flag).startswith(b"HTTP/1.0 200 OK")
    flag.touch()
    ready = health_response(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", flag)
    assert ready.startswith(b"HTTP/1.0 503 ") and ready.endswith(b"\r\n\r\nunready")
    assert health_response(b"GET /live HTTP/1.0\r\n\r\n", flag).endswith(b"\r\n\r\nok")
    assert health_response(b"GET /nope HTTP/1.0\r\n\r\n", flag).startswith(b"HTTP/1.0 404")
    assert health_response(b"POST /ready HTTP/1.0\r\n\r\n", flag).startswith(b"HTTP/1.0 405")
    assert health_response(b"\r\n\r\n", flag).startswith(b"HTTP/1.0 400")
    head = health_response(b"HEAD /live HTTP/1.0\r\n\r\n", flag)
    assert head.startswith(b"HTTP/1.0 200 OK") and head.endswith(b"\r\n\r\n")
    assert health_request_complete(b"GET / HTTP/1.0\n\n")
    assert not health_request_complete(b"GET / HTTP/1.0\r\n")


def test_udp_service_echoes_with_identity(running: AnycastServer) -> None:
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


def test_tcp_connections_stay_open_and_echo_lines(running: AnycastServer) -> None:
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


def test_tcp_line_split_across_segments(running: AnycastServer) -> None:
    with socket.create_connection(("127.0.0.1", running.ports["web"]), timeout=5) as client:
        client.sendall(b"par")
        client.sendall(b"tial\r\nsecond\n")
        assert _read_line(client).startswith("partial {")
        assert _read_line(client).startswith("second {")


def test_an_overlong_line_closes_the_connection(running: AnycastServer) -> None:
    with socket.create_connection(("127.0.0.1", running.ports["web"]), timeout=5) as client:
        client.sendall(b"x" * (MAX_LINE + 10))
        assert client.recv(100) == b""


def test_health_port_follows_the_unready_flag(running: AnycastServer, tmp_path: Path) -> None:
    port = running.ports["health"]
    assert _http_get(port, "/ready") == (200, "ok")
    (tmp_path / "unready").touch()
    assert _http_get(port, "/ready") == (503, "unready")
    assert _http_get(port, "/live") == (200, "ok")
    (tmp_path / "unready").unlink()
    assert _http_get(port, "/ready") == (200, "ok")


def test_describe_names_every_port(running: AnycastServer) -> None:
    text = running.describe()
    assert text.startswith("anycast server p1 ready on 127.0.0.1: udp/")
    assert f"tcp/{running.ports['web']} (web)" in text


def test_main_reports_a_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"lab": "t"}')
    assert server_module.main(["--spec", str(spec)]) == 2
    assert "field required" in capsys.readouterr().err


def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        assert chunk, "connection closed"
        data += chunk
    return data[:-1].decode()


def _http_get(port: int, path: str) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_a_stopped_server_drains_its_open_connections(tmp_path: Path) -> None:
    """SIGTERM (``stop``) as a terminating pod: no new connection, no health port; the open
    connection and datagrams are still answered; the server returns when it closes."""
    server = AnycastServer(make_spec(tmp_path))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    web, health = server.ports["web"], server.ports["health"]
    client = socket.create_connection(("127.0.0.1", web), timeout=5)
    try:
        client.sendall(b"before\n")
        assert _read_line(client).startswith("before ")
        server.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", web), timeout=1).close()
            except ConnectionRefusedError:
                break
            except ConnectionResetError:
                pass  # queued on the listener as it closed (the kernel resets those): again
            time.sleep(0.01)
        else:
            pytest.fail("the stopped server still accepts connections")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", health), timeout=1)
        client.sendall(b"after\n")
        assert _read_line(client).startswith("after ")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(b"q", ("127.0.0.1", server.ports["dns"]))
            assert udp.recv(4096).startswith(b"q\n")
        assert thread.is_alive()
    finally:
        client.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    server.close()
