"""The groups keeper: one process for every router of a lab with resilient groups.

It watches each router's VIP routes with the FIB recorder's netlink monitor
(lab.measure.recorder.monitor) and keeps one ``ip -force -batch -`` process per router, in
its namespace, to which it writes the commands of lab.apps.ecmpgroups.groups as the routes
change. The spec (JSON): ``{"lab", "ready", "routers": [{"name", "netns", "prefixes",
"buckets", "idle_timer_s", "unbalanced_timer_s"}]}``. SIGTERM or SIGINT ends it; the groups
stay until the lab's namespaces go.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from lab.apps.ecmpgroups.groups import GroupSettings, RouterGroups
from lab.apps.mainloop import MainLoop
from lab.errors import RecorderError
from lab.measure.recorder.monitor import RouterMonitor
from lab.measure.recorder.tracker import Row
from lab.netns import enter_netns, in_netns

SELECT_TIMEOUT_S = 0.2
# rows after which the kernel may have changed nexthop objects by itself
KERNEL_CAUSES = frozenset({"link-down", "link-up", "nexthop", "resync"})


def interface_names(netns: str) -> dict[int, str]:
    """Interface index -> name in the namespace at ``netns``."""
    with in_netns(netns):
        return dict(socket.if_nameindex())


class Router:
    """One router: its groups, its ``ip -batch`` process and its route monitor."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.name = str(spec["name"])
        netns = str(spec["netns"])
        self.groups = RouterGroups(
            tuple(spec["prefixes"]),
            GroupSettings(int(spec["buckets"]), float(spec["idle_timer_s"]),
                          float(spec["unbalanced_timer_s"])),
            interface_names(netns))
        self.batch = subprocess.Popen(["ip", "-force", "-batch", "-"], stdin=subprocess.PIPE,
                                      text=True, bufsize=1,
                                      # this process has one thread: entering in the child is safe
                                      preexec_fn=lambda: enter_netns(netns))
        self.monitor = RouterMonitor(self.name, Path(netns), frozenset(self.groups.prefixes),
                                     self.on_row)

    @property
    def stdin(self) -> IO[str]:
        assert self.batch.stdin is not None
        return self.batch.stdin

    def send(self, commands: Sequence[str]) -> None:
        if commands:
            self.stdin.write("".join(f"{c}\n" for c in commands))
            self.stdin.flush()

    def on_row(self, row: Row) -> None:
        if row.get("cause") in KERNEL_CAUSES or row["action"] == "present":
            self.groups.forget()
        route = next((r for (prefix, metric, _tos), r in self.monitor.tracker.routes.items()
                      if prefix == row["prefix"] and metric == row["metric"]), None)
        hops = [(h.gateway, h.oif) for h in route.hops if not h.dead] if route else []
        self.send(self.groups.update(row, hops))

    def close(self) -> None:
        self.monitor.close()
        self.stdin.close()
        self.batch.wait(timeout=10)


def keep(spec: dict[str, Any]) -> None:
    loop = MainLoop()
    routers: list[Router] = []
    try:
        with loop.stopped_by_signals():
            for entry in spec["routers"]:
                router = Router(entry)
                routers.append(router)
                router.send(router.groups.setup())
                router.monitor.snapshot()
                loop.selector.register(router.monitor, selectors.EVENT_READ, router.monitor)
            Path(spec["ready"]).touch()
            while not loop.stopping:
                for key, _events in loop.wait(SELECT_TIMEOUT_S):
                    key.data.receive()
    finally:
        for router in routers:
            router.close()
        loop.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.apps.ecmpgroups",
                                     description="Resilient next-hop groups for the VIPs.")
    parser.add_argument("--spec", required=True, type=Path, help="spec (JSON)")
    args = parser.parse_args(argv)
    try:
        keep(json.loads(args.spec.read_text()))
    except (RecorderError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        print(f"ecmpgroups: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
