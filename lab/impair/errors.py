"""The one exception the impairment package raises for runtime failures."""

from __future__ import annotations


class ImpairmentError(Exception):
    """A link could not be created, changed, read or removed.

    Carries a human-readable message; lower-level errors are chained
    (`raise ImpairmentError(...) from exc`).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
