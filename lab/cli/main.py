"""The `anylab` command line. The only module that prints or chooses exit codes.

Exit codes: 0 success, 1 a lab or command failure, 2 bad input (every problem listed), 130
interrupted. SIGINT and SIGTERM both interrupt, whatever the parent process left them as
(a CI job that is cancelled sends SIGTERM; a script's background job starts with SIGINT
ignored): a run stops, keeps its directory and undoes its faults; an `up` removes the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import argcomplete
from rich.console import Console
from rich.table import Table

from lab import pipeline
from lab.atomicfile import write_atomic
from lab.errors import InputError, InputIssue, LabError, TopologyError
from lab.plan.model import Endpoint, LabPlan
from lab.source.units import format_duration_ms

# 1: the command failed (a run: incomplete); 2: bad input; 3: a run completed and a budget of
# its scenario failed (lab.measure.metrics.budgets); 130: interrupted
EXIT_OK, EXIT_FAILURE, EXIT_INPUT, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

Handler = Callable[[argparse.Namespace], int]


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def cmd_validate(args: argparse.Namespace) -> int:
    from lab.scenario.load import check_scenario_files, looks_like_scenario
    from lab.topology.validate import check_files

    paths = [Path(f) for f in args.files]
    if args.kind is None:
        scenarios = [p for p in paths if looks_like_scenario(p)]
    else:
        scenarios = paths if args.kind == "scenario" else []
    topologies = [p for p in paths if p not in scenarios]
    issues = check_files(topologies) + check_scenario_files(scenarios)
    if issues:
        raise InputError(sorted(issues, key=lambda i: paths.index(Path(i.file))
                                if Path(i.file) in paths else len(paths)))
    for path in paths:
        out.print(f"[green]ok[/green] {path} ({'scenario' if path in scenarios else 'topology'})")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    lab_plan = pipeline.plan(Path(args.file))
    if args.json:
        sys.stdout.write(json.dumps(lab_plan.to_dict(), indent=2) + "\n")
        return EXIT_OK
    _print_plan(lab_plan)
    return EXIT_OK


def _end_text(end: Endpoint) -> str:
    """A link end: its node and its addresses (IPv6 too where the link carries it)."""
    return f"{end.node} {end.address}" + (f" {end.address6}" if end.address6 else "")


def _print_plan(lab_plan: LabPlan) -> None:
    nodes = Table(title=f"{lab_plan.topology}: {len(lab_plan.nodes)} nodes", title_justify="left")
    for column in ("node", "role", "site", "ASN", "router-id / loopback", "speaker", "pods"):
        nodes.add_column(column)
    for node in lab_plan.nodes:
        nodes.add_row(node.name, node.role.value, node.site or "-",
                      str(node.asn) if node.asn else "-",
                      str(node.loopback or node.router_id or "-"), node.speaker or "-",
                      str(len(node.pods)) if node.pods else "-")
    links = Table(title=f"{len(lab_plan.links)} links", title_justify="left")
    for column in ("link", "kind", "a", "b", "delay", "jitter", "loss"):
        links.add_column(column)
    dual = len(lab_plan.families) > 1
    for link in lab_plan.links:
        imp = link.impairment
        only = f" ({link.families[0]} only)" if dual and len(link.families) == 1 else ""
        links.add_row(link.id + only, link.kind.value, _end_text(link.a), _end_text(link.b),
                      format_duration_ms(imp.delay_ms) if imp.delay_ms else "-",
                      format_duration_ms(imp.jitter_ms) if imp.jitter_ms else "-",
                      f"{imp.loss_pct:g}%" if imp.loss_pct else "-")
    sessions = Table(title=f"{len(lab_plan.sessions)} BGP sessions", title_justify="left")
    for column in ("a", "ASN", "b", "ASN ", "kind", "family", "keepalive/hold", "BFD"):
        sessions.add_column(column)
    for s in lab_plan.sessions:
        bfd = s.timers.bfd.describe() if s.timers.bfd else "off"
        if (node_end := s.bfd_at(s.b)) != s.timers.bfd and node_end is not None:
            bfd += f" ({s.b}: {node_end.describe()})"
        sessions.add_row(s.a, str(s.a_asn), s.b, str(s.b_asn), s.kind.value, s.family,
                         f"{s.timers.keepalive_s}s/{s.timers.hold_s}s", bfd)
    services = Table(title=f"{len(lab_plan.services)} anycast services", title_justify="left")
    for column in ("service", "VIP", "protocol/port", "policy", "clusters"):
        services.add_column(column)
    for svc in lab_plan.services:
        services.add_row(svc.name, ", ".join(str(v) for v in svc.vips),
                         f"{svc.protocol}/{svc.port}",
                         svc.traffic_policy
                         + ("" if svc.load_balancing == "random" else f", {svc.load_balancing}"),
                         ", ".join(svc.clusters))
    for table in (nodes, links, sessions, services):
        out.print(table)


def cmd_render(args: argparse.Namespace) -> int:
    from lab.render.check import check_rendered_dir

    lab_plan, rendered = pipeline.render(Path(args.file))
    out_dir = Path(args.out)
    written = rendered.write(out_dir)
    out.print(f"wrote {len(written)} files for {len(rendered.files)} nodes to {out_dir}/")
    if not args.check:
        return EXIT_OK
    results = check_rendered_dir(rendered, out_dir)
    failed = [r for r in results if not r.ok]
    for result in failed:
        err.print(f"[red]FAIL[/red] {result.node}/{result.file} ({result.checker}):\n"
                  f"{result.output}")
    out.print(f"checked {len(results)} files with the daemons' checkers: "
              f"{len(results) - len(failed)} ok, {len(failed)} failed")
    del lab_plan
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    target = Path(args.output)
    if target.suffix.lower() not in {".png", ".svg"}:
        raise InputError([_cli_issue(args.output, "the picture must be a .png or .svg file",
                                     "e.g. -o topology.png")])
    from lab.topology.graph import draw_topology

    lab_plan = pipeline.plan(Path(args.file))
    draw_topology(lab_plan, target)
    out.print(f"wrote {target}")
    return EXIT_OK


def _bfd_interval_ms(text: str) -> int:
    """``--bfd-interval``: a duration FRR accepts (10 ms to 60 s, whole milliseconds)."""
    from lab.source.units import parse_duration_ms

    try:
        ms = parse_duration_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 300ms, 1s)") from exc
    if not 10 <= ms <= 60_000 or ms != int(ms):
        raise argparse.ArgumentTypeError(f"{text!r}: FRR takes 10ms to 60s in whole ms")
    return int(ms)


def cmd_generate(args: argparse.Namespace) -> int:
    from lab.topology.generate import ScaleParameters, scale_topology_yaml

    params = ScaleParameters(sites=args.sites, spines=args.spines, leafs=args.leafs,
                             nodes=args.nodes, pods_per_node=args.pods,
                             clients_per_transit=args.clients, speaker=args.speaker,
                             bfd=not args.no_bfd, bfd_interval_ms=args.bfd_interval)
    text = scale_topology_yaml(params)
    if args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(args.output)
    write_atomic(target, text, mode=0o644, durable=False)
    err.print(f"wrote {target}: {params.speakers} BGP speakers")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from analysis import RunError, write_report

    try:
        target = write_report([Path(r) for r in args.runs], Path(args.output),
                              title=args.title)
    except RunError as exc:
        raise InputError([_cli_issue(" ".join(args.runs), str(exc),
                                     "give run directories written by `anylab run` "
                                     "(runs/<time>-<scenario>)")]) from None
    out.print(f"wrote {target}")
    return EXIT_OK


def _cli_issue(path: str, message: str, hint: str) -> InputIssue:
    return InputIssue(path, None, "", message, hint)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="anylab", formatter_class=fmt,
        description="anycast-lab: build multi-site anycast labs and measure what failures do.",
        epilog=_examples("anylab validate topologies/*.yaml",
                         "anylab plan topologies/three-sites.yaml",
                         "anylab render topologies/three-sites.yaml --out build/configs --check",
                         "anylab graph topologies/three-sites.yaml -o three-sites.png"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check topology and scenario files; list every problem",
                       formatter_class=fmt,
                       description="Validate topology and scenario files (a scenario is "
                                   "recognised by its keys, e.g. `steps:`, and checked with "
                                   "its topology: targets, clients, services and budgets must "
                                   "exist; nothing is built). Every problem is listed with "
                                   "file:line, YAML path and a hint; exit code 2 if any.",
                       epilog=_examples("anylab validate topologies/three-sites.yaml",
                                        "anylab validate topologies/*.yaml scenarios/*.yaml",
                                        "anylab validate --scenario my-drain.yaml"))
    p.add_argument("files", nargs="+", metavar="FILE")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--scenario", dest="kind", action="store_const", const="scenario",
                      help="the files are scenarios, whatever their keys")
    kind.add_argument("--topology", dest="kind", action="store_const", const="topology",
                      help="the files are topologies, whatever their keys")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("plan", help="show the expanded lab: nodes, links, sessions",
                       formatter_class=fmt,
                       description="Expand a topology into nodes (role, site, ASN, loopback), "
                                   "links with addresses and impairments, BGP sessions.",
                       epilog=_examples("anylab plan topologies/two-sites-mini.yaml",
                                        "anylab plan topologies/three-sites.yaml --json | jq ."))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("render", help="write every daemon's configuration, one folder per node",
                       formatter_class=fmt,
                       description="Render frr.conf/daemons (FRR routers and nodes), "
                                   "gobgpd.toml (gobgp nodes) and service-proxy.nft (nodes).",
                       epilog=_examples("anylab render topologies/three-sites.yaml --out cfg",
                                        "anylab render topologies/three-sites.yaml --out cfg "
                                        "--check"))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--check", action="store_true",
                   help="run vtysh --dryrun, gobgpd --dry-run and nft -c on the files")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("graph", help="draw the topology (PNG or SVG)", formatter_class=fmt,
                       description="Draw sites, fabrics, clusters, transits and clients, with "
                                   "WAN delays on the links.",
                       epilog=_examples("anylab graph topologies/three-sites.yaml -o lab.png",
                                        "anylab graph topologies/two-sites-mini.yaml -o mini.svg"))
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png|FILE.svg")
    p.set_defaults(handler=cmd_graph)

    p = sub.add_parser("generate", help="write a scale topology from a few parameters",
                       formatter_class=fmt,
                       description="Generate a topology with many BGP speakers: sites on a "
                                   "ring of transits, each a spine/leaf fabric and a cluster.",
                       epilog=_examples("anylab generate --sites 8 --leafs 8 --nodes 32 "
                                        "-o topologies/scale-344.yaml",
                                        "anylab generate --sites 3 --nodes 4 -o - | anylab "
                                        "validate /dev/stdin"))
    p.add_argument("--sites", type=int, default=8)
    p.add_argument("--spines", type=int, default=2)
    p.add_argument("--leafs", type=int, default=8)
    p.add_argument("--nodes", type=int, default=32, help="cluster nodes per site")
    p.add_argument("--pods", type=int, default=1, help="pods per node")
    p.add_argument("--clients", type=int, default=1, help="clients per transit")
    p.add_argument("--speaker", choices=["gobgp", "frr"], default="gobgp")
    p.add_argument("--no-bfd", action="store_true")
    p.add_argument("--bfd-interval", type=_bfd_interval_ms, default=300, metavar="DURATION",
                   help="BFD transmit and receive interval (default 300ms; each session end "
                        "costs CPU at this rate: see docs/benchmarks.md, 'Scale')")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="'-' for stdout")
    p.set_defaults(handler=cmd_generate)

    from lab.cli.lifecycle import add_lab_commands

    add_lab_commands(sub, fmt, _examples)
    from lab.cli.runs import add_run_command

    add_run_command(sub, fmt, _examples)
    from lab.cli.containers import add_container_commands

    add_container_commands(sub, fmt, _examples)
    from lab.cli.mininet import add_mininet_command

    add_mininet_command(sub, fmt, _examples)

    p = sub.add_parser("report", help="one self-contained HTML report of one or more runs",
                       formatter_class=fmt,
                       description="Figures, tables, run metadata and the scenario's "
                       "description in one HTML file that opens without a server; several "
                       "runs are compared.",
                       epilog=_examples("anylab report runs/20261127-012226-node-crash-bfd "
                                        "-o report.html",
                                        "anylab report runs/*-node-crash-* -o compare.html"))
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html")
    p.add_argument("--title")
    p.set_defaults(handler=cmd_report)
    from lab.cli.completion import add_completion_command, attach_completers

    add_completion_command(sub, fmt, _examples)
    attach_completers(parser)
    return parser


def _version() -> str:
    from lab import __version__

    return __version__


def _interrupter(owner: int) -> Callable[[int, FrameType | None], None]:
    """A handler that interrupts the command in process ``owner`` only. A library may fork
    this process without exec (pyroute2 does, for a namespace) and stop the child with
    SIGTERM: the child inherits the handler and must simply end, not unwind a copy of the
    command (which would remove the lab its parent is building)."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    return interrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers a shell's completion request, then exits
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    interrupt = _interrupter(os.getpid())
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return handler(args)
    except InputError as exc:
        if args.command == "run" and isinstance(exc, TopologyError):
            err.print("the scenario's topology has problems:", style="bold red")
        for issue in exc.issues:
            err.print(issue.format(), markup=False, soft_wrap=True)
        count = len(exc.issues)
        err.print(f"{count} problem{'s' if count != 1 else ''} found", style="bold red")
        return EXIT_INPUT
    except LabError as exc:
        err.print(f"error: {exc}", markup=False, style="red", soft_wrap=True)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


if __name__ == "__main__":
    sys.exit(main())
