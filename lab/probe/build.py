"""Compile the C UDP prober on demand (the same cache and rules as the link emulator).

``python -m lab.probe.build`` builds if needed (echoing the gcc command on stderr) and prints
the binary's path on stdout; ``--print-command`` prints the gcc command only.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from lab.impair.build import binary_path, compile_c, gcc_command
from lab.impair.errors import ImpairmentError
from lab.probe.errors import ProbeError

PROBER_SOURCE = Path(__file__).resolve().parent / "csrc" / "prober.c"


def ensure_prober_built(echo: Callable[[str], None] | None = None,
                        out_dir: Path | None = None) -> Path:
    """Path of an up-to-date prober binary, compiling it if needed."""
    try:
        return compile_c(PROBER_SOURCE, out_dir, echo=echo)
    except ImpairmentError as exc:
        raise ProbeError(f"cannot build the prober: {exc.message}") from exc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--print-command"]:
        print(shlex.join(gcc_command(PROBER_SOURCE, binary_path(PROBER_SOURCE))))
        return 0
    if args:
        print("usage: python -m lab.probe.build [--print-command]", file=sys.stderr)
        return 2
    try:
        path = ensure_prober_built(echo=lambda command: print(command, file=sys.stderr))
    except ProbeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
