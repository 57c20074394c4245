"""The UDP prober's record file and its loader, from synthetic files (no root, no prober)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.errors import ProbeError
from lab.measure.probe import DnsQuery, load_udp_probes, read_prober_file
from lab.measure.probe.udp import PROBE_COLUMNS

INTERVAL = 1_000_000
IDENT_A = {"site": "nyc", "cluster": "k1", "node": "n1", "pod": "p1", "service": "dns"}
IDENT_B = {"site": "ams", "cluster": "k2", "node": "n2", "pod": "p2", "service": "ntp"}


def tick_ns(seq: int) -> int:
    return 10_000_000 + seq * INTERVAL


def header(services: Iterable[str] = ("dns", "ntp"), flows: int = 2,
           rotate: bool = False) -> list[str]:
    names = list(services)
    version, rotation = (2, " 1") if rotate else (1, "")
    lines = [f"P {version} 77 {INTERVAL} {flows} 2000000000 {tick_ns(0)}{rotation}"]
    lines += [f"T {i} {name} 192.0.2.53 {53 + i}" for i, name in enumerate(names)]
    lines += [f"F {t} {f} {40000 + 10 * t + f}" for t in range(len(names)) for f in range(flows)]
    return lines


def write(path: Path, lines: Iterable[str], tail: str = "") -> Path:
    path.write_text("".join(f"{line}\n" for line in lines) + tail)
    return path


def ident(i: int, value: dict[str, str]) -> str:
    return f"I {i} {json.dumps(value, separators=(',', ':'))}"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """3 ticks x 2 services x 2 flows; some answered, one duplicated, one failed send."""
    lines = [*header(), "S 0 " + str(tick_ns(0)), ident(0, IDENT_A),
             "R 0 0 0 0 150000 0", "R 0 1 0 3000 160000 0",
             "S 1 " + str(tick_ns(1)), ident(1, IDENT_B),
             "R 1 0 1 6000 170000 1", "R 1 0 1 6000 999999 1",  # duplicate: first one counts
             "E 1 1 1 101",
             "K 12000000 2",
             "S 2 " + str(tick_ns(2)),
             "R 0 0 2 0 180000 -1",
             "X 20000000 3 11 1 4 1 0 0 2"]
    return write(tmp_path / "c1.txt", lines)


def test_file_parts_are_read(sample: Path) -> None:
    records = read_prober_file(sample)
    assert records.header.interval_ns == INTERVAL and records.header.flows == 2
    assert [(t.service, t.ip, t.port) for t in records.targets] == \
        [("dns", "192.0.2.53", 53), ("ntp", "192.0.2.53", 54)]
    assert records.ports == {(0, 0): 40000, (0, 1): 40001, (1, 0): 40010, (1, 1): 40011}
    assert records.ticks[:, 0].tolist() == [0, 1, 2]
    assert records.errors.tolist() == [[1, 1, 1, 101]]
    assert records.skipped_slots == 2
    assert json.loads(records.identities[1]) == IDENT_B
    assert records.stats is not None and records.stats["replies"] == 4
    assert records.stats["failed"] == 0 and records.failures.shape == (0, 7)
    assert all(t.dns is None for t in records.targets)


def test_every_sent_probe_is_one_row_with_the_run_format_types(sample: Path) -> None:
    frame = load_udp_probes(sample, "c1", 3)
    assert list(frame.columns) == list(PROBE_COLUMNS)
    assert len(frame) == 3 * 2 * 2  # skipped slots are not rows
    expected = {"trial": "int16", "flow": "int16", "seq": "int64", "send_ns": "int64",
                "recv_ns": "Int64", "rtt_ms": "float64", "status": "Int32"}
    assert {k: str(frame[k].dtype) for k in expected} == expected
    assert frame["status"].isna().all()  # echo targets have none
    assert set(frame["trial"]) == {3} and set(frame["client"]) == {"c1"}
    assert frame.groupby(["service", "flow"]).size().tolist() == [3, 3, 3, 3]


def test_answered_probes_carry_times_and_identity(sample: Path) -> None:
    frame = load_udp_probes(sample, "c1", 0).set_index(["service", "flow", "seq"])
    row = frame.loc[("dns", 1, 0)]
    assert row["send_ns"] == tick_ns(0) + 3000
    assert row["recv_ns"] == tick_ns(0) + 3000 + 160000
    assert row["rtt_ms"] == pytest.approx(0.16)
    assert (row["site"], row["cluster"], row["node"], row["pod"]) == ("nyc", "k1", "n1", "p1")
    dup = frame.loc[("ntp", 0, 1)]
    assert dup["rtt_ms"] == pytest.approx(0.17) and dup["site"] == "ams"


def test_lost_probes_have_nulls_and_the_tick_time(sample: Path) -> None:
    frame = load_udp_probes(sample, "c1", 0).set_index(["service", "flow", "seq"])
    lost = frame.loc[("ntp", 1, 1)]  # its send failed: counted as lost
    assert lost["send_ns"] == tick_ns(1)
    assert pd.isna(lost["recv_ns"]) and np.isnan(lost["rtt_ms"])
    assert lost["site"] is None and lost["pod"] is None
    assert int(frame["recv_ns"].isna().sum()) == 12 - 4


def test_a_reply_without_identity_is_received_but_anonymous(sample: Path) -> None:
    row = load_udp_probes(sample, "c1", 0).set_index(["service", "flow", "seq"]).loc[
        ("dns", 0, 2)]
    assert row["recv_ns"] == tick_ns(2) + 180000 and row["site"] is None


def test_unfinished_last_line_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", [*header(flows=1), f"S 0 {tick_ns(0)}",
                                      "R 0 0 0 0 100 -1"], tail="R 1 0 0 0 1")
    frame = load_udp_probes(path, "c", 0)
    assert len(frame) == 2 and frame["recv_ns"].notna().tolist() == [True, False]


def test_replies_to_unknown_probes_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", [*header(["dns"], flows=1), f"S 0 {tick_ns(0)}",
                                      "R 0 0 5 0 100 -1", "R 3 0 0 0 100 -1",
                                      "R 0 7 0 0 100 -1"])
    frame = load_udp_probes(path, "c", 0)
    assert len(frame) == 1 and frame["recv_ns"].isna().all()


def test_an_identity_that_is_not_json_gives_nulls(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", [*header(["dns"], flows=1), f"S 0 {tick_ns(0)}",
                                      "I 0 hello there", "R 0 0 0 0 100 0"])
    frame = load_udp_probes(path, "c", 0)
    assert frame["recv_ns"].notna().all() and frame["site"].isna().all()


def test_a_format_1_file_is_every_flow_at_every_tick(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", [*header(["dns"]), f"S 0 {tick_ns(0)}",
                                      f"S 1 {tick_ns(1)}", "R 0 1 0 2000 100000 -1"])
    records = read_prober_file(path)
    assert records.header.rotate is False and records.header.flows == 2
    frame = load_udp_probes(path, "c", 0)
    assert list(zip(frame["flow"], frame["seq"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert frame["recv_ns"].notna().tolist() == [False, False, True, False]
    assert frame["send_ns"].tolist() == [tick_ns(0), tick_ns(1), tick_ns(0) + 2000, tick_ns(1)]


@pytest.fixture
def rotating(tmp_path: Path) -> Path:
    """2 services x 3 flows in turn, 5 ticks (flows 0 1 2 0 1); answers to probes never sent
    (a flow at another flow's tick) among them."""
    lines = [*header(flows=3, rotate=True), ident(0, IDENT_A),
             f"S 0 {tick_ns(0)}", "R 0 0 0 0 150000 0", "R 1 0 0 2000 160000 0",
             "R 0 1 0 0 999 0",  # flow 1 did not probe at seq 0
             f"S 1 {tick_ns(1)}", "R 0 1 1 0 170000 0",
             f"S 2 {tick_ns(2)}", "E 1 2 2 101", "R 1 0 2 0 999 0",  # not flow 0's tick
             f"S 3 {tick_ns(3)}", "R 1 0 3 0 180000 -1",
             f"S 4 {tick_ns(4)}", "R 0 1 4 3000 190000 0", "R 1 2 4 0 999 0",
             "X 20000000 5 10 1 5 0 0 3 0"]
    return write(tmp_path / "rot.txt", lines)


def test_a_rotating_file_has_its_header(rotating: Path) -> None:
    records = read_prober_file(rotating)
    assert records.header.rotate is True and records.header.flows == 3
    assert records.header.interval_ns == INTERVAL and records.header.start_ns == tick_ns(0)
    assert len(records.ports) == 6 and records.ticks[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_a_rotating_file_is_one_row_per_target_and_tick(rotating: Path) -> None:
    frame = load_udp_probes(rotating, "c", 0)
    assert list(frame.columns) == list(PROBE_COLUMNS)
    assert len(frame) == 5 * 2  # ticks x targets, not x flows
    expected = {"flow": "int16", "seq": "int64", "send_ns": "int64", "recv_ns": "Int64"}
    assert {k: str(frame[k].dtype) for k in expected} == expected
    assert (frame["flow"] == frame["seq"] % 3).all()
    order = [(0, 0), (0, 3), (1, 1), (1, 4), (2, 2)]  # by flow, then seq
    for service in ("dns", "ntp"):
        rows = frame.loc[frame["service"] == service]
        assert list(zip(rows["flow"], rows["seq"], strict=True)) == order
    assert frame.index.tolist() == list(range(10))


def test_rotating_answers_go_to_their_flow_and_others_are_ignored(rotating: Path) -> None:
    frame = load_udp_probes(rotating, "c", 0).set_index(["service", "seq"])
    answered = {key for key, recv in frame["recv_ns"].items() if not pd.isna(recv)}
    assert answered == {("dns", 0), ("dns", 1), ("dns", 4), ("ntp", 0), ("ntp", 3)}
    assert frame.loc[("dns", 4), "send_ns"] == tick_ns(4) + 3000
    assert frame.loc[("dns", 4), "rtt_ms"] == pytest.approx(0.19)
    assert frame.loc[("dns", 0), "site"] == "nyc" and frame.loc[("ntp", 3), "site"] is None
    lost = frame.loc[("ntp", 2)]  # its send failed; the answer for flow 0 was not its
    assert lost["flow"] == 2 and pd.isna(lost["recv_ns"]) and lost["send_ns"] == tick_ns(2)
    assert frame["rtt_ms"].max() < 0.5  # no 999 ns answer to an unsent probe was taken


@pytest.fixture
def dns_sample(tmp_path: Path) -> Path:
    """dns (NSID) and ntp (echo), 1 flow, 3 ticks: dns answered, failed (SERVFAIL, then
    malformed), ntp answered once."""
    lines = [*header(flows=1), "D 0 28 nsid www.example.test.",
             f"S 0 {tick_ns(0)}", "I 0 pod-a", "R 0 0 0 2000 150000 0",
             ident(1, IDENT_B), "R 1 0 0 0 160000 1",
             f"S 1 {tick_ns(1)}", "N 0 0 1 4000 170000 2 0",
             f"S 2 {tick_ns(2)}", "N 0 0 2 0 180000 -1 -1",
             "X 20000000 3 6 0 2 0 0 0 0 2"]
    return write(tmp_path / "dns.txt", lines)


def test_dns_targets_and_failed_answers_are_read(dns_sample: Path) -> None:
    records = read_prober_file(dns_sample)
    assert records.targets[0].dns == DnsQuery("www.example.test.", 28, "nsid")
    assert records.targets[1].dns is None
    assert records.failures.tolist() == [[0, 0, 1, 4000, 170000, 2, 0],
                                         [0, 0, 2, 0, 180000, -1, -1]]
    assert records.stats is not None and records.stats["failed"] == 2


def test_dns_rows_carry_the_answer_status(dns_sample: Path) -> None:
    frame = load_udp_probes(dns_sample, "c", 0, {"pod-a": IDENT_A}).set_index(
        ["service", "flow", "seq"])
    good, servfail, malformed = (frame.loc[("dns", 0, s)] for s in range(3))
    assert good["status"] == 0 and good["rtt_ms"] == pytest.approx(0.15)
    assert (good["site"], good["pod"]) == ("nyc", "p1")  # the NSID, through instances
    assert servfail["status"] == 2 and pd.isna(servfail["recv_ns"])
    assert np.isnan(servfail["rtt_ms"]) and servfail["pod"] is None
    assert servfail["send_ns"] == tick_ns(1) + 4000
    assert malformed["status"] == -1 and pd.isna(malformed["recv_ns"])
    echo = frame.xs("ntp")
    assert echo["status"].isna().all() and echo.loc[(0, 0), "site"] == "ams"  # JSON as before


def test_a_text_identity_outside_instances_names_nobody(dns_sample: Path) -> None:
    frame = load_udp_probes(dns_sample, "c", 0, {"pod-z": IDENT_A})
    answered = frame.loc[frame["service"] == "dns"].dropna(subset=["rtt_ms"])
    assert len(answered) == 1 and answered["site"].isna().all()


def test_dns_rows_round_trip_through_parquet(dns_sample: Path, tmp_path: Path) -> None:
    frame = load_udp_probes(dns_sample, "c", 0)
    frame.to_parquet(tmp_path / "probes.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "probes.parquet"), frame)


def test_a_file_with_no_ticks_gives_an_empty_typed_frame(tmp_path: Path) -> None:
    frame = load_udp_probes(write(tmp_path / "x.txt", header()), "c", 0)
    assert frame.empty and list(frame.columns) == list(PROBE_COLUMNS)
    assert str(frame["recv_ns"].dtype) == "Int64"


def test_the_frame_round_trips_through_parquet(sample: Path, tmp_path: Path) -> None:
    frame = load_udp_probes(sample, "c1", 0)
    frame.to_parquet(tmp_path / "probes.parquet")
    back = pd.read_parquet(tmp_path / "probes.parquet")
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize(("lines", "message"), [
    ([], "no header"),
    (["P 3 1 1000 1 2000 0"], "record format 3, this reader knows 1, 2"),
    (["P 1 1 1000"], "malformed header"),
    (["P 1 1 1000 1 2000 0 1"], "malformed header"),
    (["P 2 1 1000 1 2000 0"], "malformed header"),
    (["P 2 1 1000 1 2000 0 2"], "malformed header"),
    (["P 2 1 1000 0 2000 0 1"], "malformed header"),
    (["P 1 1 1000 1 2000 0", "T 0 dns"], "malformed target"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "S 0 x"], "malformed 'S'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "R 0 0 1"], "malformed 'R'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "N 0 0 1 0 5 2"], "malformed 'N'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "X 1 2 3"], "malformed 'X'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "D 0 1 nsid a..b"], "malformed DNS"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "D 0 1 bind a.b"], "malformed DNS"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "D 1 1 nsid a.b"], "of no target"),
], ids=["empty", "format", "header", "rotate-in-1", "no-rotate-in-2", "rotate-2", "no-flows",
        "target", "tick", "reply", "failure", "stats", "dns-name", "dns-identity", "dns-target"])
def test_bad_files_are_refused(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        load_udp_probes(write(tmp_path / "bad.txt", lines), "c", 0)


def test_a_missing_file_is_a_probe_error(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="cannot read"):
        read_prober_file(tmp_path / "absent.txt")


@settings(max_examples=60, deadline=None)
@given(ticks=st.integers(0, 40), flows=st.integers(1, 3), rotate=st.booleans(),
       replies=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 45),
                                  st.integers(0, 5000), st.integers(1, 10**7)), max_size=80))
def test_rows_and_losses_match_the_records(tmp_path_factory: pytest.TempPathFactory,
                                           ticks: int, flows: int, rotate: bool,
                                           replies: list[tuple[int, int, int, int, int]]) -> None:
    lines = [*header(flows=flows, rotate=rotate), *(f"S {s} {tick_ns(s)}" for s in range(ticks))]
    lines += [f"R {t} {f} {s} {off} {rtt} -1" for t, f, s, off, rtt in replies]
    path = write(tmp_path_factory.mktemp("p") / "x.txt", lines)
    frame = load_udp_probes(path, "c", 0)
    assert len(frame) == ticks * 2 * (1 if rotate else flows)
    valid = {(t, f, s) for t, f, s, _, _ in replies
             if f < flows and s < ticks and (not rotate or f == s % flows)}
    assert int(frame["recv_ns"].notna().sum()) == len(valid)
    got = frame.dropna(subset=["rtt_ms"])
    assert {(["dns", "ntp"].index(v), f, s) for v, f, s in
            zip(got["service"], got["flow"], got["seq"], strict=True)} == valid
    answered = frame.dropna(subset=["rtt_ms"])
    assert (answered["rtt_ms"] > 0).all()
    assert (frame["recv_ns"].isna() == frame["rtt_ms"].isna()).all()
