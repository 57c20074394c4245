"""Compile the lab's C programs on demand: the link emulator (lab.impair.build), the UDP
prober (lab.measure.probe.build) and the pod server (lab.apps.server.build).

Each is one source file. The binary's name carries a hash of the source, the shared header
(lab/csrc/anylab.h) and the compiler flags, so a changed source builds a new binary and a
stale one is never used. It goes to ``$ANYLAB_BUILD_DIR`` if set, else ``.build/`` at the
project root (a source checkout), else ``~/.cache/anycast-lab``.

Standard library only (and small lab modules): the pod server's Python front imports this in
the containerlab images, which carry no third-party packages.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from lab.atomicfile import replace_file
from lab.errors import BuildError
from lab.places import project_folder

SHARED_HEADERS = Path(__file__).resolve().parent / "csrc"  # lab/csrc/anylab.h
CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-pipe")
LIBS = ("-lm",)
COMPILE_TIMEOUT_S = 120.0


def build_dir() -> Path:
    """Where compiled helpers are cached: ``$ANYLAB_BUILD_DIR``, ``.build/`` of a source
    checkout, or the user's cache."""
    return project_folder("ANYLAB_BUILD_DIR", ".build", "anycast-lab")


def compiler() -> str:
    found = shutil.which(os.environ.get("CC", "gcc"))
    if found is None:
        raise BuildError("no C compiler found (install gcc, or set CC)")
    return found


def binary_path(source: Path, out_dir: Path | None = None,
                extra: tuple[str, ...] = ()) -> Path:
    """The cache path for ``source`` built with the current flags."""
    digest = hashlib.sha256(source.read_bytes())
    for header in sorted(SHARED_HEADERS.glob("*.h")):
        digest.update(header.read_bytes())
    digest.update(" ".join(CFLAGS + LIBS + extra).encode())
    return (out_dir or build_dir()) / f"{source.stem}-{digest.hexdigest()[:12]}"


def gcc_command(source: Path, output: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [compiler(), *CFLAGS, "-I", str(SHARED_HEADERS), *extra, "-o", str(output),
            str(source), *LIBS]


def compile_c(source: Path, out_dir: Path | None = None, extra: tuple[str, ...] = (),
              echo: Callable[[str], None] | None = None) -> Path:
    """Build ``source`` (single file) into the cache unless an up-to-date binary is there.

    ``echo`` receives the gcc command line before it runs (as make prints rules).
    """
    target = binary_path(source, out_dir, extra)
    if target.is_file() and os.access(target, os.X_OK):
        return target

    def build(tmp: Path) -> None:  # beside the target: concurrent builders never see half
        cmd = gcc_command(source, tmp, extra)
        if echo is not None:
            echo(shlex.join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=COMPILE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"compiling {source.name} timed out") from exc
        if proc.returncode != 0:
            raise BuildError(
                f"compiling {source.name} failed ({shlex.join(cmd)}):\n{proc.stderr.strip()}"
            )

    return replace_file(target, build, mode=0o755, durable=False)


def build_main(argv: list[str] | None, module: str, source: Path,
               build: Callable[[Callable[[str], None]], Path],
               errors: tuple[type[Exception], ...]) -> int:
    """`python -m MODULE [--print-command]` for a C helper: build it, print its path."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--print-command"]:
        print(shlex.join(gcc_command(source, binary_path(source))))
        return 0
    if args:
        print(f"usage: python -m {module} [--print-command]", file=sys.stderr)
        return 2
    try:
        path = build(lambda command: print(command, file=sys.stderr))
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
