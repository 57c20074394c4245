"""FRR and GoBGP daemons of one node: command lines, configuration, queries.

Each FRR router gets its own folder in the lab's state directory holding its configuration,
pid files, vty sockets (``--vty_socket``), the zebra API socket and microsecond logs; daemons
start with an empty configuration and the integrated ``frr.conf`` is then applied with vtysh,
as ``frr-reload`` would on a real box.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.backend.vty import vty_commands
from lab.errors import BackendError
from lab.proc import run

FRR_DAEMON_DIR = Path("/usr/lib/frr")
VTYSH = "/usr/bin/vtysh"
GOBGPD = "/usr/bin/gobgpd"
GOBGP = "/usr/bin/gobgp"
GOBGP_API = "127.0.0.1:50051"
VTYSH_TIMEOUT_S = 60.0  # a router's boot configuration on a saturated machine (a thousand speakers)
FRR_FD_LIMIT = 1024


@dataclass(frozen=True)
class NodeFiles:
    """Where a node's files live."""

    directory: Path

    @property
    def frr_conf(self) -> Path:
        return self.directory / "frr.conf"

    @property
    def boot_conf(self) -> Path:
        """What the router starts from (see lab.backend.bfdstart)."""
        return self.directory / "frr-boot.conf"

    @property
    def gobgpd_toml(self) -> Path:
        return self.directory / "gobgpd.toml"

    @property
    def gobgpd_restart_toml(self) -> Path:
        """gobgpd.toml with every session held down (a graceful restart's start)."""
        return self.directory / "gobgpd-restart.toml"

    @property
    def zserv_socket(self) -> Path:
        return self.directory / "zserv.api"

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def vty_socket(self, daemon: str) -> Path:
        return self.directory / f"{daemon}.vty"


def frr_daemon_argv(daemon: str, files: NodeFiles, config: Path | None = None) -> list[str]:
    """``config``: a file the daemon reads itself as it starts (by default it starts empty
    and vtysh loads its configuration, ``apply_frr_config``)."""
    folder = files.directory
    argv = [str(FRR_DAEMON_DIR / daemon),
            # root with the vty group: FRR refuses a user outside its vty group
            "-u", "root", "-g", "frrvty",
            "-A", "127.0.0.1", "-P", "0",
            "-i", str(folder / f"{daemon}.pid"),
            "-z", str(folder / "zserv.api"),
            "--vty_socket", str(folder),
            "--log", f"file:{files.log(daemon)}",
            "-f", str(config or "/dev/null"),
            # FRR sizes its event loops' tables by the fd limit (20000 here): ~1.9 MB per
            # daemon that a node's few dozen sessions never use
            "--limit-fds", str(FRR_FD_LIMIT)]
    if daemon == "zebra":
        argv += ["-s", "90000000"]  # netlink receive buffer for large route bursts
    if daemon == "bfdd":
        argv += ["--bfdctl", str(folder / "bfdd.sock")]
    return argv


def gobgpd_argv(files: NodeFiles, restarting: bool = False) -> list[str]:
    """gobgpd's command line; ``restarting`` (-r) sets the Restart State and Forwarding State
    bits of its graceful-restart capability, so that its peers keep its stale routes until it
    has sent them again, and starts it from ``gobgpd_restart_toml`` (sessions held down)."""
    config = files.gobgpd_restart_toml if restarting else files.gobgpd_toml
    return [GOBGPD, "-f", str(config), "-t", "toml", "--api-hosts", GOBGP_API,
            "-p", "--log-level", "info", "--pprof-disable", *(["-r"] if restarting else [])]


def vtysh_argv(files: NodeFiles, *commands: str) -> list[str]:
    argv = [VTYSH, "--vty_socket", str(files.directory)]
    for command in commands:
        argv += ["-c", command]
    return argv


def wait_for_sockets(paths: list[Path], timeout_s: float) -> list[Path]:
    """Wait until every path exists; returns the ones still missing."""
    deadline = time.monotonic() + timeout_s
    missing = [p for p in paths if not p.exists()]
    while missing and time.monotonic() < deadline:
        time.sleep(0.02)
        missing = [p for p in missing if not p.exists()]
    return missing


def apply_frr_config(files: NodeFiles, path: Path | None = None) -> None:
    """Load the integrated configuration (or ``path``) into the running daemons."""
    path = path or files.frr_conf
    result = run([VTYSH, "--vty_socket", str(files.directory), "-f", str(path)],
                 timeout=VTYSH_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise BackendError(f"FRR refused the configuration in {path}: "
                           f"{(result.stdout + result.stderr).strip()[-800:]}")


def daemon_json(files: NodeFiles, daemon: str, command: str) -> Any:
    """A show command's JSON, straight from one daemon's vty socket (see lab.backend.vty)."""
    # vtysh works in enable mode; some daemons (bfdd) have their show commands only there
    output = vty_commands(files.vty_socket(daemon), ["enable", command])[1]
    try:
        return json.loads(output or "{}")
    except ValueError as exc:
        raise BackendError(f"{daemon} in {files.directory}: {command!r}: {exc}") from exc


def bgp_summaries(files: NodeFiles) -> dict[str, dict[str, Any]]:
    """Address family (``ipv4Unicast``, ``ipv6Unicast``) -> bgpd's summary of it: one query
    for both families (a family appears once a peer is active in it)."""
    data = daemon_json(files, "bgpd", "show bgp summary json")
    if not isinstance(data, dict):
        return {}
    return {family: summary for family, summary in data.items() if isinstance(summary, dict)}


def _peers(files: NodeFiles) -> dict[str, dict[str, Any]]:
    """Peer address -> its summary entry, over every family."""
    return {address: info for summary in bgp_summaries(files).values()
            for address, info in summary.get("peers", {}).items()}


def bgp_peer_uptimes_ms(files: NodeFiles) -> dict[str, int | None]:
    """Peer address -> milliseconds the session has been Established (None when it is not)."""
    return {address: int(info.get("peerUptimeMsec", 0)) if info.get("state") == "Established"
            else None for address, info in _peers(files).items()}


def bgp_peer_states(files: NodeFiles) -> dict[str, str]:
    """Peer address -> BGP state, as the router's bgpd sees it."""
    return {address: str(info.get("state", "?")) for address, info in _peers(files).items()}
