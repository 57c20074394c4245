"""Start, find and stop the link emulator process of a lab.

The emulator daemonizes (it outlives the process that started it, like the lab)
and is tagged ANYLAB_LAB=<lab>. It exits on ``quit``, SIGTERM, or when its
lifetime file in the state directory disappears; with ``tie_to_process`` it
also exits when the starting process dies. Stopping is done through a pidfd
taken after checking the process's tag, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
from pathlib import Path

from lab.errors import ImpairmentError
from lab.netns import netns_path

TAG = "ANYLAB_LAB"
COMM_PREFIX = "linkemu"
START_TIMEOUT_S = 5.0
_LAB_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_lab_name(lab: str) -> str:
    if not _LAB_NAME.fullmatch(lab):
        raise ImpairmentError(f"bad lab name {lab!r}: 1-64 characters of A-Z a-z 0-9 _ . -")
    return lab


def _tag_of(pid: int) -> str | None:
    """The ANYLAB_LAB value of a linkemu process, None for any other process."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    if not comm.startswith(COMM_PREFIX):
        return None
    for item in environ.split(b"\0"):
        if item.startswith(f"{TAG}=".encode()):
            return item[len(TAG) + 1:].decode(errors="replace")
    return None


def emulator_pids(lab: str) -> list[int]:
    """Pids of running emulators tagged with ``lab`` (for checks and forced cleanup)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _tag_of(int(entry.name)) == lab:
            pids.append(int(entry.name))
    return sorted(pids)


def wait_gone(pidfd: int, timeout: float) -> bool:
    """True once the process behind ``pidfd`` has exited (within ``timeout``)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def stop_pid(pid: int, lab: str, grace_s: float = 2.0, first_wait_s: float = 0.0) -> None:
    """Stop the emulator ``pid`` of ``lab``: wait ``first_wait_s`` for it to exit
    by itself, then SIGTERM, then SIGKILL. No-op if it is gone."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if wait_gone(pidfd, first_wait_s):
            return
        if _tag_of(pid) != lab:  # checked after pidfd_open: the pid cannot be recycled now
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if wait_gone(pidfd, 0):
                return
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, sig)
            if wait_gone(pidfd, grace_s):
                return
        raise ImpairmentError(f"emulator {pid} did not exit after SIGKILL")
    finally:
        os.close(pidfd)


class EmulatorFiles:
    """Where one lab's emulator keeps its socket, pid, lifetime file and log."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.control = directory / "linkemu.sock"
        self.pidfile = directory / "linkemu.pid"
        self.lifefile = directory / "linkemu.alive"
        self.log = directory / "linkemu.log"

    def read_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        for path in (self.control, self.pidfile, self.lifefile):
            path.unlink(missing_ok=True)


def spawn(binary: Path, lab: str, files: EmulatorFiles, hidden_netns: str,
          life_fd: int | None = None, rt_priority: int = 0) -> int:
    """Start a daemonized emulator in ``hidden_netns``; returns its pid once it listens.

    ``rt_priority`` > 0 asks for SCHED_FIFO (best effort: refused, it runs as a
    normal task and says so in its log).
    """
    files.dir.mkdir(parents=True, exist_ok=True)
    files.clear()
    files.lifefile.touch()
    ready_r, ready_w = os.pipe()
    args = [str(binary), "--control", str(files.control),
            "--netns", str(netns_path(hidden_netns)), "--life-file", str(files.lifefile),
            "--ready-fd", str(ready_w), "--daemon"]
    pass_fds = [ready_w]
    if rt_priority > 0:
        args += ["--rt-priority", str(rt_priority)]
    if life_fd is not None:
        args += ["--life-fd", str(life_fd)]
        pass_fds.append(life_fd)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), TAG: lab}
    try:
        with files.log.open("ab") as log:
            first = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=log, pass_fds=pass_fds, timeout=START_TIMEOUT_S,
                                   check=False)
        os.close(ready_w)
        ready_w = -1
        if first.returncode != 0:
            raise ImpairmentError(f"emulator failed to start: {_log_tail(files.log)}")
        pid = _read_ready(ready_r, files.log)
    except subprocess.TimeoutExpired as exc:
        raise ImpairmentError("emulator did not detach in time") from exc
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
    files.pidfile.write_text(f"{pid}\n")
    return pid


def _read_ready(fd: int, log: Path) -> int:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    line = b""
    while not line.endswith(b"\n"):
        if not poller.poll(int(START_TIMEOUT_S * 1000)):
            raise ImpairmentError("emulator did not report ready in time")
        chunk = os.read(fd, 64)
        if not chunk:
            raise ImpairmentError(f"emulator exited during start: {_log_tail(log)}")
        line += chunk
    match = re.fullmatch(rb"ready (\d+)\n", line)
    if not match:
        raise ImpairmentError(f"emulator sent {line!r} instead of ready")
    return int(match.group(1))


def _log_tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
