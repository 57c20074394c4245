"""Fixtures for tests that build real labs: unique names, and removal even on failure."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.backend import labs
from lab.backend.inspect import zebra_missing_addresses
from lab.backend.netns.names import lab_namespaces
from lab.backend.processes import tagged_pids


def unique_lab_name(prefix: str = "it") -> str:
    return f"{prefix}-{os.getpid() % 100000}-{secrets.token_hex(2)}"


@contextmanager
def running_lab(topology: Path, prefix: str = "it",
                timeout_s: float = 90.0) -> Iterator[labs.UpResult]:
    name = unique_lab_name(prefix)
    try:
        result = labs.up(topology, name, lambda _m: None, timeout_s=timeout_s)
        assert result.report.ready, result.report.explain()  # names the evidence folder
        assert zebra_missing_addresses(result.backend, result.state, result.plan) == {}
        yield result
    finally:
        labs.down(name, force=True)
        assert lab_namespaces(name) == [], "namespaces left behind"
        assert tagged_pids(name) == [], "processes left behind"


def neighbour_entries(lab: str) -> dict[str, list[dict[str, Any]]]:
    """Namespace -> its neighbour (ARP) entries, as `ip -j neigh show` gives them."""
    return {ns: json.loads(subprocess.run(["ip", "-j", "-n", ns, "neigh", "show"],
                                          capture_output=True, text=True, check=True).stdout)
            for ns in lab_namespaces(lab)}


def assert_only_planned_neighbours(result: labs.UpResult) -> None:
    """Every neighbour entry of the lab is one of the permanent ones it installs: one per
    link end and two per pod (lab.backend.netns.netspec), none learnt by asking."""
    entries = neighbour_entries(result.state.lab)
    for ns, found in entries.items():
        assert all(e.get("state") == ["PERMANENT"] for e in found), (ns, found)
    plan = result.plan
    assert sum(map(len, entries.values())) == (sum(len(n.interfaces) for n in plan.nodes)
                                               + 2 * len(plan.pods()))
