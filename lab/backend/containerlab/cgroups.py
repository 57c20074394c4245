"""The control groups of a container's processes, as this machine sees them (cgroup v1 and
v2): where a program started in a container joins them, and how a container is frozen."""

from __future__ import annotations

import re
import time
from pathlib import Path

from lab.errors import BackendError

FREEZE_TIMEOUT_S = 5.0
_CGROUP_LINE = re.compile(r"^\d+:([^:]*):(/.*)$")


def cgroup_procs(pid: int) -> list[Path]:
    """The ``cgroup.procs`` files of every control group of process ``pid``, v1 and v2."""
    return [folder / "cgroup.procs" for folder in cgroup_dirs(pid).values()
            if (folder / "cgroup.procs").exists()]


def set_frozen(pid: int, frozen: bool) -> None:
    """Freeze or thaw the control group of process ``pid`` (v1 freezer or v2) and wait until
    the kernel says it is done."""
    folders = cgroup_dirs(pid)
    if "freezer" in folders:
        control, wanted = folders["freezer"] / "freezer.state", "FROZEN" if frozen else "THAWED"
    elif "" in folders:
        control, wanted = folders[""] / "cgroup.freeze", "1" if frozen else "0"
    else:
        raise BackendError(f"process {pid} is in no freezer control group")
    try:
        control.write_text(wanted)
        deadline = time.monotonic() + FREEZE_TIMEOUT_S
        while control.read_text().strip() != wanted:
            if time.monotonic() > deadline:
                raise BackendError(f"{control} did not become {wanted}")
            time.sleep(0.0005)
    except OSError as exc:
        raise BackendError(f"cannot {'freeze' if frozen else 'thaw'} {control}: {exc}"
                           ) from exc


def cgroup_dirs(pid: int) -> dict[str, Path]:
    """Controller (its first name; "" for cgroup v2) -> the folder of process ``pid``'s
    control group in that hierarchy."""
    mounts: dict[str, Path] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            mounts[""] = Path(fields[1])
        elif fields[2] == "cgroup":
            options = set(fields[3].split(","))
            for option in options:
                mounts[option] = Path(fields[1])
    folders: dict[str, Path] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        match = _CGROUP_LINE.match(line)
        if not match:
            continue
        controllers, path = match.groups()
        first = controllers.split(",")[0]
        mount = mounts.get(first) if controllers else mounts.get("")
        if mount is not None:
            folders[first.removeprefix("name=")] = mount / path.lstrip("/")
    return folders
