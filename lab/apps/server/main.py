"""The anycast server: one process per pod, answering every service with its identity.

``python -m lab.apps.server --spec FILE`` validates the pod's spec and becomes the C server
(``lab/apps/server/csrc/podserver.c``: what it answers, how it drains on SIGTERM and its
health port are described at its top) with the spec's fields as arguments: the same process,
so the PID that started is the one that serves, and killing it kills that pod's server only.
A bad spec exits 2 with every problem listed.

The server is C because a lab runs one per pod, hundreds at scale: a few hundred KB each
instead of 5.3 MB of Python (PSS, measured; docs/benchmarks.md), and no interpreter between a
probe and its answer. Its identity text (compact JSON, ``identity_bytes``) is made here, once,
so the probers and the server agree on it by construction.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from lab.apps.server.build import server_binary
from lab.apps.server.spec import ServerSpec, SpecError, load_server_spec
from lab.errors import BackendError

NICE = -10  # the server is part of the instrument: a CPU before the ordinary processes


def identity_bytes(spec: ServerSpec, service: str) -> bytes:
    return json.dumps(spec.identity(service), separators=(",", ":")).encode()


def server_argv(spec: ServerSpec, binary: Path, nice: int = NICE) -> list[str]:
    """The C server's command line for ``spec``."""
    argv = [str(binary), "--pod", spec.pod, "--address", str(spec.address),
            "--health-port", str(spec.health_port), "--unready-flag", str(spec.unready_flag),
            "--nice", str(nice)]
    if spec.address6 is not None:
        argv += ["--address6", str(spec.address6)]
    for service in spec.services:
        argv += ["--service", service.protocol, str(service.port), service.name,
                 identity_bytes(spec, service.name).decode()]
    return argv


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.apps.server",
                                     description="anycast server for one pod")
    parser.add_argument("--spec", required=True, type=Path, help="the pod's server spec (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Replace this process with the pod's server; return only on an error (its exit code)."""
    args = _parse_args(argv)
    try:
        command = server_argv(load_server_spec(args.spec), server_binary())
    except SpecError as exc:
        print(f"lab.apps.server.main: {exc}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"lab.apps.server.main: {exc}", file=sys.stderr)
        return 1
    return _become(command)  # never returns: this process becomes the server


def _become(command: list[str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
