"""DNS probes: the query's checks and arguments, and the C prober asking a fake DNS server on
127.0.0.1 (a thread here) that answers well, fails or sends malformed replies."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from lab.errors import ProbeError
from lab.measure.probe import DnsQuery, ProbeTarget, load_udp_probes, prober_argv
from lab.measure.probe.build import ensure_prober_built
from lab.measure.probe.records import ProberFile, read_prober_file
from lab.measure.probe.udp import probes_frame

BIN = Path("/opt/prober")
NAME = "www.example.test"
POD_A = {"site": "nyc", "cluster": "k1", "node": "n1", "pod": "pod-a"}
POD_B = {"site": "ams", "cluster": "k2", "node": "n2", "pod": "pod-b"}
INSTANCES = {"pod-a": POD_A, "pod-b": POD_B}
PROBE_MS = 100
NSID = DnsQuery(NAME)


# ---------- the query, in Python ----------

@pytest.mark.parametrize(("name", "message"), [
    ("", "labels of 1-63"),
    (".", "labels of 1-63"),
    ("a..b", "labels of 1-63"),
    (".a", "labels of 1-63"),
    ("x" * 64 + ".test", "labels of 1-63"),
    (".".join(["x" * 63] * 4), "longer than 253"),
    ("www example", "printable ASCII"),
    ("a,b", "printable ASCII"),
    ("a\\.b", "printable ASCII"),
    ("caf\u00e9.test", "printable ASCII"),
], ids=["empty", "root", "empty-label", "leading-dot", "long-label", "long-name", "blank",
        "comma", "backslash", "non-ascii"])
def test_bad_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        DnsQuery(name)


def test_names_at_the_limits_and_absolute_names_are_taken() -> None:
    longest = ".".join(["x" * 63] * 3 + ["y" * 61])
    assert len(longest) == 253
    assert DnsQuery(longest).name == longest
    assert DnsQuery(longest + ".").spec == f"{longest}.,1,nsid"
    assert DnsQuery("_dns.a-b.test", 16, "none").spec == "_dns.a-b.test,16,none"


@pytest.mark.parametrize(("qtype", "identity", "message"), [
    (0, "nsid", "1-65535"), (65536, "nsid", "1-65535"), (1, "hostname", "one of nsid"),
])
def test_bad_types_and_identities_are_refused(qtype: int, identity: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        DnsQuery(NAME, qtype, identity)  # type: ignore[arg-type]


def test_every_target_of_a_dns_service_is_asked_by_one_option(tmp_path: Path) -> None:
    query = DnsQuery(NAME, 28)
    targets = [ProbeTarget("dns", "192.0.2.53", 53, query),
               ProbeTarget("dns", "2001:db8::53", 53, query), ProbeTarget("web", "192.0.2.80", 80)]
    argv = prober_argv(BIN, targets, 1.0, 1, tmp_path / "o", rt_priority=0)
    assert argv[argv.index("--dns"):] == ["--dns", f"dns={NAME},28,nsid"]
    assert argv.count("--target") == 3


def test_targets_of_one_service_must_ask_alike(tmp_path: Path) -> None:
    targets = [ProbeTarget("dns", "192.0.2.53", 53, DnsQuery(NAME)),
               ProbeTarget("dns", "2001:db8::53", 53)]
    with pytest.raises(ProbeError, match="same DNS query"):
        prober_argv(BIN, targets, 1.0, 1, tmp_path / "o")


def test_dns_probes_too_fast_to_tell_apart_are_refused(tmp_path: Path) -> None:
    target = ProbeTarget("dns", "192.0.2.53", 53, DnsQuery(NAME))
    assert "--dns" in prober_argv(BIN, [target], 0.031, 1, tmp_path / "o")
    with pytest.raises(ProbeError, match="too many to tell apart"):
        prober_argv(BIN, [target], 0.03, 1, tmp_path / "o")
    prober_argv(BIN, [ProbeTarget("echo", "192.0.2.53", 53)], 0.03, 1, tmp_path / "o")


def test_the_prober_refuses_bad_dns_options(tmp_path: Path) -> None:
    binary = ensure_prober_built(out_dir=tmp_path)
    base = ["--interval-us", "1000", "--out", str(tmp_path / "o"), "--target", "dns=127.0.0.1:53"]
    for extra, message in ((["--dns", "dns=a..b,1,nsid"], "labels must have 1-63"),
                           (["--dns", "dns=" + "x" * 254 + ",1,nsid"], "1-253 characters"),
                           (["--dns", "dns=" + "x" * 300 + ",1,nsid"], "too long"),
                           (["--dns", "dns=a b,1,nsid"], "printable ASCII"),
                           (["--dns", "dns=a.b,0,nsid"], "query type"),
                           (["--dns", "dns=a.b,1,bind"], "nsid, chaos or none"),
                           (["--dns", "dns=a.b,1"], "SERVICE=NAME,QTYPE,IDENTITY"),
                           (["--dns", "web=a.b,1,nsid"], "no --target"),
                           (["--dns", "dns=a.b,1,nsid", "--dns", "dns=a.c,1,nsid"], "two --dns"),
                           (["--dns", "dns=a.b,1,nsid", "--interval-us", "10"], "16-bit ID")):
        proc = subprocess.run([str(binary), *base, *extra], capture_output=True, text=True,
                              timeout=10, check=False)
        assert proc.returncode == 2 and message in proc.stderr, (extra, proc.stderr)


# ---------- a fake DNS server ----------

@dataclass(frozen=True)
class Query:
    data: bytes
    ident: int
    flags: int
    name: bytes  # wire form
    qtype: int
    qclass: int
    edns_size: int | None  # the OPT's UDP size, None without an OPT
    options: tuple[tuple[int, bytes], ...]

    @property
    def question(self) -> bytes:
        return self.data[12:12 + len(self.name) + 4]


def parse_query(data: bytes) -> Query:
    ident, flags, qdcount, ancount, nscount, arcount = struct.unpack("!6H", data[:12])
    assert (qdcount, ancount, nscount) == (1, 0, 0)
    end = 12
    while data[end]:
        end += data[end] + 1
    name = data[12:end + 1]
    qtype, qclass = struct.unpack("!HH", data[end + 1:end + 5])
    at, size, options = end + 5, None, []
    if arcount:
        assert data[at] == 0
        rtype, size, _ttl, rdlen = struct.unpack("!HHIH", data[at + 1:at + 11])
        assert rtype == 41
        rdata, at = data[at + 11:at + 11 + rdlen], at + 11 + rdlen
        while rdata:
            code, olen = struct.unpack("!HH", rdata[:4])
            options.append((code, rdata[4:4 + olen]))
            rdata = rdata[4 + olen:]
    assert at == len(data)
    return Query(data, ident, flags, name, qtype, qclass, size, tuple(options))


def header(query: Query, *, rcode: int = 0, an: int = 0, ns: int = 0, ar: int = 0,
           flags: int = 0x8400, ident: int | None = None, qd: int = 1) -> bytes:
    """QR and AA set by default."""
    return struct.pack("!6H", query.ident if ident is None else ident, flags | rcode, qd, an,
                       ns, ar)


def rr(name: bytes, rtype: int, rclass: int, rdata: bytes, ttl: int = 60) -> bytes:
    return name + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def opt(nsid: bytes | None = None, ext_rcode: int = 0, raw: bytes | None = None) -> bytes:
    options = raw if raw is not None else \
        b"" if nsid is None else struct.pack("!HH", 3, len(nsid)) + nsid
    return rr(b"\0", 41, 1232, options, ttl=ext_rcode << 24)


def a_record() -> bytes:
    return rr(b"\xc0\x0c", 1, 1, bytes([192, 0, 2, 1]))


def answer(query: Query, *, rcode: int = 0, answers: int = 1, nsid: bytes | None = b"pod-a",
           ext_rcode: int = 0) -> bytes:
    """The server's reply: the question, ``answers`` A records, an OPT with NSID."""
    return (header(query, rcode=rcode, an=answers, ar=1) + query.question
            + a_record() * answers + opt(nsid, ext_rcode))


Behaviour = Callable[[Query], list[bytes]]


@contextmanager
def udp_server(respond: Callable[[bytes], list[bytes]]) -> Iterator[int]:
    """A UDP server on 127.0.0.1 (a thread) sending ``respond``'s datagrams for each one it
    gets; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop, failures = threading.Event(), []

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                for reply in respond(data):
                    sock.sendto(reply, peer)
            except Exception as exc:  # reported by the test
                failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert not failures, failures


@contextmanager
def dns_server(behaviour: Behaviour) -> Iterator[tuple[int, list[Query]]]:
    """A fake DNS server answering each query with ``behaviour``'s datagrams; yields its port
    and the queries it got."""
    queries: list[Query] = []

    def respond(data: bytes) -> list[bytes]:
        queries.append(parse_query(data))
        return behaviour(queries[-1])

    with udp_server(respond) as port:
        yield port, queries


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_prober_built(out_dir=tmp_path_factory.mktemp("build"))


def run_prober(binary: Path, out: Path, targets: list[ProbeTarget], flows: int = 1,
               rotate: bool = False) -> None:
    argv = prober_argv(binary, targets, 1.0, flows, out, duration_ms=PROBE_MS, rt_priority=0,
                       drain_ms=150, rotate=rotate)
    subprocess.run(argv, check=True, timeout=10)


def probe(binary: Path, tmp_path: Path, behaviour: Behaviour,
          query: DnsQuery = NSID, flows: int = 1) -> tuple[ProberFile, list[Query]]:
    out = tmp_path / "c.txt"
    with dns_server(behaviour) as (port, queries):
        run_prober(binary, out, [ProbeTarget("dns", "127.0.0.1", port, query)], flows)
    return read_prober_file(out), queries


def frame_of(records: ProberFile) -> pd.DataFrame:
    return probes_frame(records, "c", 0, INSTANCES)


def stats(records: ProberFile) -> dict[str, int]:
    assert records.stats is not None
    return records.stats


# ---------- the prober against it ----------

def test_good_answers_carry_the_nsid_instance_and_status_0(binary: Path, tmp_path: Path) -> None:
    def twice_in_capitals(query: Query) -> list[bytes]:
        reply = bytearray(answer(query))
        reply[12:12 + len(query.name)] = query.name.upper()  # case is not significant
        return [bytes(reply)] * 2

    records, queries = probe(binary, tmp_path, twice_in_capitals, flows=2)
    frame = frame_of(records)
    assert len(frame) >= 10 and frame["recv_ns"].notna().all()
    assert (frame["rtt_ms"] > 0).all() and (frame["rtt_ms"] < 1000).all()
    assert frame["status"].dtype == "Int32" and (frame["status"] == 0).all()
    assert set(frame["pod"]) == {"pod-a"} and set(frame["site"]) == {"nyc"}
    assert records.identities == {0: "pod-a"}
    assert records.targets[0].dns == NSID
    counts = stats(records)
    assert counts["replies"] == counts["sent"] == counts["dups"] == len(frame)
    assert (counts["failed"], counts["bad"], counts["late"]) == (0, 0, 0)
    first = queries[0]
    assert first.name == b"\x03www\x07example\x04test\x00"
    assert (first.qtype, first.qclass, first.flags) == (1, 1, 0)  # IN A, RD clear
    assert first.edns_size == 1232 and first.options == ((3, b""),)
    assert sorted(q.ident for q in queries) == sorted(list(range(len(frame) // 2)) * 2)


def test_echo_and_dns_targets_are_probed_on_the_same_ticks(binary: Path,
                                                           tmp_path: Path) -> None:
    def echo(data: bytes) -> list[bytes]:
        return [data + b'\n{"site":"sin","pod":"p9"}']

    out = tmp_path / "c.txt"
    with udp_server(echo) as echo_port, dns_server(lambda q: [answer(q)]) as (dns_port, _):
        run_prober(binary, out, [ProbeTarget("web", "127.0.0.1", echo_port),
                                 ProbeTarget("dns", "127.0.0.1", dns_port, NSID)])
    frame = frame_of(read_prober_file(out))
    assert frame["recv_ns"].notna().all()
    web, dns = (frame.loc[frame["service"] == name] for name in ("web", "dns"))
    assert web["seq"].tolist() == dns["seq"].tolist()
    assert web["status"].isna().all() and set(web["site"]) == {"sin"}
    assert (dns["status"] == 0).all() and set(dns["site"]) == {"nyc"}


def test_rotating_flows_take_turns_and_answers_to_other_flows_are_foreign(
        binary: Path, tmp_path: Path) -> None:
    def echo_and_the_previous_seq(data: bytes) -> list[bytes]:
        """The echo, and one claiming the previous tick's seq: this flow did not send it."""
        suffix = b'\n{"site":"sin","pod":"p9"}'
        seq = struct.unpack_from("!Q", data)[0]
        forged = [struct.pack("!Q", seq - 1) + data[8:] + suffix] if seq else []
        return [data + suffix, *forged]

    out = tmp_path / "c.txt"
    with udp_server(echo_and_the_previous_seq) as echo_port, \
            dns_server(lambda q: [answer(q)]) as (dns_port, queries):
        run_prober(binary, out, [ProbeTarget("web", "127.0.0.1", echo_port),
                                 ProbeTarget("dns", "127.0.0.1", dns_port, NSID)],
                   flows=3, rotate=True)
    records = read_prober_file(out)
    ticks, frame = len(records.ticks), frame_of(records)
    assert records.header.rotate and ticks >= 10
    assert len(frame) == 2 * ticks and frame["recv_ns"].notna().all()
    assert (frame["flow"] == frame["seq"] % 3).all()
    assert (records.replies[:, 1] == records.replies[:, 2] % 3).all()
    counts = stats(records)
    assert counts["sent"] == counts["replies"] == 2 * ticks
    assert counts["bad"] == ticks - 1 and counts["dups"] == 0
    assert sorted(q.ident for q in queries) == list(range(ticks))  # one query per tick


def test_an_identity_that_is_not_printable_is_written_in_hex(binary: Path,
                                                             tmp_path: Path) -> None:
    records, _ = probe(binary, tmp_path, lambda q: [answer(q, nsid=b"\x00\xffab\x7f")])
    assert records.identities == {0: "0x00ff61627f"}
    frame = load_udp_probes(tmp_path / "c.txt", "c", 0)  # no instances: an unknown identity
    assert frame["recv_ns"].notna().all() and frame["pod"].isna().all()


def test_chaos_txt_names_the_instance(binary: Path, tmp_path: Path) -> None:
    def txt(query: Query) -> list[bytes]:
        assert (query.qtype, query.qclass, query.edns_size) == (16, 3, None)
        record = rr(b"\xc0\x0c", 16, 3, b"\x05pod-b\x03xyz")
        return [header(query, an=1) + query.question + record]

    records, queries = probe(binary, tmp_path, txt, DnsQuery("hostname.bind", identity="chaos"))
    frame = frame_of(records)
    assert (frame["status"] == 0).all() and set(frame["pod"]) == {"pod-b"}
    assert records.targets[0].dns == DnsQuery("hostname.bind", 16, "chaos")
    assert queries[0].name == b"\x08hostname\x04bind\x00"


def test_without_identity_nothing_is_asked_or_kept(binary: Path, tmp_path: Path) -> None:
    records, queries = probe(binary, tmp_path, lambda q: [answer(q)],
                             DnsQuery(NAME, 28, "none"))
    frame = frame_of(records)
    assert frame["recv_ns"].notna().all() and frame["pod"].isna().all()
    assert (queries[0].qtype, queries[0].edns_size) == (28, None)
    assert records.identities == {}


@pytest.mark.parametrize(("reply", "status"), [
    (lambda q: answer(q, rcode=2, answers=0), 2),  # SERVFAIL
    (lambda q: answer(q, rcode=3, answers=0, nsid=b"pod-b"), 3),  # NXDOMAIN
    (lambda q: answer(q, rcode=5, answers=1), 5),  # REFUSED, answers or not
    (lambda q: answer(q, answers=0), 0),  # NOERROR without an answer
    (lambda q: answer(q, ext_rcode=1), 16),  # BADVERS: the OPT's bits count
], ids=["servfail", "nxdomain", "refused", "nodata", "extended"])
def test_failed_answers_leave_probes_lost_with_their_status(
        binary: Path, tmp_path: Path, reply: Callable[[Query], bytes], status: int) -> None:
    records, _ = probe(binary, tmp_path, lambda q: [reply(q), answer(q)])
    frame = frame_of(records)
    assert len(frame) >= 10 and frame["recv_ns"].isna().all() and frame["rtt_ms"].isna().all()
    assert (frame["status"] == status).all() and frame["pod"].isna().all()
    assert (records.failures[:, 5] == status).all() and (records.failures[:, 4] > 0).all()
    counts = stats(records)
    assert counts["failed"] == counts["sent"] == counts["dups"] == len(frame)
    assert counts["replies"] == 0
    assert (frame["send_ns"] >= records.ticks[0, 1]).all()


def _pointer_loop(q: Query) -> bytes:
    at = 12 + len(q.question)  # the answer's name points to itself
    return header(q, an=1) + q.question + rr(struct.pack("!H", 0xc000 | at), 1, 1, b"\0" * 4)


def _counts_overrun(q: Query) -> bytes:
    return header(q, an=3, ar=1) + q.question + a_record() + opt(b"pod-a")


def _option_overrun(q: Query) -> bytes:
    return header(q, an=1, ar=1) + q.question + a_record() + opt(raw=b"\0\3\0\x09pod")


def _rdata_overrun(q: Query) -> bytes:
    return (header(q, an=1) + q.question + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 40)
            + b"\1\2")


def _txt_overrun(q: Query) -> bytes:
    return header(q, an=1) + q.question + rr(b"\xc0\x0c", 16, 3, b"\x09pod")


def _reserved_label(q: Query) -> bytes:
    return header(q, an=1) + q.question + rr(b"\x80\x0c", 1, 1, b"\0" * 4)


@pytest.mark.parametrize(("reply", "query"), [
    (_pointer_loop, NSID),
    (_counts_overrun, NSID),
    (_option_overrun, NSID),
    (_rdata_overrun, NSID),
    (_txt_overrun, DnsQuery("id.server", identity="chaos")),
    (_reserved_label, NSID),
], ids=["pointer-loop", "ancount-overrun", "option-overrun", "rdata-overrun", "txt-overrun",
        "label-type"])
def test_answers_malformed_beyond_the_question_are_failed_with_status_minus_1(
        binary: Path, tmp_path: Path, reply: Callable[[Query], bytes], query: DnsQuery) -> None:
    records, _ = probe(binary, tmp_path, lambda q: [reply(q)], query)
    frame = frame_of(records)
    assert len(frame) >= 10 and frame["recv_ns"].isna().all()
    assert (frame["status"] == -1).all()
    assert (records.failures[:, 6] == -1).all() and records.identities == {}
    assert stats(records)["failed"] == len(frame)


def _qr_clear(q: Query) -> bytes:
    return header(q, flags=0x0400, an=1) + q.question + a_record()


def _other_question(q: Query) -> bytes:
    other = bytearray(q.question)
    other[1] ^= 1
    return header(q, an=1) + bytes(other) + a_record()


def _other_type(q: Query) -> bytes:
    return header(q, an=1) + q.question[:-4] + struct.pack("!HH", 28, 1) + a_record()


@pytest.mark.parametrize("reply", [
    lambda q: answer(q)[:11],
    lambda q: answer(q)[:12 + len(q.question) - 1],
    lambda q: header(q, an=1) + b"\xc0\x0c" + q.question[-4:] + a_record() * 9,
    lambda q: header(q, ident=(q.ident + 0x8000) & 0xffff, an=1) + q.question + a_record(),
    _qr_clear,
    lambda q: header(q, flags=0x8400 | 0x2800, an=1) + q.question + a_record(),  # opcode 5
    lambda q: header(q, qd=0, an=1) + q.question + a_record(),
    _other_question,
    _other_type,
    lambda q: b"\0" * 24,
], ids=["short-header", "short-question", "compressed-question", "wrong-id", "qr-clear",
        "opcode", "qdcount", "other-name", "other-type", "echo-sized"])
def test_datagrams_that_are_not_our_answers_are_foreign(
        binary: Path, tmp_path: Path, reply: Callable[[Query], bytes]) -> None:
    records, _ = probe(binary, tmp_path, lambda q: [reply(q)])
    frame = frame_of(records)
    assert len(frame) >= 10 and frame["recv_ns"].isna().all() and frame["status"].isna().all()
    counts = stats(records)
    assert counts["bad"] == counts["sent"] == len(frame)
    assert counts["failed"] == counts["replies"] == 0
