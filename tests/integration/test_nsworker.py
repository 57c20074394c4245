"""The netlink worker names each namespace once it is complete, and `up` starts a router's
zebra only then (FRR 8.4's zebra can lose an address added while it runs;
lab.backend.netns.nsworker). Root needed; namespaces carry a unique lab name and are removed
by the lab's own clean-up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.backend import labs
from lab.backend.netns.names import netns_name
from lab.backend.netns.netspec import AddressSpec, NetworkSpec, VethSpec
from lab.proc import run
from tests.conftest import REPO, require_root, require_tool
from tests.integration.labfixture import unique_lab_name

pytestmark = [pytest.mark.integration]


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    require_root()
    require_tool("ip")


def _addresses(namespace: str) -> str:
    return run(["ip", "-n", namespace, "-br", "address", "show"], timeout=10).stdout


def test_a_namespace_is_reported_only_once_complete(tmp_path: Path) -> None:
    lab = unique_lab_name("prg")
    names = [netns_name(lab, n) for n in ("a", "b", "c")]
    spec = NetworkSpec(veths=[VethSpec(names[0], "e0", names[1], "e0"),
                              VethSpec(names[1], "e1", names[2], "e0")],
                       addresses=[AddressSpec(names[0], "e0", "10.9.0.0/31"),
                                  AddressSpec(names[1], "e0", "10.9.0.1/31"),
                                  AddressSpec(names[1], "e1", "10.9.1.0/31"),
                                  AddressSpec(names[2], "e0", "10.9.1.1/31")])
    spec_path, progress = tmp_path / "network.json", tmp_path / "network.progress"
    spec_path.write_text(json.dumps(spec.to_dict()))
    progress.write_text("")
    wanted = {names[0]: ["10.9.0.0/31"], names[1]: ["10.9.0.1/31", "10.9.1.0/31"],
              names[2]: ["10.9.1.1/31"]}
    seen: dict[str, str] = {}
    try:
        run(["ip", "-batch", "-"], input_text="".join(f"netns add {n}\n" for n in names),
            timeout=30)
        worker = subprocess.Popen([sys.executable, "-m", "lab.backend.netns.nsworker",
                                   str(spec_path), str(progress)], cwd=REPO, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while worker.poll() is None and time.monotonic() < deadline:
            for ns in progress.read_text().split():
                seen.setdefault(ns, _addresses(ns))  # what it has the moment it is named
            time.sleep(0.001)
        out, errors = worker.communicate(timeout=60)
        assert json.loads(out.strip().splitlines()[-1]) == {"ok": True}, errors
    finally:
        labs.down(lab, force=True)
    assert sorted(progress.read_text().split()) == sorted(names)
    for ns, addresses in wanted.items():
        if ns in seen:  # named while the worker ran: complete already
            assert all(a in seen[ns] for a in addresses), (ns, seen[ns])
    assert seen, "no namespace was seen before the worker ended"
