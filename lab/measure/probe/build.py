"""Compile the C UDP prober on demand (the same cache and rules as the link emulator).

``python -m lab.measure.probe.build`` builds if needed (echoing the gcc command on stderr) and
prints the binary's path on stdout; ``--print-command`` prints the gcc command only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lab.cbuild import build_main, compile_c
from lab.errors import BuildError, ProbeError

PROBER_SOURCE = Path(__file__).resolve().parent / "csrc" / "prober.c"


def ensure_prober_built(echo: Callable[[str], None] | None = None,
                        out_dir: Path | None = None) -> Path:
    """Path of an up-to-date prober binary, compiling it if needed."""
    try:
        return compile_c(PROBER_SOURCE, out_dir, echo=echo)
    except BuildError as exc:
        raise ProbeError(f"cannot build the prober: {exc.message}") from exc


def main(argv: list[str] | None = None) -> int:
    return build_main(argv, "lab.measure.probe.build", PROBER_SOURCE,
                      lambda echo: ensure_prober_built(echo=echo), (ProbeError,))


if __name__ == "__main__":
    raise SystemExit(main())
