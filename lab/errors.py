"""The exception tree of anycast-lab and the input-issue record used by every validator.

Library code raises; only ``lab.cli.main`` prints and chooses exit codes. The tree::

    LabError
    ├── InputError            a user's file is wrong (every issue, with file:line and hint)
    │   ├── TopologyError
    │   └── ScenarioError
    ├── BackendError          a lab could not be built, changed, inspected or removed
    │   └── RecorderError     the FIB recorder could not start or its output is unusable
    ├── CommandError          an external command failed (argv, exit code, output)
    ├── ImpairmentError       a link's delay/loss/rate could not be set or read
    ├── ProbeError            a prober could not be built, started or read
    ├── MetricsError          recorded data do not make the figures
    └── NamespaceError        a network namespace could not be opened or entered (an OSError too)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class InputIssue:
    """One problem found in a user's file: where it is, what is wrong, how to fix it."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""

    def format(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.path or '(document)'}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class LabError(Exception):
    """Base of every error anycast-lab raises on purpose."""


class InputError(LabError):
    """A user's file is wrong; carries every issue found, not just the first."""

    kind = "input"

    def __init__(self, issues: Sequence[InputIssue]) -> None:
        self.issues: tuple[InputIssue, ...] = tuple(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in {self.kind} input"
        super().__init__(head + "\n" + "\n".join(i.format() for i in self.issues))


class TopologyError(InputError):
    """A topology file does not parse or does not validate."""

    kind = "topology"


class ScenarioError(InputError):
    """A scenario file does not parse or does not validate."""

    kind = "scenario"


class BackendError(LabError):
    """A backend could not build, change or remove a lab."""


class CommandError(LabError):
    """An external command failed; carries everything needed to understand why."""

    def __init__(
        self, argv: Sequence[str], returncode: int | None, stdout: str = "", stderr: str = ""
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        detail = (stderr or stdout).strip()
        suffix = f": {detail}" if detail else ""
        super().__init__(f"command {' '.join(self.argv)!r} {status}{suffix}")


class RecorderError(BackendError):
    """The FIB recorder could not start, or its spec or output is unusable."""


class ImpairmentError(LabError):
    """A link could not be created, changed, read or removed by an impairment driver."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BuildError(LabError):
    """A C program of the lab could not be compiled (lab.cbuild)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProbeError(LabError):
    """A prober could not be built, started or read (message says which and why)."""


class MetricsError(LabError):
    """Recorded data cannot give the figures (missing columns, no events, ...)."""


class NamespaceError(LabError, OSError):
    """A network namespace could not be opened, entered or left. Also an OSError: the
    programs that run inside a lab treat it as the system failure it is."""
