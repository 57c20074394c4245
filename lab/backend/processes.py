"""Processes of a lab: started with the lab's tag, found by PID or tag, stopped precisely
(never by name). Where a process runs (which node) is the backend's business: it hands
``launch`` the full command (``Backend.spawn``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from lab.backend.names import TAG_VARIABLE, tag_environment
from lab.backend.state import PRIVATE_UMASK, ProcessRecord
from lab.errors import BackendError

# Starts a command where it must run (a node, or the machine), tagged with the lab, its output
# appended to the log: what the measurement programs are given (Backend.spawn with the place
# and kind filled in), so that they know nothing of where nodes live.
Spawn = Callable[[Sequence[str], Path], ProcessRecord]
# Popen objects of processes this Python process started, so they can be reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command's name (state, parent, ...: field 3 of
    proc(5) is the first); None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the name is in parentheses and may hold spaces and parentheses itself
    return stat[stat.rindex(")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot; None if gone or a zombie."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    child = _CHILDREN.get(record.pid)
    if child is not None and child.poll() is not None:  # ours and ended: reap the zombie
        del _CHILDREN[record.pid]
    return start_ticks(record.pid) == record.start_ticks


def launch(lab: str, node: str, kind: str, argv: Sequence[str], log_path: Path,
           extra_env: dict[str, str] | None = None,
           cgroup_procs: Sequence[Path] = ()) -> ProcessRecord:
    """Start ``argv`` as it is, tagged with the lab (and the node it belongs to), its output
    appended to ``log_path``; in a session of its own, with the lab's private umask; in the
    control groups whose ``cgroup.procs`` files are given (a container's), from its start."""
    env = tag_environment(lab, node)
    env.update(extra_env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                close_fds=True, umask=PRIVATE_UMASK,
                                preexec_fn=_joiner(cgroup_procs) if cgroup_procs else None)
    except OSError as exc:
        raise BackendError(f"cannot start {kind} for {node}: {exc}") from exc
    finally:
        os.close(fd)
    _CHILDREN[proc.pid] = proc
    ticks = start_ticks(proc.pid)
    return ProcessRecord(proc.pid, node, kind, ticks if ticks is not None else -1)


def _joiner(cgroup_procs: Sequence[Path]) -> Callable[[], None]:
    """Runs in the child between fork and exec: only raw writes, no locks taken."""
    paths = [str(p).encode() for p in cgroup_procs]

    def join() -> None:
        pid = str(os.getpid()).encode()
        for path in paths:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    return join


def tagged_pids(lab: str) -> list[int]:
    """PIDs whose environment carries this lab's tag (exact match)."""
    needle = f"{TAG_VARIABLE}={lab}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return sorted(found)


def _reap() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_pids(pids: Sequence[int], grace_s: float = 1.0) -> list[int]:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; returns the PIDs that had to be killed."""
    alive = [p for p in pids if start_ticks(p) is not None]
    _signal(alive, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        _reap()
        alive = [p for p in alive if start_ticks(p) is not None]
    _signal(alive, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(start_ticks(p) is not None for p in alive):
        time.sleep(0.01)
        _reap()
    _reap()  # those that ended after the last look are zombies until polled
    return alive


def stop_records(records: Sequence[ProcessRecord], grace_s: float = 1.0) -> list[int]:
    """Stop the recorded processes that are still ours (a reused PID is left alone)."""
    return stop_pids([r.pid for r in records if is_alive(r)], grace_s)


def stop_lab_processes(lab: str, records: Sequence[ProcessRecord],
                       grace_s: float = 0.3, passes: int = 3) -> tuple[int, int]:
    """Stop a lab's processes being removed: the recorded ones, then those with the lab's tag
    (an interrupted up, children started during a grace period), a few passes until none is
    left. Returns (processes found running, processes that had to be killed)."""
    running = [r.pid for r in records if is_alive(r)]  # a reused PID is left alone
    found = set(running) | set(tagged_pids(lab))
    killed = stop_pids(running, grace_s=grace_s)
    for _ in range(passes):
        left = tagged_pids(lab)
        if not left:
            break
        found |= set(left)
        killed += stop_pids(left, grace_s=grace_s)
    return len(found), len(killed)
