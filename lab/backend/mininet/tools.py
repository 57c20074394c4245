"""What the Mininet backend needs on this machine, set up on first use: Debian's ``mininet``
package (2.3.0), and its Python module made importable by the project's Python.

Why Debian's package and not PyPI's: Debian ships the 2.3.0 release with ``mnexec``, the small
C program Mininet starts every host with (a shell in a new network namespace); PyPI has only
a 2.3.0 development snapshot (2.3.0.dev6) and no ``mnexec``, which would have to be built from
Mininet's source. Open vSwitch, which Debian only recommends, is not installed: the lab's
Mininet hosts are wired to each other directly and need no switch.

The package installs its module for the system Python (``/usr/lib/python3/dist-packages``).
The project may run another Python 3 (its venv); the module is pure Python and needs only the
standard library, so the project's Python imports it from a folder of the tool folder that
holds nothing but a link to it (the rest of the system's packages stay out of its way).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lab.backend.tooling import Progress, install_packages, setup_main, tools_dir
from lab.errors import BackendError

MNEXEC = "/usr/bin/mnexec"
SYSTEM_MODULE = Path("/usr/lib/python3/dist-packages/mininet")
DEBIAN_PACKAGES = {MNEXEC: "mininet", str(SYSTEM_MODULE / "net.py"): "mininet",
                   "/usr/sbin/ifconfig": "net-tools"}
VERSION = "2.3.0"  # what Debian 12 ships; the backend relies on its Host and Link


def module_folder() -> Path:
    """The folder that holds only a link to the system's Mininet module."""
    return tools_dir() / "python-mininet"


def link_module() -> Path:
    folder = module_folder()
    link = folder / "mininet"
    if link.is_symlink() and link.resolve() == SYSTEM_MODULE.resolve():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "mininet.tmp"
    partial.unlink(missing_ok=True)
    partial.symlink_to(SYSTEM_MODULE)
    partial.rename(link)
    return folder


def ensure_tools(progress: Progress) -> None:
    """Debian's mininet (with ``mnexec``) and the link that makes its module importable."""
    install_packages(DEBIAN_PACKAGES, progress)
    import_mininet()


def import_mininet() -> str:
    """Make ``import mininet`` work in this process; Mininet's version."""
    if not SYSTEM_MODULE.is_dir():
        raise BackendError("Mininet is not installed: `anylab up --backend mininet` installs "
                           "Debian's package (as root), or `apt-get install mininet`")
    folder = str(link_module())
    if folder not in sys.path:
        sys.path.append(folder)
    try:
        import mininet.net
    except ImportError as exc:
        raise BackendError(f"cannot import Mininet from {SYSTEM_MODULE}: {exc}") from exc
    version = str(mininet.net.VERSION)
    if version != VERSION:
        raise BackendError(f"Mininet {version} found; the backend is made for {VERSION}")
    return version


if __name__ == "__main__":
    raise SystemExit(setup_main("mininet", ensure_tools, lambda: f"Mininet {VERSION}, {MNEXEC}"))
