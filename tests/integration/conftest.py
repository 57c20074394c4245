"""Fixtures of the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.backend.evidence import EVIDENCE_VARIABLE


@pytest.fixture
def evidence_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a test's deliberately failing labs keep their evidence (the test's own folder,
    not the machine's /var/tmp/anylab/evidence, where it would outlive the test)."""
    root = tmp_path / "evidence"
    monkeypatch.setenv(EVIDENCE_VARIABLE, str(root))
    return root
