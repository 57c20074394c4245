"""`anylab mininet FILE`: the lab on Mininet with Mininet's own CLI; leaving the CLI removes it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.backend import labs
from lab.errors import BackendError

err = Console(stderr=True, highlight=False)


def lab_cli_class() -> type:
    """Mininet's CLI, reading node names with dashes and dots (``us-c1 ping ...``): its
    command parser otherwise stops a name at the first character that is not a letter, digit
    or underscore."""
    from lab.backend.mininet.tools import import_mininet

    import_mininet()
    from mininet.cli import CLI

    class LabCLI(CLI):  # type: ignore[misc]
        identchars = CLI.identchars + "-."
        prompt = "anylab-mininet> "

    return LabCLI


def LabCLI(mn: Any) -> Any:
    """Run Mininet's CLI (as above) on ``mn`` until the user leaves it."""
    return lab_cli_class()(mn)


def cmd_mininet(args: argparse.Namespace) -> int:
    from lab.cli.lifecycle import print_answers
    from lab.mininet import AnycastNet

    started = time.monotonic()
    net = AnycastNet(Path(args.file), args.name, timeout_s=args.timeout)
    try:
        with err.status("starting", spinner="dots") as spinner:
            net.progress = spinner.update
            result = net.start()
        print_answers(result.report.answers,
                      f"lab {result.state.lab!r} ready on Mininet in "
                      f"{time.monotonic() - started:.1f} s; `exit` or Ctrl-D removes it")
        net.cli()
    finally:
        report = net.stop()
    if report is not None and report.leftovers:
        raise BackendError("left behind: " + ", ".join(report.leftovers))
    if report is not None:
        err.print(f"lab {report.lab!r} removed")
    return 0


def add_mininet_command(sub: Any, fmt: type[argparse.HelpFormatter], examples: Any) -> None:
    p = sub.add_parser("mininet", help="the lab on Mininet, with Mininet's CLI",
                       formatter_class=fmt,
                       description="Bring the lab up on the Mininet backend (its first use "
                       "installs Debian's mininet package), wait until it is ready, show where "
                       "each client lands, then open Mininet's CLI on it: node names are the "
                       "plan's (`east-c1 ping -c1 192.0.2.53`, `nodes`, `net`, `dump`). "
                       "Leaving the CLI (`exit`, Ctrl-D) removes the lab.",
                       epilog=examples("anylab mininet topologies/two-sites-mini.yaml",
                                       "anylab mininet topologies/three-sites.yaml --name ref"))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", help="lab name (default: the topology's name)")
    p.add_argument("--timeout", type=float, default=labs.DEFAULT_READY_TIMEOUT_S,
                   help="seconds to wait for readiness (default %(default)s)")
    p.set_defaults(handler=cmd_mininet)
