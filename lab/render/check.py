"""Check rendered configurations with the daemons' own checkers.

FRR: ``vtysh --dryrun -f FILE`` (exit 2 and the offending lines on error; ``bgpd -C`` exits 0
even on unknown commands, so it is not used). GoBGP: ``gobgpd --dry-run -f FILE``. nftables:
``nft -c -f FILE`` inside a throw-away network namespace (``unshare -n``), never against the
host's ruleset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lab.errors import CommandError
from lab.proc import run, which
from lab.render.configs import RenderedLab

CHECK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CheckResult:
    node: str
    file: str
    checker: str
    ok: bool
    output: str


def available_checkers() -> dict[str, list[str] | None]:
    """checker name -> argv prefix, or None when the tool is missing (or needs root)."""
    vtysh = which("vtysh")
    gobgpd = which("gobgpd")
    nft = which("nft", ["/usr/sbin", "/sbin"])
    unshare = which("unshare", ["/usr/bin"])
    root = os.geteuid() == 0
    return {
        "frr.conf": [vtysh, "--dryrun", "-f"] if vtysh else None,
        "gobgpd.toml": [gobgpd, "--dry-run", "-f"] if gobgpd else None,
        "service-proxy.nft": [unshare, "-n", nft, "-c", "-f"] if nft and unshare and root
        else None,
    }


def check_rendered_dir(rendered: RenderedLab, folder: Path) -> list[CheckResult]:
    """Check every file that has a checker; ``folder`` holds the files (RenderedLab.write)."""
    checkers = available_checkers()
    results = []
    for node, files in sorted(rendered.files.items()):
        for name in sorted(files):
            prefix = checkers.get(name)
            if prefix is None:
                continue
            argv = [*prefix, str(folder / node / name)]
            try:
                done = run(argv, timeout=CHECK_TIMEOUT_S, check=False)
                ok = done.returncode == 0
                output = (done.stdout + done.stderr).strip()
            except CommandError as exc:
                ok, output = False, str(exc)
            results.append(CheckResult(node, name, Path(prefix[0]).name, ok, output))
    return results
