"""`anylab up/down/status/list/exec/shell/vtysh`: the lab life-cycle commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lab.backend import BACKENDS, DEFAULT_BACKEND, backend_named, labs
from lab.backend.daemons import vtysh_argv
from lab.backend.state import load_state
from lab.errors import BackendError
from lab.measure.calibrate import Calibration

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with err.status("starting", spinner="dots") as spinner:
        def progress(message: str) -> None:
            spinner.update(message)
            err.log(message) if args.verbose else None

        backend = backend_named(args.backend) if args.backend else None
        result = labs.up(Path(args.file), args.name, progress, timeout_s=args.timeout,
                         driver=args.impairment_driver, keep_on_failure=args.keep_on_failure,
                         backend=backend, calibrate=not args.no_calibrate,
                         merge_memory=args.merge_memory)
    elapsed = time.monotonic() - started
    report = result.report
    if not report.ready:
        lab = result.state.lab
        err.print(f"[red]lab {lab!r} is not ready after {report.elapsed_s:.1f} s:[/red]")
        err.print(report.explain(), markup=False, soft_wrap=True)
        if result.kept:
            err.print(f"it is left up for inspection: `anylab status --name {lab}`; "
                      f"`anylab down --name {lab}` removes it")
        else:
            err.print("the lab was removed (`--keep-on-failure` leaves it up for inspection)")
        return 1
    print_answers(report.answers, f"lab {result.state.lab!r} ready in {elapsed:.1f} s "
                   f"({report.sessions_total} BGP sessions Established)")
    if result.calibration is not None and result.calibration.clients:
        print_calibration(result.calibration)
    return 0


def print_calibration(calibration: Calibration) -> None:
    """One line: how far the round trips were from the configured ones, and after."""
    before = [abs(c.error_ms) for c in calibration.clients]
    after = [abs(c.residual_ms) for c in calibration.clients if c.residual_ms is not None]
    out.print(f"emulated delays calibrated in {calibration.seconds:.1f} s: median RTT of each "
              f"client within {max(before):.2f} ms of the configured round trip before, "
              + (f"{max(after):.2f} ms after" if after else "not measured after")
              + " (the lab's own forwarding cost is taken off each client's access link)")


def print_answers(answers: Any, title: str) -> None:
    """Where each client lands; a family column once a lab has IPv6 answers too. RTT is one
    round trip (a UDP request and its reply, or a TCP handshake); a TCP service's whole
    connect + request + reply is its own column."""
    rows = [a if isinstance(a, dict) else asdict(a) for a in answers]
    dual = any(row.get("family", "ipv4") != "ipv4" for row in rows)
    tcp = any(row.get("request_ms") is not None for row in rows)
    table = Table(title=title, title_justify="left")
    columns = ["client", "service", "family", "site", "node", "pod", "RTT ms"]
    columns += ["TCP request ms"] if tcp else []
    for column in columns if dual else [c for c in columns if c != "family"]:
        table.add_column(column)
    for row in rows:
        rtt, request = row.get("rtt_ms"), row.get("request_ms")
        cells = [row["client"], row["service"]] + ([row.get("family", "ipv4")] if dual else [])
        cells += [row.get("site") or "[red]none[/red]", row.get("node") or "-",
                  row.get("pod") or "-",
                  f"{rtt:.2f}" if rtt is not None else str(row.get("error") or "-")]
        cells += [f"{request:.2f}" if request is not None else "-"] if tcp else []
        table.add_row(*cells)
    out.print(table)


def cmd_down(args: argparse.Namespace) -> int:
    started = time.monotonic()
    report = labs.down(args.name, force=args.force)
    elapsed = time.monotonic() - started
    if not report.existed:
        out.print(f"no lab named {report.lab!r}: nothing to remove")
        return 0
    out.print(f"lab {report.lab!r} removed in {elapsed:.2f} s: {report.processes} processes "
              f"stopped, {report.namespaces} {report.units} deleted")
    if report.leftovers:
        err.print("[red]left behind:[/red] " + ", ".join(report.leftovers))
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    document = labs.status(args.name)
    if args.json:
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
        return 0 if document["ready"] else 1
    sessions = document["sessions"]
    processes = document["processes"]
    state = "[green]ready[/green]" if document["ready"] else "[red]not ready[/red]"
    out.print(f"lab {document['lab']!r} ({document['topology']}): {state}; BGP sessions "
              f"{sessions['established']}/{sessions['total']}; processes "
              f"{processes['alive']}/{processes['total']} alive; impairments: "
              f"{document['impairment_driver']}")
    for dead in processes["dead"]:
        out.print(f"  [red]dead:[/red] {dead}")
    for down in sessions["down"]:
        out.print(f"  [red]session down:[/red] {down['a']} - {down['b']} ({down['state']})")
    for service, nodes in document["announcements"].items():
        out.print(f"  {service}: announced by {len(nodes)} nodes: {', '.join(nodes) or '-'}")
    print_answers(document["clients"], "where each client lands")
    return 0 if document["ready"] else 1


def cmd_list(args: argparse.Namespace) -> int:
    found = labs.list_labs()
    if args.json:
        sys.stdout.write(json.dumps(found, indent=1) + "\n")
        return 0
    if not found:
        out.print("no labs on this machine")
        return 0
    table = Table()
    columns = ("lab", "topology", "backend", "phase", "created", "processes")
    for column in columns:
        table.add_column(column)
    for item in found:
        table.add_row(*(str(item[k] if item[k] is not None else "-") for k in columns))
    out.print(table)
    return 0


def _node_argv(lab: str, node: str, argv: list[str]) -> list[str]:
    state = load_state(lab)
    plan = labs.plan_of(state)
    known = {n.name for n in plan.nodes} | {p.name for p in plan.pods()}
    if node not in known:
        raise BackendError(f"lab {lab!r} has no node {node!r}; `anylab plan` lists them")
    return labs.backend_for(state).exec_argv(state, node, argv)


def _exec(argv: list[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # replaces this process; an argument list, no shell
    return 0  # not reached


def cmd_exec(args: argparse.Namespace) -> int:
    command = [c for c in args.cmd if c != "--"] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise BackendError("give a command after --, e.g. anylab exec nyc-l1 -- ip route")
    return _exec(_node_argv(labs.resolve_name(args.name), args.node, command))


def cmd_shell(args: argparse.Namespace) -> int:
    shell = os.environ.get("SHELL", "/bin/bash")
    return _exec(_node_argv(labs.resolve_name(args.name), args.node, [shell]))


def cmd_vtysh(args: argparse.Namespace) -> int:
    lab = labs.resolve_name(args.name)
    state = load_state(lab)
    files = labs.backend_for(state).router_files(state, args.node)
    if not any(files.directory.glob("*.vty")):  # a GoBGP node's bfdd alone has one too
        raise BackendError(f"{args.node!r} runs no FRR in lab {lab!r}")
    return _exec(vtysh_argv(files, *(args.command or [])))


def add_lab_commands(sub: Any, fmt: type[argparse.HelpFormatter], examples: Any) -> None:
    name_help = "lab name (default: the topology's name, or the only lab running)"
    p = sub.add_parser("up", help="build a lab and wait until it is ready", formatter_class=fmt,
                       description="Build the lab with FRR, GoBGP and nftables, on network "
                       "namespaces (backend netns, the default), as containers deployed by "
                       "containerlab on Docker (backend containerlab: its first use installs "
                       "docker.io, starts the engine, builds containerlab and the images) or "
                       "as Mininet hosts and links (backend mininet: its first use installs "
                       "Debian's mininet); "
                       "return when every BGP session is Established and every client "
                       "is answered on every VIP, then show where each client lands.",
                       epilog=examples("anylab up topologies/three-sites.yaml",
                                       "anylab up topologies/two-sites-mini.yaml --name mini",
                                       "anylab up topologies/two-sites-mini.yaml "
                                       "--backend containerlab"))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", help=name_help)
    p.add_argument("--backend", choices=[b for b in BACKENDS if b != "fake"],
                   help=f"where the lab runs (default {DEFAULT_BACKEND})")
    p.add_argument("--timeout", type=float, default=labs.DEFAULT_READY_TIMEOUT_S,
                   help="seconds to wait for readiness (default %(default)s)")
    p.add_argument("--impairment-driver", choices=["auto", "netem", "userspace"],
                   help="override the topology's impairment driver")
    p.add_argument("--keep-on-failure", action="store_true",
                   help="leave a lab that is not ready up for inspection (its evidence is "
                   "kept either way, in $ANYLAB_EVIDENCE_DIR or /var/tmp/anylab/evidence)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="leave the emulated delays as configured (calibration takes the lab's "
                   "own forwarding cost, measured per client, off each client's access link)")
    p.add_argument("--merge-memory", action="store_true",
                   help="netns backend: let the kernel keep one copy of the pages the lab's "
                   "daemons fill alike (KSM: a router in about a third of the memory); "
                   "starts ksmd for as long as such a lab runs")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("down", help="remove a lab completely", formatter_class=fmt,
                       description="Stop every process of the lab (by PID and by its tag), "
                       "delete its namespaces and state. Idempotent.",
                       epilog=examples("anylab down --name mini",
                                       "anylab down --name mini --force"))
    p.add_argument("--name", help=name_help)
    p.add_argument("--force", action="store_true",
                   help="also work when the state file is missing or corrupt")
    p.set_defaults(handler=cmd_down)

    p = sub.add_parser("status", help="sessions, announcements, where clients land",
                       formatter_class=fmt, description="Check a running lab now.",
                       epilog=examples("anylab status", "anylab status --name mini --json"))
    p.add_argument("--name", help=name_help)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("list", help="labs on this machine", formatter_class=fmt,
                       epilog=examples("anylab list", "anylab list --json"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("exec", help="run a command inside a node", formatter_class=fmt,
                       epilog=examples("anylab exec nyc-l1 -- ip route",
                                       "anylab exec us-c1 -- ping -c3 192.0.2.53"))
    p.add_argument("--name", help=name_help)
    p.add_argument("node")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...")
    p.set_defaults(handler=cmd_exec)

    p = sub.add_parser("shell", help="a shell inside a node", formatter_class=fmt,
                       epilog=examples("anylab shell nyc-k8s-n1"))
    p.add_argument("--name", help=name_help)
    p.add_argument("node")
    p.set_defaults(handler=cmd_shell)

    p = sub.add_parser("vtysh", help="FRR's shell on a router", formatter_class=fmt,
                       epilog=examples("anylab vtysh nyc-s1",
                                       "anylab vtysh nyc-l1 -c 'show bgp summary'"))
    p.add_argument("--name", help=name_help)
    p.add_argument("node")
    p.add_argument("-c", "--command", action="append", help="run this command and exit")
    p.set_defaults(handler=cmd_vtysh)
