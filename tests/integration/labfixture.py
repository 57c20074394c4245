"""Fixtures for tests that build real labs: unique names, and removal even on failure."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab import labs
from lab.backend.names import lab_namespaces
from lab.backend.processes import tagged_pids


def unique_lab_name(prefix: str = "it") -> str:
    return f"{prefix}-{os.getpid() % 100000}-{secrets.token_hex(2)}"


@contextmanager
def running_lab(topology: Path, prefix: str = "it",
                timeout_s: float = 90.0) -> Iterator[labs.UpResult]:
    name = unique_lab_name(prefix)
    try:
        result = labs.up(topology, name, lambda _m: None, timeout_s=timeout_s)
        assert result.report.ready, result.report.explain()
        yield result
    finally:
        labs.down(name, force=True)
        assert lab_namespaces(name) == [], "namespaces left behind"
        assert tagged_pids(name) == [], "processes left behind"
