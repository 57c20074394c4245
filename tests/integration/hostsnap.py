"""A snapshot of the host network namespace, to prove a lab never changes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

SYSCTL_ROOT = Path("/proc/sys/net")
VOLATILE_SYSCTLS = ("netfilter/nf_conntrack_count",)


def _run(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                          check=False).stdout


def _sysctls() -> dict[str, str]:
    values = {}
    for path in sorted(SYSCTL_ROOT.rglob("*")):
        key = str(path.relative_to(SYSCTL_ROOT))
        if not path.is_file() or key.endswith(VOLATILE_SYSCTLS) or "/stable_secret" in key:
            continue
        try:
            values[key] = path.read_text().strip()
        except OSError:
            continue
    return values


def _listeners() -> list[str]:
    lines = _run("ss", "-H", "-ltnuwp").splitlines()
    return sorted(" ".join(line.split()[:5]) for line in lines)


def host_snapshot() -> dict[str, object]:
    return {
        "links": _run("ip", "-o", "link", "show"),
        "addresses": _run("ip", "-o", "address", "show"),
        "routes": _run("ip", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "nftables": _run("nft", "list", "ruleset"),
        "sysctls": _sysctls(),
        "listeners": _listeners(),
    }


def snapshot_diff(before: dict[str, object], after: dict[str, object]) -> list[str]:
    changed = []
    for key in before:
        if before[key] == after[key]:
            continue
        if isinstance(before[key], dict) and isinstance(after[key], dict):
            b, a = before[key], after[key]
            keys = sorted({*b, *a})
            changed += [f"{key}: {k}: {b.get(k)!r} -> {a.get(k)!r}" for k in keys
                        if b.get(k) != a.get(k)]
        else:
            changed.append(f"{key} changed")
    return changed
