"""Compile the C link emulator on demand (lab.cbuild: the cache and its rules).

``python -m lab.impair.build`` builds if needed (echoing the gcc command on
stderr, as make does) and prints the binary's path on stdout;
``python -m lab.impair.build --print-command`` prints the gcc command only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lab.cbuild import build_main, compile_c
from lab.errors import BuildError, ImpairmentError

EMULATOR_SOURCE = Path(__file__).resolve().parent / "csrc" / "linkemu.c"


def ensure_built(echo: Callable[[str], None] | None = None) -> Path:
    """Path of an up-to-date link emulator binary, compiling it if needed."""
    try:
        return compile_c(EMULATOR_SOURCE, echo=echo)
    except BuildError as exc:
        raise ImpairmentError(f"cannot build the link emulator: {exc.message}") from exc


def main(argv: list[str] | None = None) -> int:
    return build_main(argv, "lab.impair.build", EMULATOR_SOURCE,
                      lambda echo: ensure_built(echo=echo), (ImpairmentError,))


if __name__ == "__main__":
    raise SystemExit(main())
