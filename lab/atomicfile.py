"""Writing a file so that a reader sees the old file or the new one, never half of one: the
content goes to a temporary file beside it, which is renamed over it.

``durable`` also flushes the file (and the rename, in its folder) to the disk before
returning, for files that must survive a crash of the machine (lab state, run directories);
files rewritten many times a second on a tmpfs (an agent's status) skip it.
Standard library only: the programs inside a lab use it too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

PRIVATE = 0o600  # the lab's files are for root only
FOLDER_MODE = 0o700


def replace_file(path: Path, write: Callable[[Path], object], *, mode: int = PRIVATE,
                 durable: bool = True) -> Path:
    """Replace ``path`` with what ``write`` puts in a temporary file (given its path), with
    ``mode``. The folder is created (for root only) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(mode)
        if durable:
            _fsync(tmp, os.O_RDONLY)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return path


def write_atomic(path: Path, content: str | bytes, *, mode: int = PRIVATE,
                 durable: bool = True) -> Path:
    """Replace ``path`` with ``content`` (text is written as UTF-8)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return replace_file(path, lambda tmp: tmp.write_bytes(data), mode=mode, durable=durable)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder
            os.fsync(fd)
    finally:
        os.close(fd)
