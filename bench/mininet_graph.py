"""Build and tear down a graph of namespaces and veth links with Mininet; print the times.

Run by bench_netns.py with Debian's /usr/bin/python3 (Mininet's Python API is packaged for
it, not for the project's venv). Reads the graph as JSON on stdin:
``{"hosts": [name, ...], "links": [[a, a_ifname, a_cidr, b, b_ifname, b_cidr], ...]}`` and
prints one JSON line ``{"build_s": ..., "teardown_s": ..., "hosts": N, "links": M}``.

Hosts only (each a shell in its own network namespace), direct veth links (``addLink``) with
an address on each end, no controller, no switches. Mininet's ``fixLimits()`` is skipped: it
would raise host sysctls (net.core.rmem_max, neighbour-table sizes, ...) on a shared machine,
and 39-344 hosts do not need it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from mininet.log import setLogLevel
from mininet.net import Mininet


def build(graph: dict[str, Any]) -> tuple[Mininet, float]:
    started = time.monotonic()
    net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                  waitConnected=False)
    for name in graph["hosts"]:
        net.addHost(name, ip=None)
    for a, a_if, a_cidr, b, b_if, b_cidr in graph["links"]:
        net.addLink(net.get(a), net.get(b), intfName1=a_if, intfName2=b_if,
                    params1={"ip": a_cidr}, params2={"ip": b_cidr})
    net.build()
    return net, time.monotonic() - started


def main() -> int:
    graph = json.load(sys.stdin)
    setLogLevel("error")
    Mininet.inited = True  # skip ensureRoot() + fixLimits(): no host sysctl changes
    net = None
    try:
        net, build_s = build(graph)
        started = time.monotonic()
        net.stop()
        teardown_s = time.monotonic() - started
        net = None
    finally:
        if net is not None:
            net.stop()
    print(json.dumps({"build_s": build_s, "teardown_s": teardown_s,
                      "hosts": len(graph["hosts"]), "links": len(graph["links"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
