"""The exception the probe package raises for runtime failures."""

from __future__ import annotations

from lab.errors import LabError


class ProbeError(LabError):
    """A prober could not be built, started or read (message says which and why)."""
