"""What backends set up on this machine on first use: Debian packages, and the project's own
tool folder (built tools, links to system modules)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from lab.errors import BackendError, CommandError
from lab.places import project_folder
from lab.proc import run

Progress = Callable[[str], None]
APT_TIMEOUT_S = 900.0


def tools_dir() -> Path:
    """The project's own tool folder: ``$ANYLAB_TOOLS_DIR``, else ``.tools/`` at the root of
    a source checkout, else the user's cache."""
    return project_folder("ANYLAB_TOOLS_DIR", ".tools", "anycast-lab-tools")


def setup_main(backend: str, ensure_tools: Callable[[Progress], None],
               ready: Callable[[], str], label: str | None = None) -> int:
    """``python -m lab.backend.NAME.tools``: set a backend up, saying what is done (what
    `make test` runs before the tests that cover the backend); 1 with the reason on failure.
    ``label`` names what is set up when it is not a backend."""
    name = label or f"{backend} backend"
    try:
        ensure_tools(lambda message: print(f"{name}: {message}", flush=True))
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{name}: ready ({ready()})")
    return 0


def missing_packages(packages: Mapping[str, str]) -> list[str]:
    """The Debian packages (values) whose file (keys) is missing."""
    return sorted({pkg for path, pkg in packages.items() if not Path(path).exists()})


def install_packages(packages: Mapping[str, str], progress: Progress) -> None:
    """Install the Debian packages of ``packages`` (file -> package) whose file is missing."""
    missing = missing_packages(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        raise BackendError(f"missing Debian packages {', '.join(missing)}; run as root")
    progress(f"installing {', '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            timeout=APT_TIMEOUT_S, env=env)
    except CommandError as exc:
        raise BackendError(f"cannot install {', '.join(missing)}: {exc}") from exc
