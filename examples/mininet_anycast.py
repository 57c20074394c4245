#!/usr/bin/env python3
"""The anycast lab in a Mininet script: bring the mini topology up on Mininet, send a request
to each service's VIP from every client with Mininet's ``cmd`` (socat, which Mininet brings),
show which site, node and pod answer, and a router's links as Mininet sees them. Run as root
from the repository:

    sudo .venv/bin/python examples/mininet_anycast.py [--name NAME] [--cli]

``--cli`` opens Mininet's CLI on the lab before it is removed (``exit`` leaves it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.mininet import AnycastNet  # noqa: E402

TOPOLOGY = REPO / "topologies" / "two-sites-mini.yaml"


def who_answered(reply: str) -> str:
    """The pod servers answer with the request, then a JSON line naming themselves."""
    start = reply.rfind('{"site"')
    if start < 0:
        return f"nobody ({reply.strip() or 'no reply'})"
    me = json.loads(reply[start:].splitlines()[0])
    return f"{me['site']} ({me['node']}, {me['pod']})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="mininet-example")
    parser.add_argument("--cli", action="store_true", help="open Mininet's CLI at the end")
    args = parser.parse_args()
    started = time.monotonic()
    with AnycastNet(TOPOLOGY, args.name, progress=lambda m: print(f"  {m}")) as net:
        print(f"lab {net.lab!r} ready on Mininet in {time.monotonic() - started:.1f} s: "
              f"{len(net.hosts)} Mininet hosts")
        clients = [n.name for n in net.result.plan.nodes if n.role == "client"]  # type: ignore[union-attr]
        for client in clients:
            for service in net.result.plan.services:  # type: ignore[union-attr]
                kind = "UDP" if service.protocol == "udp" else "TCP"
                reply = net[client].cmd(f"echo hello | socat -t2 - "
                                        f"{kind}:{service.vip}:{service.port}")
                print(f"{client} -> {service.vip} ({service.name}, {kind} {service.port}): "
                      f"answered by {who_answered(reply)}")
        leaf = net["alpha-l1"]
        print("alpha-l1 in Mininet: " + ", ".join(f"{i.name} {i.IP()}/{i.prefixLen}"
                                                  for i in leaf.intfList() if i.name != "lo"))
        if args.cli:
            net.cli()
    print("lab removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
