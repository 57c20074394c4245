"""The netlink worker's gate: `up` starts the worker beside the routers' zebras, and the worker
must not touch a namespace before its zebra has started (FRR 8.4's zebra loses addresses
added while it starts; lab.backend.nsworker). Root needed; namespaces carry a unique lab name
and are removed by the lab's own clean-up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import labs
from lab.backend.names import netns_name
from lab.backend.netspec import AddressSpec, NetworkSpec, VethSpec
from lab.proc import run
from tests.conftest import REPO, require_root, require_tool
from tests.integration.labfixture import unique_lab_name

pytestmark = [pytest.mark.integration]
WORKER_IMPORT_S = 3.0  # far longer than the worker's start-up (about 0.8 s)


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    require_root()
    require_tool("ip")


def _links(namespace: str) -> str:
    return run(["ip", "-n", namespace, "-br", "address", "show"], timeout=10).stdout


@pytest.mark.parametrize("gated", ["a", "b"])
def test_the_worker_touches_no_namespace_before_its_zebra_started(tmp_path: Path,
                                                                 gated: str) -> None:
    """Namespace ``gated`` waits for its zebra; the veth from a to b touches both."""
    lab = unique_lab_name("gate")
    a, b = netns_name(lab, "a"), netns_name(lab, "b")
    gate = tmp_path / "zserv.api"  # stands for the zebra's API socket
    spec = NetworkSpec(veths=[VethSpec(a, "e0", b, "e0")],
                       addresses=[AddressSpec(a, "e0", "10.9.0.0/31")],
                       zebra_started={netns_name(lab, gated): str(gate)})
    spec_path = tmp_path / "network.json"
    spec_path.write_text(json.dumps(spec.to_dict()))
    worker = None
    try:
        run(["ip", "-batch", "-"], input_text=f"netns add {a}\nnetns add {b}\n", timeout=30)
        worker = subprocess.Popen([sys.executable, "-m", "lab.backend.nsworker", str(spec_path)],
                                  cwd=REPO, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        time.sleep(WORKER_IMPORT_S)  # a negative needs time: the worker must still wait
        assert worker.poll() is None, worker.communicate()
        assert "e0" not in _links(a) and "e0" not in _links(b)
        gate.touch()
        out, errors = worker.communicate(timeout=60)
        assert json.loads(out.strip().splitlines()[-1]) == {"ok": True}, errors
        assert "10.9.0.0/31" in _links(a)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        labs.down(lab, force=True)
