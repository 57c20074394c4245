"""Convergence figures: the contract's definitions on hand-made runs, and agreement with the
summary.json written alongside the samples.

The hand-made lanes run 2 s past the last window they are measured in: probes sent in the
last reply timeout (2 s) before a flow's probes end are not judged (docs/run-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import (
    Run,
    aggregate_table,
    catchment_table,
    client_table,
    compact_client_table,
    compact_event_table,
    event_table,
    flow_table,
    load_run,
)
from tests.unit.test_analysis_data import (
    MS,
    SAMPLE_BFD,
    SAMPLE_HOLD,
    SAMPLE_ISOLATE,
    T0,
    S,
    injector,
    meta,
    route,
    runner,
    write_run,
)
from tests.unit.test_analysis_data import lane as data_lane

FAULT = T0 + 1000 * MS  # the fault instant of the hand-made runs (probe 1000 is sent then)
UNDO = T0 + 2000 * MS
PROBES = 5000  # one per ms: to 2 s (the reply timeout) past the undo's judged second
END = T0 + PROBES * MS


def lane(client: str, **kwargs: Any) -> pd.DataFrame:
    return data_lane(client, **{"count": PROBES, **kwargs})
ACTIONS = [runner("trial_start", T0), injector("fault", FAULT), injector("undo", UNDO),
           runner("trial_end", END)]


def _run(tmp_path: Path, lanes: list[pd.DataFrame], events: list[dict[str, Any]] | None = None,
         routes: list[dict[str, Any]] | None = None, **meta_overrides: Any) -> Run:
    root = write_run(tmp_path / "run", lanes, events if events is not None else ACTIONS,
                     routes or [], run_meta=meta(**meta_overrides))
    return load_run(root)


def _row(table: pd.DataFrame, phase: str = "fault", client: str = "c1",
         service: str = "dns", trial: int = 0) -> pd.Series:
    rows = table[(table["phase"] == phase) & (table["client"] == client)
                 & (table["service"] == service) & (table["trial"] == trial)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_outage_loss_and_rate_derived(tmp_path: Path) -> None:
    run = _run(tmp_path, [lane("c1", lost=range(1000, 1900))])
    row = _row(client_table(run))
    assert row["lost"] == 900 and row["loss_derived_ms"] == 900.0
    assert row["outage_ms"] == 900.0  # probe 1900, the first answer, was sent 900 ms after
    assert (row["rate_derived_ms"], row["loss_windows"]) == (900.0, 1)
    assert row["recovered"] and row["flows_hit"] == 1 and row["resolution_ms"] == 1.0
    assert row["site_before"] == row["site_after"] == "nyc" and pd.isna(row["flip_ns"])
    assert row["rtt_before_ms"] == row["rtt_after_ms"] == 10.0
    assert _row(client_table(run), phase="undo")["outage_ms"] == 0.0


def test_rate_derived_outage_runs_to_the_last_loss(tmp_path: Path) -> None:
    """RFC 6412's definition: one stray loss later in the window extends the rate-derived
    figure; the outage stays the longest loss window."""
    run = _run(tmp_path, [lane("c1", lost=[*range(1000, 1100), 1500])])
    row = _row(client_table(run))
    assert row["loss_derived_ms"] == 101.0
    assert row["rate_derived_ms"] == 501.0
    assert (row["outage_ms"], row["loss_windows"]) == (100.0, 2)


def test_outage_not_recovered_in_its_window(tmp_path: Path) -> None:
    run = _run(tmp_path, [lane("c1", lost=range(1000, 2000))])
    row = _row(client_table(run))
    assert not row["recovered"] and row["outage_ms"] == 1000.0
    assert compact_client_table(client_table(run, phases=("fault",)))["outage (ms)"][0] == (
        "\u2265 1000.0")


def test_worst_flow_per_client(tmp_path: Path) -> None:
    run = _run(tmp_path, [lane("c1", flow=0, lost=range(1000, 1100)),
                          lane("c1", flow=1, lost=range(1000, 1300)),
                          lane("c1", flow=2)])
    row = _row(client_table(run))
    assert (row["flows"], row["flows_hit"]) == (3, 2)
    assert row["lost"] == 300 and row["lost_total"] == 400
    assert row["outage_ms"] == 300.0 and row["loss_derived_ms"] == 300.0
    fault = run.fault_events[0]
    flows = flow_table(run, fault).set_index("flow")
    assert list(flows["lost"]) == [100, 300, 0]


def test_site_flip(tmp_path: Path) -> None:
    run = _run(tmp_path, [lane("c1", sites={1500: "ams"})])
    row = _row(client_table(run))
    assert (row["site_before"], row["site_after"]) == ("nyc", "ams")
    assert row["flip_ms"] == 500.0 and row["flip_ns"] == FAULT + 500 * MS
    assert row["outage_ms"] == 0.0


def test_tcp_broken_and_tcp_only_services(tmp_path: Path) -> None:
    tcp = [{"t_ns": FAULT + k * MS, "trial": 0, "source": "tcp", "kind": "flow_broken",
            "client": "c1", "service": "web", "flow": k, "reason": "reset"} for k in range(2)]
    tcp.append({"t_ns": UNDO + MS, "trial": 0, "source": "tcp", "kind": "flow_broken",
                "client": "c1", "service": "web", "flow": 0, "reason": "timeout"})
    run = _run(tmp_path, [lane("c1")], sorted([*ACTIONS, *tcp], key=lambda e: e["t_ns"]))
    table = client_table(run)
    assert _row(table, service="web")["tcp_broken"] == 2
    assert _row(table, service="web")["tcp_flows"] == 2 and _row(table)["tcp_flows"] == 0
    assert pd.isna(_row(table, service="web")["outage_ms"])  # no UDP probes for web
    assert _row(table, phase="undo", service="web")["tcp_broken"] == 1
    assert _row(table)["tcp_broken"] == 0


def test_next_action_closes_a_window(tmp_path: Path) -> None:
    events = [runner("trial_start", T0), injector("fault", FAULT),
              injector("fault", FAULT + 300 * MS, step=1, fault="link-down", target="a--b"),
              runner("trial_end", END)]
    run = _run(tmp_path, [lane("c1", lost=range(1000, 1500))], events)
    first, second = run.fault_events
    assert first.end_ns == second.t_ns
    table = client_table(run).set_index("step")
    assert not table.loc[0, "recovered"]  # still losing when step 1 started
    assert table.loc[0, "outage_ms"] == 300.0
    assert table.loc[1, "outage_ms"] == 200.0


def test_detection_and_control_plane(tmp_path: Path) -> None:
    events = [*ACTIONS[:2],
              {"t_ns": FAULT + 900 * MS, "trial": 0, "source": "bfd", "kind": "bfd_down",
               "router": "l1", "peer": "n1", "reason": "x"},
              {"t_ns": FAULT + 901 * MS, "trial": 0, "source": "bgp", "kind": "session_down",
               "router": "l1", "peer": "n1", "reason": "x"}, *ACTIONS[2:]]
    routes = [route(T0 - S, "l1", ["10.0.0.1"]), route(FAULT + 903 * MS, "l1", ["10.0.0.2"]),
              route(FAULT + 910 * MS, "s1", ["10.0.1.1", "10.0.1.2"])]
    run = _run(tmp_path, [lane("c1")], events, routes)
    row = event_table(run).iloc[0]
    assert row["detection_ms"] == 900.0 and row["detection_source"] == "bfd"
    assert (row["first_fib_ms"], row["last_fib_ms"], row["routers_changed"]) == (903.0, 910.0, 2)
    text = compact_event_table(event_table(run)).iloc[0]
    assert text["detection (ms)"] == "900.0 (bfd)"
    assert text["FIB changes (ms)"] == "903.0 \u2013 910.0 (2 routers)"


def test_aggregate_over_trials(tmp_path: Path) -> None:
    lanes, events = [], []
    for trial, lost in enumerate((100, 200, 300)):
        start = T0 + trial * 10 * S
        lanes.append(lane("c1", trial=trial, start_ns=start, lost=range(1000, 1000 + lost)))
        events += [runner("trial_start", start, trial),
                   injector("fault", start + 1000 * MS, trial=trial),
                   runner("trial_end", start + PROBES * MS, trial)]
    run = _run(tmp_path, lanes, events, trials=3)
    row = aggregate_table(run).iloc[0]
    assert row["n"] == 3 and row["median"] == 200.0 and row["iqr"] == 100.0
    assert row["p95"] == pytest.approx(290.0) and (row["min"], row["max"]) == (100.0, 300.0)


def test_catchment_shares(tmp_path: Path) -> None:
    run = _run(tmp_path, [lane("c1", sites={1500: "ams"}, lost=range(1000, 1100))])
    table = catchment_table(run).set_index("phase")
    assert list(table.index) == ["before", "during node-crash", "after node-crash"]
    assert table.loc["before", "nyc"] == 1.0
    during = table.loc["during node-crash"]
    assert (during["nyc"], during["ams"], during["lost"]) == (0.4, 0.5, 0.1)
    assert table.loc["after node-crash", "ams"] == 1.0
    shares = table[["ams", "nyc", "lost"]].sum(axis=1)
    assert (shares.round(9) == 1.0).all()


# ------------------------------------------------------------------ the samples' summaries

def _summary_rows(path: Path) -> list[tuple[str, int, dict[str, Any]]]:
    summary = json.loads((path / "summary.json").read_text())
    out = []
    for trial in summary["trials"]:
        for entry in trial["events"]:
            out += [("fault", trial["trial"], r) for r in entry["clients"]]
            out += [("undo", trial["trial"], r) for r in entry["reversion"]["clients"]]
    return out


FIELDS = ["outage_ms", "rate_derived_ms", "loss_derived_ms", "loss_windows", "lost",
          "rtt_before_ms", "rtt_after_ms"]


@pytest.mark.parametrize("sample", [SAMPLE_BFD, SAMPLE_HOLD, SAMPLE_ISOLATE],
                         ids=lambda p: p.name)
def test_agrees_with_summary(sample: Path) -> None:
    run = load_run(sample)
    table = client_table(run)
    for phase, trial, expected in _summary_rows(sample):
        row = _row(table, phase, expected["client"], expected["service"], trial)
        assert row["tcp_broken"] == expected["tcp_broken"]
        if expected.get("outage_ms") is None:  # a TCP-only service: no UDP figures
            assert pd.isna(row["outage_ms"])
            continue
        for name in FIELDS:
            assert row[name] == pytest.approx(expected[name], abs=1e-3), name
        assert (row["site_before"], row["site_after"]) == (expected["site_before"],
                                                           expected["site_after"])
        flip = None if pd.isna(row["flip_ns"]) else int(row["flip_ns"])
        assert flip == expected["flip_ns"]


@pytest.mark.parametrize("sample", [SAMPLE_BFD, SAMPLE_HOLD, SAMPLE_ISOLATE],
                         ids=lambda p: p.name)
def test_events_agree_with_summary(sample: Path) -> None:
    run = load_run(sample)
    events = event_table(run)
    faults = events[events["phase"] == "fault"].reset_index(drop=True)
    summary = json.loads((sample / "summary.json").read_text())
    entries = [e for t in summary["trials"] for e in t["events"]]
    assert len(entries) == len(faults)
    for entry, (_, row) in zip(entries, faults.iterrows(), strict=True):
        assert row["detection_ms"] == pytest.approx(entry["detection_ms"], abs=1e-3)
        assert row["detection_source"] == entry["detection_source"]
        plane = entry["control_plane"]
        assert row["first_fib_ms"] == pytest.approx(plane["first_fib_change_ms"], abs=1e-3)
        assert row["last_fib_ms"] == pytest.approx(plane["last_fib_change_ms"], abs=1e-3)
        assert row["routers_changed"] == len(plane["routers"])


def test_main_sample_story() -> None:
    """The main sample tells the story it was made for: ~0.9 s of loss for the us flows
    hashed to the crashed node, nothing elsewhere, no site change."""
    run = load_run(SAMPLE_BFD)
    faults = client_table(run, phases=("fault",))
    dns = faults[faults["service"] == "dns"].set_index("client")
    assert dns.loc[["us-c1", "us-c2"], "outage_ms"].between(840, 910).all()
    assert (dns.loc[["us-c1", "us-c2"], "flows_hit"] >= 1).all()
    assert (dns.loc[["eu-c1", "eu-c2", "ap-c1", "ap-c2"], "outage_ms"] == 0).all()
    assert (dns["site_before"] == dns["site_after"]).all()
    assert faults["tcp_broken"].sum() > 0
