"""Many flows by default and the collateral figures, for real: scenarios/node-crash-bfd.yaml as
shipped (16 UDP flows per client and service probed in turn, 8 TCP flows) on the reference
lab. Every client row says how many of its flows the crashed node answered; those lose about
a second, the others are accounted for apart, and every broken TCP flow has a cause."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lab.backend import labs
from lab.run.runner import RunOptions, RunResult, run_scenario
from tests.conftest import SCENARIOS, TOPOLOGIES, require_root
from tests.integration.labfixture import running_lab
from tests.integration.quiet import on_a_quiet_machine

pytestmark = [pytest.mark.integration]
FLOWS, TCP_FLOWS = 16, 8  # lab.scenario.model.ProbeSettings' defaults


@pytest.fixture(scope="module")
def reference() -> Iterator[labs.UpResult]:
    require_root()
    with running_lab(TOPOLOGIES / "three-sites.yaml", "coll") as result:
        yield result


def _run(lab: labs.UpResult, tmp_path: Path) -> RunResult:
    def attempt(number: int) -> RunResult:
        result = run_scenario(RunOptions(SCENARIOS / "node-crash-bfd.yaml",
                                         name=lab.state.lab, keep_lab=True,
                                         runs_root=tmp_path / f"a{number}"), lambda _m: None)
        assert result.complete and result.summary["trials"][0]["valid"], result.summary
        return result

    return on_a_quiet_machine(attempt)


def test_a_default_node_crash_run_accounts_for_every_flow(reference: labs.UpResult,
                                                          tmp_path: Path) -> None:
    result = _run(reference, tmp_path)
    (event,) = result.summary["trials"][0]["events"]
    crashed = event["target"]
    dns = {c["client"]: c for c in event["clients"] if c["service"] == "dns"}
    assert sorted(dns) == ["ap-c1", "ap-c2", "eu-c1", "eu-c2", "us-c1", "us-c2"]
    on_target = 0
    for client, row in dns.items():
        collateral = row["collateral"]
        assert len(row["flows"]) == FLOWS and collateral["target_answers"] is True, row
        assert collateral["flows_on_target"] + collateral["flows_elsewhere"] == FLOWS
        mine = [f for f in row["flows"] if f["node_before"] == crashed]
        assert len(mine) == collateral["flows_on_target"], (client, mine)
        for flow in mine:  # BFD 300 ms x 3, then the leaf's withdrawal; 16 ms per flow
            assert 600 <= flow["outage_ms"] <= 1300, flow
            assert flow["resolution_ms"] == pytest.approx(16.0, abs=0.01), flow
        if not client.startswith("us-"):
            assert collateral["flows_on_target"] == 0 and collateral["lost"] == 0, row
        on_target += len(mine)
    assert on_target >= 1  # 32 US flows over New York's four nodes
    # probed in turn: each flow once every 16 ticks, one probe per client and tick
    probes = pd.read_parquet(result.run_dir / "probes.parquet")
    us = probes[(probes["client"] == "us-c1") & (probes["service"] == "dns")]
    assert us["flow"].nunique() == FLOWS
    assert ((us["seq"] % FLOWS) == us["flow"]).all()
    # TCP: 8 flows per client; each broken one says why
    web = [c for c in event["clients"] if c["service"] == "web"]
    assert all(c["collateral"]["tcp_broken"] <= TCP_FLOWS for c in web)
    causes = [t for c in web for t in c["collateral"]["tcp_flows"]]
    assert all(t["cause"] in ("target", "moved", "path loss") for t in causes), causes
    assert all((t["cause"] == "target") == (t["node_before"] == crashed) for t in causes
               if t["reason"] in ("reset", "eof")), causes
    assert result.summary["trials"][0]["instrument"]["probers"]["clients"] == 6
