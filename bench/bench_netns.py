"""The network layer alone, side by side with Mininet: build and tear down the same graph.

    sudo .venv/bin/python bench/bench_netns.py [--topology FILE] [--repeats 5]

The graph is a lab's shape from its plan: every node a namespace, every plan link a veth pair
with the plan's address on each end, every interface (and lo) up; no daemons, no bridges, no
sysctls. Built two ways, alternating repeat by repeat so load drifts hit both alike:

- ours, as lab/backend/netns/deploy.py does it: one ``ip -batch`` for the namespaces, then one
  ``python -m lab.backend.netns.nsworker`` applying a NetworkSpec over netlink (the worker's
  start-up is included: it is part of every `anylab up`); teardown is one ``ip -force -batch`` of
  ``netns del`` (the veths go with their namespaces), as lab/backend/netns/teardown.py does;
- Mininet (Debian's package, run by /usr/bin/python3 in bench/mininet_graph.py): ``addHost``
  per node (a shell in its own namespace), ``addLink`` per link with ``params{1,2}={"ip"}``,
  ``build()``; teardown is ``net.stop()``. Only the API calls are timed (not the interpreter
  start or ``import mininet``).

Prints JSON: medians (and IQR) of ``netns_build_s``, ``netns_teardown_s``, ``mininet_build_s``,
``mininet_teardown_s``, with every repeat.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import pipeline  # noqa: E402
from lab.backend.netns.names import lab_namespaces, netns_name  # noqa: E402
from lab.backend.netns.netspec import AddressSpec, NetworkSpec, VethSpec  # noqa: E402
from lab.proc import run  # noqa: E402

MININET_PYTHON = "/usr/bin/python3"
MININET_SCRIPT = Path(__file__).resolve().parent / "mininet_graph.py"
SETTLE_S = 1.0  # namespace destruction finishes asynchronously in the kernel


def plan_graph(topology: Path) -> dict[str, Any]:
    """Hosts and links of a topology's plan: [a, a_ifname, a_cidr, b, b_ifname, b_cidr]."""
    plan = pipeline.plan(topology)
    links = [[link.a.node, link.a.ifname, str(link.a.address),
              link.b.node, link.b.ifname, str(link.b.address)] for link in plan.links]
    return {"hosts": [node.name for node in plan.nodes], "links": links}


def network_spec(lab: str, graph: dict[str, Any]) -> NetworkSpec:
    spec = NetworkSpec(sysctls={netns_name(lab, h): {} for h in graph["hosts"]})
    for a, a_if, a_cidr, b, b_if, b_cidr in graph["links"]:
        a_ns, b_ns = netns_name(lab, a), netns_name(lab, b)
        spec.veths.append(VethSpec(a_ns, a_if, b_ns, b_if))
        spec.addresses += [AddressSpec(a_ns, a_if, a_cidr), AddressSpec(b_ns, b_if, b_cidr)]
    return spec


def ours_once(graph: dict[str, Any]) -> dict[str, float]:
    lab = f"bnet-{secrets.token_hex(3)}"  # a lab-shaped name: `anylab down --force` finds it
    names = [netns_name(lab, h) for h in graph["hosts"]]
    payload = json.dumps(network_spec(lab, graph).to_dict())
    try:
        started = time.monotonic()
        run(["ip", "-batch", "-"], input_text="".join(f"netns add {n}\n" for n in names),
            timeout=300)
        namespaces_s = time.monotonic() - started
        result = run([sys.executable, "-m", "lab.backend.netns.nsworker"], input_text=payload,
                     timeout=600, check=False)
        build_s = time.monotonic() - started
        if '"ok": true' not in result.stdout:
            raise SystemExit(f"nsworker failed: {result.stdout} {result.stderr}")
        started = time.monotonic()
        run(["ip", "-force", "-batch", "-"], input_text="".join(f"netns del {n}\n"
                                                             for n in names), timeout=300)
        teardown_s = time.monotonic() - started
    finally:
        leftover = lab_namespaces(lab)
        if leftover:
            run(["ip", "-force", "-batch", "-"], timeout=300, check=False,
                input_text="".join(f"netns del {n}\n" for n in leftover))
    return {"build_s": build_s, "teardown_s": teardown_s, "namespaces_s": namespaces_s}


def mininet_once(graph: dict[str, Any]) -> dict[str, float]:
    result = subprocess.run([MININET_PYTHON, str(MININET_SCRIPT)], input=json.dumps(graph),
                            capture_output=True, text=True, timeout=1800, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"mininet side failed ({result.returncode}): "
                         f"{(result.stdout + result.stderr).strip()[-1500:]}")
    reply: dict[str, float] = json.loads(lines[-1])
    return reply


def iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[2] - quartiles[0]


def measure(topology: Path, repeats: int) -> dict[str, Any]:
    graph = plan_graph(topology)
    rounds: dict[str, list[dict[str, float]]] = {"netns": [], "mininet": []}
    for _ in range(repeats):
        rounds["netns"].append(ours_once(graph))
        time.sleep(SETTLE_S)
        rounds["mininet"].append(mininet_once(graph))
        time.sleep(SETTLE_S)
    figures: dict[str, Any] = {"topology": topology.name, "repeats": repeats,
                               "namespaces": len(graph["hosts"]), "veths": len(graph["links"])}
    for side, results in rounds.items():
        for phase in ("build_s", "teardown_s"):
            values = [r[phase] for r in results]
            key = f"{side}_{phase}"
            figures[key] = round(statistics.median(values), 3)
            figures[f"{side}_{phase.removesuffix('_s')}_iqr_s"] = round(iqr(values), 3)
            figures[f"{key}_all"] = [round(v, 3) for v in values]
    figures["netns_ip_batch_s"] = round(statistics.median(
        r["namespaces_s"] for r in rounds["netns"]), 3)  # of netns_build_s: `ip -batch`
    figures["mininet_vs_netns_build"] = round(figures["mininet_build_s"]
                                              / figures["netns_build_s"], 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default=str(REPO / "topologies" / "three-sites.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(Path(args.topology), args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
