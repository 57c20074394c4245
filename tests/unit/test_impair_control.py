"""The emulator control protocol: what Python sends and how it reads replies."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.impair import GilbertElliott, Impairment, ImpairmentError
from lab.impair.control import (
    ControlClient,
    decode_reply,
    decode_stats,
    encode_add,
    encode_set,
)
from lab.impair.model import MAX_RATE_BPS


def test_encode_set_default() -> None:
    assert encode_set("l1", "both", Impairment()) == (
        "set l1 both delay_us=0 jitter_us=0 dist=normal loss=0 rate_bps=0 "
        "queue_us=50000 limit=10000 blackhole=0 reorder=0"
    )


def test_encode_set_everything() -> None:
    imp = Impairment(delay_ms=35.5, jitter_ms=2.25, jitter_distribution="pareto",
                     gilbert=GilbertElliott(1.0, 25.0, 90.0, 0.5), rate_bps=8_000_000,
                     queue_ms=20.0, queue_limit=500, blackhole=True, reorder=True)
    assert encode_set("a--b", "b_to_a", imp) == (
        "set a--b b_to_a delay_us=35500 jitter_us=2250 dist=pareto loss=0 "
        "ge_p=0.01 ge_r=0.25 ge_bad=0.9 ge_good=0.005 rate_bps=8000000 "
        "queue_us=20000 limit=500 blackhole=1 reorder=1"
    )


def test_encode_add() -> None:
    assert encode_add("l1", "le1a", "le1b", 9000) == "add l1 le1a le1b mtu=9000"
    with pytest.raises(ImpairmentError, match="bad link id"):
        encode_add("bad id", "x", "y", 1500)


def _parse_set(line: str) -> dict[str, str]:
    verb, link, direction, *pairs = line.split(" ")
    assert (verb, link, direction) == ("set", "l", "a_to_b")
    return dict(pair.split("=", 1) for pair in pairs)


@given(delay=st.floats(0, 60_000), jitter=st.floats(0, 1_000), loss=st.floats(0, 100),
       rate=st.none() | st.integers(1_000, MAX_RATE_BPS))
def test_encoded_values_survive(delay: float, jitter: float, loss: float,
                                rate: int | None) -> None:
    fields = _parse_set(encode_set("l", "a_to_b", Impairment(
        delay_ms=delay, jitter_ms=jitter, loss_pct=loss, rate_bps=rate)))
    assert float(fields["delay_us"]) == pytest.approx(delay * 1000, rel=1e-8, abs=1e-6)
    assert float(fields["jitter_us"]) == pytest.approx(jitter * 1000, rel=1e-8, abs=1e-6)
    assert float(fields["loss"]) == pytest.approx(loss / 100, rel=1e-8, abs=1e-12)
    assert 0 <= float(fields["loss"]) <= 1
    assert int(fields["rate_bps"]) == (rate or 0)


def test_decode_reply() -> None:
    assert decode_reply(b'{"ok":true,"pid":7}\n') == {"ok": True, "pid": 7}
    with pytest.raises(ImpairmentError, match="emulator refused: no link x"):
        decode_reply('{"ok":false,"error":"no link x"}')
    with pytest.raises(ImpairmentError, match="malformed reply"):
        decode_reply("ok")
    with pytest.raises(ImpairmentError, match="unexpected reply"):
        decode_reply("[1]")


COUNTERS = {"forwarded": 5, "forwarded_bytes": 500, "dropped_loss": 1,
            "dropped_blackhole": 2, "dropped_queue": 3, "dropped_error": 0,
            "dropped_overrun": 0, "in_queue": 4,
            "params": {"delay_us": 1000.0}}


def test_decode_stats() -> None:
    reply = {"ok": True, "links": [{"id": "l1", "a_to_b": COUNTERS,
                                    "b_to_a": dict(COUNTERS, forwarded=9)}]}
    ab, ba = decode_stats(reply)["l1"]
    assert (ab.forwarded, ab.dropped, ab.in_queue, ba.forwarded) == (5, 6, 4, 9)
    with pytest.raises(ImpairmentError, match="lack counters"):
        decode_stats({"ok": True, "links": [{"id": "l", "a_to_b": {}, "b_to_a": {}}]})
    with pytest.raises(ImpairmentError, match="without links"):
        decode_stats({"ok": True})


def _fake_emulator(path: Path, replies: list[str]) -> tuple[threading.Thread, list[str]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    seen: list[str] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            for reply in replies:
                seen.append(stream.readline().decode().strip())
                stream.write(reply.encode() + b"\n")
                stream.flush()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, seen


def test_client_batches_and_reports_refusals(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    thread, seen = _fake_emulator(path, ['{"ok":true}', '{"ok":false,"error":"bad"}',
                                         json.dumps({"ok": True, "links": []})])
    client = ControlClient(path)
    try:
        with pytest.raises(ImpairmentError, match="refused: bad"):
            client.request("hello", "del x")
        assert client.request("stats") == [{"ok": True, "links": []}]
    finally:
        client.close()
        thread.join(5)
    assert seen == ["hello", "del x", "stats"]


def test_client_reaches_long_paths(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "c.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(OSError):  # too long for sun_path as it is
        server.bind(str(path))
    server.close()
    short = tmp_path / "s.sock"
    thread, seen = _fake_emulator(short, ['{"ok":true}'])
    (deep / "c.sock").symlink_to(short)
    client = ControlClient(deep / "c.sock")
    try:
        assert client.request("hello") == [{"ok": True}]
    finally:
        client.close()
        thread.join(5)
    assert seen == ["hello"]


def test_client_reports_missing_emulator(tmp_path: Path) -> None:
    with pytest.raises(ImpairmentError, match="cannot reach the emulator"):
        ControlClient(tmp_path / "none.sock")
