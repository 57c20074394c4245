"""What the shipped example workloads need on this machine: Debian's NSD for
topologies/dns-anycast.yaml, nginx for topologies/web-anycast.yaml, and dig to ask the DNS
lab from a client by hand. `make test` installs
them (``python -m lab.backend.example_tools``); `make demo` does not, and a user's own
workload brings its own programs.

Debian's packages start their daemon on installation only where an init system runs one;
here nothing does (the lab starts its own NSD in every pod), and ``ensure_tools`` checks that
no NSD was left listening on the machine.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from lab.backend.tooling import Progress, install_packages, setup_main
from lab.errors import BackendError

DEBIAN_PACKAGES = {"/usr/sbin/nsd": "nsd", "/usr/sbin/nginx": "nginx-light",
                   "/usr/bin/dig": "bind9-dnsutils"}
DAEMONS = ("nsd", "nginx")


def host_daemons(programs: Collection[str]) -> dict[str, list[int]]:
    """PIDs of each of ``programs`` running in this machine's own network namespace (none
    should: the labs' run in pods), in one pass over /proc."""
    own = Path("/proc/self/ns/net").readlink()
    found: dict[str, list[int]] = {program: [] for program in programs}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            program = (entry / "comm").read_text().strip()
            if program in found and (entry / "ns" / "net").readlink() == own:
                found[program].append(int(entry.name))
        except OSError:
            continue
    return found


def ensure_tools(progress: Progress) -> None:
    install_packages(DEBIAN_PACKAGES, progress)
    for daemon, started in host_daemons(DAEMONS).items():
        if started:
            raise BackendError(f"{daemon} runs on this machine itself (pids {started}), "
                               f"started by its package: stop it (`/etc/init.d/{daemon} "
                               "stop`); the labs run their own in their pods")


if __name__ == "__main__":
    raise SystemExit(setup_main("examples", ensure_tools,
                                lambda: ", ".join(sorted(DEBIAN_PACKAGES.values())),
                                label="example workloads"))
