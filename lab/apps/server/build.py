"""Compile the C pod server on demand (the same cache and rules as the link emulator).

``python -m lab.apps.server.build`` builds if needed (echoing the gcc command on stderr) and
prints the binary's path on stdout; ``--print-command`` prints the gcc command only.
``$ANYLAB_PODSERVER`` names a binary to use instead (the containerlab images carry one).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from lab.cbuild import build_main, compile_c
from lab.errors import BackendError, BuildError

SERVER_SOURCE = Path(__file__).resolve().parent / "csrc" / "podserver.c"
BINARY_VARIABLE = "ANYLAB_PODSERVER"


def ensure_server_built(echo: Callable[[str], None] | None = None,
                        out_dir: Path | None = None) -> Path:
    """Path of an up-to-date pod server binary, compiling it if needed."""
    try:
        return compile_c(SERVER_SOURCE, out_dir, echo=echo)
    except BuildError as exc:
        raise BackendError(f"cannot build the pod server: {exc.message}") from exc


@functools.cache
def server_binary() -> Path:
    """The binary pods run: ``$ANYLAB_PODSERVER``, else this checkout's build (made once
    per process: a launcher builds it before it forks the servers)."""
    given = os.environ.get(BINARY_VARIABLE)
    return Path(given) if given else ensure_server_built()


def main(argv: list[str] | None = None) -> int:
    return build_main(argv, "lab.apps.server.build", SERVER_SOURCE,
                      lambda echo: ensure_server_built(echo=echo), (BackendError,))


if __name__ == "__main__":
    raise SystemExit(main())
