"""`up --merge-memory` for real: the lab's daemons offer their memory to the kernel's
same-page merging, ksmd merges their like pages, and the machine's KSM settings come back
when the lab goes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.backend import labs, memmerge
from lab.backend.names import state_root
from tests.conftest import TOPOLOGIES, require_root
from tests.integration.labfixture import assert_lab_gone, unique_lab_name

pytestmark = [pytest.mark.integration]
MERGE_WAIT_S = 60.0


def ksm_settings() -> dict[str, str]:
    return {name: (memmerge.KSM / name).read_text().strip() for name in memmerge.SETTINGS}


def ksm_stat(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/ksm_stat").read_text().splitlines()
    return dict(line.replace(":", "").split(maxsplit=1) for line in lines)


def test_a_merging_lab_shares_its_daemons_pages_and_gives_ksm_back() -> None:
    require_root()
    before = ksm_settings()
    name = unique_lab_name("mm")
    try:
        result = labs.up(TOPOLOGIES / "two-sites-mini.yaml", name, lambda _m: None,
                         timeout_s=90, merge_memory=True)
        assert result.report.ready, result.report.explain()
        assert result.state.merge_memory
        assert ksm_settings() == {"run": "1", "pages_to_scan": str(memmerge.PAGES_TO_SCAN)}
        daemons = [p.pid for p in result.state.processes if p.kind in ("bgpd", "zebra")]
        assert daemons and all(ksm_stat(pid)["ksm_merge_any"] == "yes" for pid in daemons)
        deadline, merging = time.monotonic() + MERGE_WAIT_S, 0
        while time.monotonic() < deadline and merging == 0:
            time.sleep(1.0)
            merging = sum(int(ksm_stat(pid)["ksm_merging_pages"]) for pid in daemons)
        assert merging > 0, "ksmd merged none of the daemons' pages"
    finally:
        labs.down(name, force=True)
        assert_lab_gone(name)
    assert ksm_settings() == before
    assert not (state_root() / memmerge.RECORD).exists()
