"""Remove a Mininet lab: its processes (by recorded PID, then by the lab's tag: the daemons, the
network's keeper and every host's shell carry it) and its state directory. A host's namespace,
and the links in it, end with its last process, so nothing else is left to delete and nothing
is searched for by a broad name (no ``mn -c``). Idempotent; ``force`` works without a
readable state file."""

from __future__ import annotations

import shutil
from pathlib import Path

from lab.backend.mininet.network import read_hosts
from lab.backend.names import TAG_VARIABLE, lab_dir
from lab.backend.processes import stop_lab_processes, tagged_pids
from lab.backend.protocol import TeardownReport
from lab.backend.state import mark_destroying

STOP_GRACE_S = 0.3
KEEPER_MODULE = b"lab.backend.mininet.keeper"


def destroy(lab: str, force: bool = False) -> TeardownReport:
    from lab.backend.mininet.backend import hosts_file

    directory = lab_dir(lab)
    records = mark_destroying(lab, force)
    hosts = read_hosts(hosts_file(lab))
    pids = tagged_pids(lab)
    report = TeardownReport(lab, existed=bool(directory.exists() or pids), units="hosts")
    if not report.existed:
        return report
    report.processes, report.killed = stop_lab_processes(lab, records, STOP_GRACE_S)
    report.namespaces = len(hosts)
    shutil.rmtree(directory, ignore_errors=True)
    report.leftovers = [f"host {name} (shell {shell.pid})" for name, shell in hosts.items()
                        if shell.alive()]
    report.leftovers += [f"process {p}" for p in tagged_pids(lab)]
    if directory.exists():
        report.leftovers.append(f"directory {directory}")
    return report


def keeper_labs() -> list[str]:
    """Labs whose network keeper runs on this machine (also those without a state)."""
    labs: set[str] = set()
    prefix = f"{TAG_VARIABLE}=".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if KEEPER_MODULE not in (entry / "cmdline").read_bytes():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        labs.update(item[len(prefix):].decode(errors="replace") for item in environ
                    if item.startswith(prefix))
    return sorted(labs)
