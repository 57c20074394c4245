"""Dual-stack runs: every figure per family, in summary.json, the tables, the lanes and the
catchment. The run is a sample run whose probes are doubled into an IPv6 family in which
us-c1 lands in Amsterdam and the node-crash costs nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import load_run
from analysis.catchment import catchment_table
from analysis.lanes import lane_groups, lane_index
from analysis.metrics import client_table
from analysis.tables import compact_client_table
from lab.measure.metrics.budgets import evaluate
from lab.measure.metrics.summary import summarize_run
from tests.unit.test_analysis_data import SAMPLE_BFD


@pytest.fixture(scope="module")
def dual_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dual") / SAMPLE_BFD.name
    shutil.copytree(SAMPLE_BFD, out)
    v4 = pq.read_table(SAMPLE_BFD / "probes.parquet").to_pandas()
    v6 = v4.copy()
    v6["recv_ns"] = v6["send_ns"] + 30_000_000  # answered, 30 ms, all along
    v6["rtt_ms"] = 30.0
    us = v6["client"] == "us-c1"
    v6.loc[us, "site"], v6.loc[us, "node"] = "ams", "ams-k8s-n1"
    v6.loc[~us, ["site", "node"]] = v4.loc[~us, ["site", "node"]].fillna("nyc").to_numpy()
    both = pd.concat([v4.assign(family="ipv4"), v6.assign(family="ipv6")], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(both, preserve_index=False), out / "probes.parquet")
    return out


def test_client_rows_are_per_family(dual_run: Path) -> None:
    table = client_table(load_run(dual_run), phases=("fault",))
    table = table[table["service"] == "dns"]
    by_family = dict(list(table.groupby("family")))
    assert set(by_family) == {"ipv4", "ipv6"}
    v4 = by_family["ipv4"].set_index("client")
    v6 = by_family["ipv6"].set_index("client")
    assert v4.loc["us-c1", "outage_ms"] > 500  # the crash hits IPv4 (the sample's)
    assert v6.loc["us-c1", "outage_ms"] == 0.0
    assert v6.loc["us-c1", "site_before"] == "ams" and v4.loc["us-c1", "site_before"] == "nyc"
    shown = compact_client_table(table.reset_index(drop=True))
    assert {"dns", "dns (IPv6)"} <= set(shown["service"])


def test_summary_and_budgets_are_per_family(dual_run: Path) -> None:
    run = load_run(dual_run)
    summary = summarize_run(scenario="s", complete=True, probes=run.probes,
                            routes=run.routes, events=list(run.records),
                            interval_ms=run.interval_ms,
                            trial_bounds=[(0, *run.trial_bounds(0))])
    rows = summary["trials"][0]["events"][0]["clients"]
    assert {(r["client"], r["family"]) for r in rows} >= {("us-c1", "ipv4"), ("us-c1", "ipv6")}
    assert {r["family"] for r in summary["aggregate"]} == {"ipv4", "ipv6"}
    verdicts = evaluate([{"client": "us-c1", "family": "ipv6", "outage_ms": "== 0",
                          "site_after": "ams"},
                         {"client": "us-c1", "family": "ipv4", "outage_ms": "== 0"}], summary)
    assert [v["pass"] for v in verdicts] == [True, True, False]
    assert all(v["family"] == ("ipv6" if i < 2 else "ipv4") for i, v in enumerate(verdicts))
    json.dumps(summary)


def test_lanes_and_catchment_show_the_families_apart(dual_run: Path) -> None:
    run = load_run(dual_run)
    assert run.families == ["ipv4", "ipv6"]
    _, rows = lane_index(run.trial_probes(0))
    labels = {service for _, service, _, _ in lane_groups(rows)}
    assert labels == {"dns", "dns (IPv6)"}
    table = catchment_table(run, 0)
    us = table[(table["client"] == "us-c1") & (table["phase"] == table["phase"].iloc[0])]
    assert dict(zip(us["family"], us["ams"], strict=True)) == {"ipv4": 0.0, "ipv6": 1.0}


def test_the_report_puts_the_families_side_by_side(dual_run: Path) -> None:
    from analysis.report import render_report
    from analysis.tables import families_side_by_side

    run = load_run(dual_run)
    table = families_side_by_side(client_table(run, phases=("fault",)))
    us = table[(table["client"] == "us-c1") & (table["service"] == "dns")].iloc[0]
    assert us["site IPv4"] == "nyc" and us["site IPv6"] == "ams"
    assert us["outage IPv6 (ms)"] == "0.0" and float(us["outage IPv4 (ms)"]) > 500
    html = render_report([run])
    assert "IPv4 and IPv6 side by side" in html and "RTT before and after (IPv6)" in html
    assert families_side_by_side(client_table(load_run(SAMPLE_BFD))).empty
