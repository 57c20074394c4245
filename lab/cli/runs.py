"""`anylab run`: play a scenario and print what it did to clients."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lab.atomicfile import write_atomic
from lab.backend import BACKENDS, DEFAULT_BACKEND, backend_named
from lab.cli.junit import junit_xml, subject_name
from lab.cli.runprogress import RunDisplay
from lab.run.runner import RunOptions, run_scenario

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}"


def _site(client: dict[str, Any]) -> str:
    before, after = client.get("site_before"), client.get("site_after")
    if before is None and after is None:
        return "-"
    return str(before) if before == after else f"{before} -> {after}"


def _tcp_broken(client: dict[str, Any]) -> str:
    """The broken TCP flows, with their causes when known (lab.measure.metrics.collateral)."""
    count = client.get("tcp_broken")
    if count is None:
        return "-"
    causes = Counter(t["cause"] for t in (client.get("collateral") or {}).get("tcp_flows", []))
    return str(count) + (f" ({', '.join(f'{n} {c}' for c, n in sorted(causes.items()))})"
                         if causes else "")


def _collateral(collateral: dict[str, Any] | None) -> tuple[str, str]:
    """(flows on the failed element of all, the other flows that lost probes and their
    longest loss window)."""
    if not collateral:
        return "-", "-"
    total = collateral["flows_on_target"] + collateral["flows_elsewhere"]
    if not total:
        return "-", "-"
    on = f"{collateral['flows_on_target']}/{total}" if collateral["target_answers"] else "-"
    if not collateral["flows_with_loss"]:
        return on, "0"
    return on, f"{collateral['flows_with_loss']} (≤{collateral['longest_ms']:.0f} ms)"


def _event_title(event: dict[str, Any]) -> str:
    title = f"step {event.get('step')}: {event.get('fault')} on {event.get('target')}"
    if event.get("detection_ms") is not None:
        source = event.get("detection_source")
        title += f"; detected after {event['detection_ms']:.0f} ms ({source})"
    last = (event.get("control_plane") or {}).get("last_fib_change_ms")
    if last is not None:
        title += f"; last FIB change +{last:.0f} ms"
    return title


def print_summary(summary: dict[str, Any], title: str, console: Console = out) -> None:
    console.print(f"[bold]{title}[/bold]")
    for trial in summary.get("trials", []):
        for warning in trial.get("warnings", []):
            console.print(f"[red]trial {trial.get('trial')}: {warning}[/red]")
        invalid = " [red](INVALID: not counted, see the warnings)[/red]" if trial.get(
            "valid") is False else ""
        for event in trial.get("events", []):
            table = Table(title=f"trial {trial.get('trial')}{invalid}, {_event_title(event)}",
                          title_justify="left")
            for column in ("client", "service", "outage ms", "loss windows", "lost ms", "site",
                           "RTT ms", "TCP broken", "flows on target",
                           "other flows hit"):
                table.add_column(column, overflow="fold")
            for client in event.get("clients", []):
                rtt = f"{_ms(client.get('rtt_before_ms'))} -> {_ms(client.get('rtt_after_ms'))}"
                if client.get("outage_ms") is None:
                    rtt = "-"
                table.add_row(client.get("client", ""),
                              subject_name({"service": client.get("service"),
                                            "family": client.get("family")}),
                              _ms(client.get("outage_ms")),
                              str(client.get("loss_windows", "-")),
                              _ms(client.get("loss_derived_ms")),
                              _site(client), rtt, _tcp_broken(client),
                              *_collateral(client.get("collateral")))
            console.print(table)


def print_budgets(verdicts: list[dict[str, Any]], console: Console = out) -> None:
    failed = sum(not v["pass"] for v in verdicts)
    title = (f"budgets: {len(verdicts) - failed} of {len(verdicts)} kept"
             + (f", [red]{failed} failed[/red]" if failed else ""))
    table = Table(title=title, title_justify="left")
    for column in ("", "event", "client", "figure", "condition", "value"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        value = v.get("reason") or json.dumps(v.get("value"))
        event = f"step {v['step']} {v['fault']}" if v.get("fault") else "-"
        who = subject_name(v) or "-"
        figure = " ".join(str(p) for p in (v.get("figure"), v.get("statistic")) if p)
        table.add_row("[green]pass[/green]" if v["pass"] else "[red]FAIL[/red]", event, who,
                      figure, str(v.get("condition")), value)
    console.print(table)


def cmd_run(args: argparse.Namespace) -> int:
    from lab.cli.main import EXIT_BUDGET, EXIT_FAILURE, EXIT_OK

    console = err if args.json else out  # with --json, stdout is the summary's alone
    options = RunOptions(scenario_file=Path(args.scenario),
                         topology=Path(args.topology) if args.topology else None,
                         repeat=args.repeat, keep_lab=args.keep_lab, name=args.name,
                         runs_root=Path(args.runs))
    started = time.monotonic()
    display = RunDisplay(err, quiet=args.quiet, verbose=args.verbose)
    with display.live():
        backend = backend_named(args.backend) if args.backend else None
        result = run_scenario(options, display.step, backend=backend, on_trial=display.trial)
    print_summary(result.summary, f"{result.summary.get('scenario')} on lab {result.lab!r}",
                  console)
    verdicts = result.summary.get("budgets", [])
    if verdicts:
        print_budgets(verdicts, console)
    if args.junit:
        write_atomic(Path(args.junit), junit_xml(str(result.summary.get("scenario")), verdicts,
                                                 time.monotonic() - started))
    state = "complete" if result.complete else "[red]incomplete[/red]"
    console.print(f"run directory ({state}): {result.run_dir}")
    if args.json:
        sys.stdout.write(json.dumps(result.summary, indent=1) + "\n")
    if not result.complete:
        return EXIT_FAILURE
    return EXIT_BUDGET if any(not v["pass"] for v in verdicts) else EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from analysis.compare import compare_runs, parse_tolerance, worst_first
    from lab.cli.main import EXIT_BUDGET, EXIT_INPUT, EXIT_OK

    try:
        tolerance = parse_tolerance(args.tolerance)
    except ValueError:
        err.print(f"--tolerance {args.tolerance!r}: write a percentage (10%) or a fraction (0.1)",
                  style="red")
        return EXIT_INPUT
    comparison = compare_runs(Path(args.base), Path(args.new), tolerance)
    if args.json:
        sys.stdout.write(json.dumps(comparison.to_dict(), indent=1) + "\n")
    else:
        worse = comparison.worse
        title = (f"{comparison.new_scenario} against {comparison.base_scenario} (tolerance "
                 f"{tolerance:.0%} + one probe interval): "
                 + (f"[red]{len(worse)} figures worse[/red]" if worse else "nothing worse"))
        table = Table(title=title, title_justify="left")
        for column in ("", "event", "client", "figure", "base", "new", "allowed"):
            table.add_column(column, overflow="fold")
        shown = worst_first(comparison.differences)
        for d in shown if args.all else [d for d in shown if d.verdict != "same"]:
            mark = {"worse": "[red]worse[/red]", "better": "[green]better[/green]"}.get(
                d.verdict, "same")
            table.add_row(mark, f"step {d.step} {d.fault}", subject_name(asdict(d)),
                          f"{d.figure} {d.statistic}", f"{d.base:.1f}", f"{d.new:.1f}",
                          f"{d.allowed:.1f}")
        out.print(table)
        for name, keys in (("base", comparison.only_base), ("new", comparison.only_new)):
            if keys:
                out.print(f"only in the {name} run: "
                          + ", ".join(f"step {k[0]} {k[1]} " + subject_name(
                              {"client": k[2], "service": k[3], "family": k[4]})
                              for k in keys))
    return EXIT_BUDGET if comparison.worse else EXIT_OK


def add_run_command(sub: Any, fmt: type[argparse.HelpFormatter], examples: Any) -> None:
    p = sub.add_parser("run", help="play a failure scenario and measure it", formatter_class=fmt,
                       description="Bring the scenario's lab up if it is not running, play the "
                       "timeline of faults while probers and recorders measure on one clock, "
                       "and write runs/<time>-<scenario>/ (see docs/run-format.md). The "
                       "scenario's budgets (`expect:`) are checked: exit code 3 when one "
                       "fails (1: the run is incomplete; 2: bad input).",
                       epilog=examples("anylab run scenarios/node-crash-bfd.yaml",
                                       "anylab run scenarios/site-drain.yaml --repeat 5 "
                                       "--keep-lab"))
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--topology", help="run against this topology instead of the scenario's")
    p.add_argument("--repeat", type=int, help="trials back to back (default: the scenario's)")
    p.add_argument("--keep-lab", action="store_true",
                   help="leave a lab this command started running afterwards")
    p.add_argument("--name", help="lab name (default: derived from the topology)")
    p.add_argument("--backend", choices=[b for b in BACKENDS if b != "fake"],
                   help=f"where a lab this run brings up runs (default {DEFAULT_BACKEND}; a "
                   "running lab keeps its own)")
    p.add_argument("--runs", default="runs", help="folder for run directories (default runs/)")
    p.add_argument("--json", action="store_true",
                   help="print summary.json to stdout (tables and progress go to stderr)")
    p.add_argument("--junit", metavar="FILE",
                   help="write the budgets' verdicts as JUnit XML (one test case each)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no live progress (for CI logs): each step is one plain line")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("compare", help="what got worse from a baseline run to a new one",
                       formatter_class=fmt,
                       description="Compare two run directories figure by figure (outage, "
                       "loss-derived outage, detection, reversion outage, broken TCP flows; "
                       "median and p95 per event, client and service). Exit code 3 when a "
                       "figure got worse beyond the tolerance (a fraction of the baseline plus "
                       "one probe interval), 0 otherwise.",
                       epilog=examples("anylab compare runs/BASE runs/NEW",
                                       "anylab compare runs/BASE runs/NEW --tolerance 20% --json"))
    p.add_argument("base", metavar="BASE_RUN")
    p.add_argument("new", metavar="NEW_RUN")
    p.add_argument("--tolerance", default="10%",
                   help="how much worse is still fine: 10%% or 0.1 (default %(default)s)")
    p.add_argument("--all", action="store_true", help="also list the figures that are the same")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=cmd_compare)
