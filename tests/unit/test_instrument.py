"""Self-monitoring: the instrument's counters (from /proc, the emulator and the probers'
records), the summary's ``instrument`` section and the limits that make a trial invalid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lab.impair.control import decode_counters
from lab.measure.metrics.instrument import LIMITS, instrument_problems, instrument_section
from lab.measure.probe.records import ProberFile, ProberHeader
from lab.run import instrument
from lab.run.instrument import Snapshot, prober_timing, trial_fields, udp_rcvbuf_errors

MS = 1_000_000

SNMP = """Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
Udp: 100 0 7 100 7 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
UdpLite: 0 0 0 0 99 0 0
"""
SNMP6 = "Udp6InDatagrams                 \t50\nUdp6RcvbufErrors                \t3\n"


def fake_proc(tmp_path: Path, *, stat: str, pressure: str | None = None,
              pids: dict[int, tuple[str, str]] | None = None) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "stat").write_text(stat)
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "softnet_stat").write_text(
        "0634b556 00000010 000000c3 00000000\n06717c6e 00000001 00000010 00000000\n")
    if pressure is not None:
        (tmp_path / "pressure").mkdir()
        (tmp_path / "pressure" / "cpu").write_text(pressure)
    for pid, (snmp, snmp6) in (pids or {}).items():
        net = tmp_path / str(pid) / "net"
        net.mkdir(parents=True)
        (net / "snmp").write_text(snmp)
        (net / "snmp6").write_text(snmp6)
    return tmp_path


def test_cpu_shares_pressure_and_socket_drops_from_proc(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, stat="cpu  100 10 50 800 20 5 15 40 0 0\ncpu0 1 2 3\n",
                     pressure="some avg10=1.00 avg60=0.50 avg300=0.1 total=123456\n"
                              "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
                     pids={42: (SNMP, SNMP6)})
    assert instrument._cpu_jiffies(proc) == (180, 40, 1040)  # busy 100+10+50+5+15
    assert instrument._softnet(proc) == (0x11, 0xc3 + 0x10)
    assert instrument._cpu_pressure_us(proc) == 123456
    assert udp_rcvbuf_errors(42, proc) == 10  # UDP 7 + UDP6 3, not UDP-Lite's
    assert udp_rcvbuf_errors(43, proc) is None  # gone
    assert instrument._cpu_pressure_us(fake_proc(tmp_path / "old", stat="cpu 1")) is None


def test_trial_fields_are_the_deltas(tmp_path: Path) -> None:
    counters = dict.fromkeys(instrument.EMULATOR_COUNTERS, 0)
    start = Snapshot((100, 10, 1000), 1_000, (3, 10), {**counters, "forwarded": 10},
                     {"prober": {"c1": 2, "c2": 0}, "server": {"p1": 5}})
    end = Snapshot((600, 30, 2000), 501_000, (5, 11),
                   {**counters, "forwarded": 1010, "late_2ms": 4},
                   {"prober": {"c1": 2, "c2": 3}, "server": {"p1": 9, "p2": 1}})
    fields = trial_fields(start, end, elapsed_ns=1_000_000_000)
    assert fields["host"] == {"cpu_busy": 0.5, "cpu_steal": 0.02, "cpu_pressure": 0.5,
                              "backlog_drops": 2, "softirq_squeezes": 1}
    assert fields["emulator"]["forwarded"] == 1000 and fields["emulator"]["late_2ms"] == 4
    assert fields["client_rcvbuf_errors"] == {"c2": 3}
    assert fields["pod_rcvbuf_errors"] == {"p1": 4}  # p2 appeared mid-trial: no baseline
    no_emulator = trial_fields(Snapshot((0, 0, 1), None, (0, 0), None),
                               Snapshot((1, 0, 2), None, (0, 0), None), elapsed_ns=5)
    assert no_emulator["emulator"] is None and no_emulator["host"]["cpu_pressure"] is None


def records(ticks_ns: list[int], skips: Sequence[tuple[int, int]] = (),
            interval_ns: int = MS, start_ns: int = 10 * MS) -> ProberFile:
    ticks = np.array([[seq, t] for seq, t in enumerate(ticks_ns)], dtype=np.int64)
    return ProberFile(header=ProberHeader(1, interval_ns, 1, 2_000 * MS, start_ns),
                      targets=(), ports={}, ticks=ticks.reshape(-1, 2),
                      skips=np.array(skips, dtype=np.int64).reshape(-1, 2))


def test_prober_lateness_is_measured_from_each_slot() -> None:
    start = 10 * MS
    on_time = [start + k * MS + 20_000 for k in range(100)]  # 20 us after each slot
    assert prober_timing(records(on_time)) == {"ticks": 100, "late_500us": 0,
                                               "skipped_slots": 0, "longest_stall_ms": 0.0,
                                               "longest_stall_at_ns": None}
    late = on_time[:50] + [start + k * MS + 700_000 for k in range(50, 60)] + on_time[60:]
    # a stall: slots 60-64 skipped, the tick of slot 65 went out 0.1 ms late
    stalled = [*late[:60], start + 65 * MS + 100_000, *on_time[66:]]
    timing = prober_timing(records(stalled, skips=[(start + 65 * MS, 5)]))
    assert timing == {"ticks": 95, "late_500us": 10, "skipped_slots": 5,
                      "longest_stall_ms": 6.0, "longest_stall_at_ns": start + 65 * MS}


def runner_event(trial: int = 0, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "t_ns": 5, "trial": trial, "source": "runner", "kind": "instrument",
        "host": {"cpu_busy": 0.4, "cpu_steal": 0.0, "cpu_pressure": 0.1},
        "emulator": {"forwarded": 100_000, "late_500us": 50, "late_2ms": 10, "late_10ms": 0,
                     "dropped_overrun": 0},
        "client_rcvbuf_errors": {}, "pod_rcvbuf_errors": {"nyc-k8s-n1-dns-0": 40}}
    return {**base, **fields}


def timing_event(client: str, trial: int = 0, **fields: Any) -> dict[str, Any]:
    return {"t_ns": 6, "trial": trial, "source": "prober", "kind": "timing", "client": client,
            "ticks": 10_000, "late_500us": 20, "skipped_slots": 0, "longest_stall_ms": 0.0,
            **fields}


def test_a_quiet_trial_is_summarised_without_problems() -> None:
    crash = {"t_ns": 2, "trial": 0, "source": "injector", "kind": "fault",
             "target": "nyc-k8s-n1"}
    http = {"t_ns": 6, "trial": 0, "source": "prober", "kind": "timing", "prober": "http",
            "service": "web", "ticks": 1_000, "late_2ms": 3, "skipped_slots": 2,
            "longest_stall_ms": 30.0, "longest_stall_at_ns": 5}
    events = [crash, runner_event(), timing_event("us-c1"),
              timing_event("eu-c1", longest_stall_ms=1.5), http, runner_event(trial=1),
              timing_event("us-c1", trial=1)]
    section = instrument_section(events, 0)
    assert section is not None
    assert section["probers"] == {"clients": 2, "http_probers": 1, "ticks": 21_000,
                                  "late_500us": 40, "late_2ms": 3, "skipped_slots": 2,
                                  "longest_stall_ms": 30.0}
    assert section["emulator"]["late_2ms"] == 10
    # the crashed node's pod filled its buffer: the fault's doing, reported only
    assert section["pod_rcvbuf_errors"] == {"nyc-k8s-n1-dns-0": 40}
    assert section["fault_targets"] == ["nyc-k8s-n1"]
    assert section["problems"] == []
    assert instrument_section([e for e in events if e["trial"] == 1], 0) is None


@pytest.mark.parametrize(("change", "words"), [
    ({"emulator": {"forwarded": 100_000, "late_10ms": 101}}, "more than 10 ms late"),
    ({"emulator": {"forwarded": 100_000, "dropped_overrun": 11}}, "lost 11 frames"),
    ({"emulator": {"forwarded": 100_000, "dropped_overrun": 1, "dropped_error": 2}},
     "lost 3 frames"),
    ({"client_rcvbuf_errors": {"us-c1": 1}}, "us-c1 1"),
    ({"host": {"backlog_drops": 3}}, "dropped 3 packets from its full receive backlog"),
    ({"pod_rcvbuf_errors": {"ams-k8s-n1-p2": 944}}, "pods no fault touched (ams-k8s-n1-p2 944)"),
])
def test_each_limit_makes_a_problem(change: dict[str, Any], words: str) -> None:
    change = {"pod_rcvbuf_errors": {}, **change}
    (problem,) = instrument_section([runner_event(**change)], 0)["problems"]  # type: ignore[index]
    assert words in problem


def test_prober_limits() -> None:
    ticks = 10_000
    skipped = instrument_section([timing_event("c", ticks=ticks - 1002, skipped_slots=1002)],
                                 0)
    assert skipped is not None
    assert skipped["problems"] == ["the probers skipped 1002 of 10000 probe slots (10.02%; "
                                   "limit 10%)"]
    stalled = instrument_section([timing_event("c", skipped_slots=260,
                                               longest_stall_ms=261.0)], 0)
    assert stalled is not None and "a prober stalled for 261 ms" in stalled["problems"][0]
    # late ticks and 2 ms-late frames are reported, never a reason by themselves
    late = instrument_section([timing_event("c", late_500us=ticks // 2)], 0)
    assert late is not None and late["problems"] == []
    at_limit = {"probers": {"ticks": ticks - 1000, "skipped_slots": 1000,
                            "longest_stall_ms": LIMITS["prober_stall_ms"]},
                "emulator": {"forwarded": 1000, "late_2ms": 900, "late_10ms": 1}}
    assert instrument_problems(at_limit) == []  # the limits themselves are allowed


def test_emulator_counters_of_an_older_emulator_read_as_zero_lateness() -> None:
    old = {"forwarded": 5, "forwarded_bytes": 500, "dropped_loss": 0, "dropped_blackhole": 0,
           "dropped_queue": 0, "dropped_error": 0, "dropped_overrun": 1, "in_queue": 0}
    counters = decode_counters(old)
    assert (counters.forwarded, counters.dropped_overrun, counters.late_2ms) == (5, 1, 0)
    assert decode_counters({**old, "late_2ms": 3}).late_2ms == 3


def _probe_rows(client: str, node: str, rtts: Sequence[float | None], start_ns: int,
                trial: int = 0) -> list[dict[str, Any]]:
    return [{"trial": trial, "client": client, "service": "dns", "family": "ipv4",
             "node": node if rtt is not None else None, "send_ns": start_ns + k * MS,
             "rtt_ms": rtt} for k, rtt in enumerate(rtts)]


def test_delay_fidelity_compares_the_rtt_before_the_first_fault_with_the_configured() -> None:
    paths = {"t_ns": 1, "trial": 0, "source": "runner", "kind": "paths",
             "expected_rtt_ms": {"us-c1": {"nyc-k8s-n1": 10.0}, "eu-c1": {"ams-k8s-n2": 8.0}}}
    fault = {"t_ns": 100 * MS, "trial": 0, "source": "injector", "kind": "fault"}
    rows = (_probe_rows("us-c1", "nyc-k8s-n1", [10.2, 10.4, None, 10.3], 0)
            # after the fault: not counted
            + _probe_rows("us-c1", "nyc-k8s-n1", [50.0] * 10, 100 * MS)
            + _probe_rows("eu-c1", "ams-k8s-n2", [7.9, 8.1, 7.9], 0)
            # a node the plan has no configured delay to: left out
            + _probe_rows("eu-c1", "sin-k8s-n1", [90.0], 5 * MS))
    section = instrument_section([paths, fault, runner_event()], 0, pd.DataFrame(rows))
    assert section is not None
    delay = section["delay"]
    assert delay["paths"] == [
        {"client": "eu-c1", "service": "dns", "family": "ipv4", "node": "ams-k8s-n2",
         "probes": 3, "rtt_ms": 7.9, "expected_rtt_ms": 8.0, "error_ms": -0.1},
        {"client": "us-c1", "service": "dns", "family": "ipv4", "node": "nyc-k8s-n1",
         "probes": 3, "rtt_ms": 10.3, "expected_rtt_ms": 10.0, "error_ms": 0.3}]
    assert delay["median_error_ms"] == 0.1 and delay["max_abs_error_ms"] == 0.3
    without_paths = instrument_section([runner_event()], 0, pd.DataFrame(rows))
    assert without_paths is not None and without_paths["delay"] is None


def test_sessions_that_go_down_before_any_fault_make_the_trial_invalid() -> None:
    def down(t_ns: int, router: str, peer: str, source: str = "bfd") -> dict[str, Any]:
        return {"t_ns": t_ns, "trial": 0, "source": source,
                "kind": "bfd_down" if source == "bfd" else "session_down",
                "router": router, "peer": peer}

    fault = {"t_ns": 100, "trial": 0, "source": "injector", "kind": "fault",
             "target": "nyc-k8s-n1"}
    after_the_fault = [fault, down(150, "nyc-l1", "nyc-k8s-n1"),
                       down(151, "nyc-l1", "nyc-k8s-n1", "bgp"), runner_event()]
    section = instrument_section(after_the_fault, 0)
    assert section is not None and section["sessions_down_before_fault"] == []
    assert section["problems"] == []
    before = instrument_section([down(50, "sin-l4", "sin-s1"), down(60, "ams-s1", "eu-west"),
                                 *after_the_fault], 0)
    assert before is not None
    assert before["sessions_down_before_fault"] == ["ams-s1-eu-west", "sin-l4-sin-s1"]
    assert before["problems"] == ["2 BGP/BFD sessions went down before any fault "
                                  "(ams-s1-eu-west, sin-l4-sin-s1): the routers' daemons did "
                                  "not keep their timers"]


def test_a_delay_error_beyond_the_limit_makes_the_trial_invalid() -> None:
    def section(errors: list[float]) -> dict[str, Any]:
        paths = [{"client": f"c{i}", "node": f"n{i}", "error_ms": e} for i, e in enumerate(errors)]
        return {"delay": {"paths": paths, "max_abs_error_ms": max(abs(e) for e in errors)}}

    assert instrument_problems(section([0.3, -LIMITS["delay_error_ms"]])) == []
    (problem,) = instrument_problems(section([0.3, -147.07, 12.0]))
    assert problem.startswith("round trips before the fault were up to 147.1 ms off the "
                              "configured ones (c1 -> n1) (limit 5 ms)")
    assert instrument_problems({"delay": None}) == []
    assert instrument_problems({"delay": {"paths": [], "max_abs_error_ms": None}}) == []
