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


def header(services: Iterable[str] = ("dns", "ntp"), flows: int = 2) -> list[str]:
    names = list(services)
    lines = [f"P 1 77 {INTERVAL} {flows} 2000000000 {tick_ns(0)}"]
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
    (["P 2 1 1000 1 2000 0"], "record format 2"),
    (["P 1 1 1000"], "malformed header"),
    (["P 1 1 1000 1 2000 0", "T 0 dns"], "malformed target"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "S 0 x"], "malformed 'S'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "R 0 0 1"], "malformed 'R'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "N 0 0 1 0 5 2"], "malformed 'N'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "X 1 2 3"], "malformed 'X'"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "D 0 1 nsid a..b"], "malformed DNS"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "D 0 1 bind a.b"], "malformed DNS"),
    (["P 1 1 1000 1 2000 0", "T 0 dns 192.0.2.1 53", "D 1 1 nsid a.b"], "of no target"),
], ids=["empty", "format", "header", "target", "tick", "reply", "failure", "stats",
        "dns-name", "dns-identity", "dns-target"])
def test_bad_files_are_refused(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        load_udp_probes(write(tmp_path / "bad.txt", lines), "c", 0)


def test_a_missing_file_is_a_probe_error(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="cannot read"):
        read_prober_file(tmp_path / "absent.txt")


@settings(max_examples=60, deadline=None)
@given(ticks=st.integers(0, 40), flows=st.integers(1, 3),
       replies=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 45),
                                  st.integers(0, 5000), st.integers(1, 10**7)), max_size=80))
def test_rows_and_losses_match_the_records(tmp_path_factory: pytest.TempPathFactory,
                                           ticks: int, flows: int,
                                           replies: list[tuple[int, int, int, int, int]]) -> None:
    lines = [*header(flows=flows), *(f"S {s} {tick_ns(s)}" for s in range(ticks))]
    lines += [f"R {t} {f} {s} {off} {rtt} -1" for t, f, s, off, rtt in replies]
    path = write(tmp_path_factory.mktemp("p") / "x.txt", lines)
    frame = load_udp_probes(path, "c", 0)
    assert len(frame) == ticks * 2 * flows
    valid = {(t, f, s) for t, f, s, _, _ in replies if f < flows and s < ticks}
    assert int(frame["recv_ns"].notna().sum()) == len(valid)
    answered = frame.dropna(subset=["rtt_ms"])
    assert (answered["rtt_ms"] > 0).all()
    assert (frame["recv_ns"].isna() == frame["rtt_ms"].isna()).all()
