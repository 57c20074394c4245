"""Memory merging: a lab's processes share the pages they fill alike (``up --merge-memory``).

Every FRR daemon builds the same command graph and loads the same YANG modules at start:
about 6 MB of bgpd's 10, most of zebra's 5, identical from one router to the next but for
the addresses in them, which address randomisation makes differ. Started through
``mergeexec`` (csrc/mergeexec.c: KSM for all its anonymous memory, no address
randomisation), those pages are byte for byte the same, and the kernel's same-page merging
(ksmd) keeps one copy: the reference lab's routers went from 18.8 to 6.2 MB of PSS each
within 10 s (docs/benchmarks.md, "A router's memory floor").

KSM is the machine's: ``/sys/kernel/mm/ksm/run`` starts ksmd for every process that asked
for merging, and ``pages_to_scan`` sets how fast it scans (here 1,000 pages per 20 ms:
about 12 % of a core while it works, the reference lab merged in 10 s). The first merging
lab records what it found in ``RECORD`` and sets both; when the last merging lab goes,
the recorded values come back. Merged pages cost a copy when written, so a daemon's
memory grows back as its tables change; nothing else changes for the lab's processes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from lab.atomicfile import write_atomic
from lab.backend.names import state_root
from lab.backend.state import LabState
from lab.cbuild import compile_c
from lab.errors import BackendError, BuildError

KSM = Path("/sys/kernel/mm/ksm")
SOURCE = Path(__file__).resolve().parent / "csrc" / "mergeexec.c"
RECORD = "ksm.json"  # in the state root: the settings the first merging lab found
PAGES_TO_SCAN = 1000
SETTINGS = ("run", "pages_to_scan")


@functools.cache
def mergeexec_binary() -> Path:
    try:
        return compile_c(SOURCE)
    except BuildError as exc:
        raise BackendError(f"cannot build mergeexec: {exc.message}") from exc


def merging_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` started with its memory offered for merging."""
    return [str(mergeexec_binary()), *argv]


def merged(state: LabState, argv: Sequence[str]) -> list[str]:
    """``argv``, through mergeexec when the lab merges memory."""
    return merging_argv(argv) if state.merge_memory else list(argv)


def check_supported(ksm: Path = KSM) -> None:
    """Raise BackendError, with what to do, when this machine cannot merge."""
    if not (ksm / "run").exists():
        raise BackendError("--merge-memory needs the kernel's same-page merging "
                           f"(CONFIG_KSM; {ksm} is missing); start the lab without it")
    if not (Path("/proc/self") / "ksm_stat").exists():
        raise BackendError("--merge-memory needs Linux 6.4 or later (PR_SET_MEMORY_MERGE); "
                           "start the lab without it")


def start_ksm(ksm: Path = KSM, root: Path | None = None) -> None:
    """ksmd on at ``PAGES_TO_SCAN``; the values found kept for ``release_ksm`` (once)."""
    check_supported(ksm)
    record = (root or state_root()) / RECORD
    if not record.exists():
        found = {name: (ksm / name).read_text().strip() for name in SETTINGS}
        record.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(record, json.dumps(found))
    try:
        (ksm / "pages_to_scan").write_text(str(PAGES_TO_SCAN))
        (ksm / "run").write_text("1")
    except OSError as exc:
        raise BackendError(f"cannot start the kernel's same-page merging: {exc} "
                           "(it needs root)") from exc


def release_ksm(merging_labs: Iterable[str], ksm: Path = KSM,
                root: Path | None = None) -> bool:
    """Put back the settings the first merging lab found, unless a lab still merges;
    whether they were put back."""
    record = (root or state_root()) / RECORD
    if not record.exists() or any(True for _ in merging_labs):  # read lazily: rarely needed
        return False
    found = json.loads(record.read_text())
    for name in SETTINGS:  # pages_to_scan first: run last, as it was
        if name in found:
            (ksm / name).write_text(str(found[name]))
    record.unlink()
    return True


__all__ = ["KSM", "PAGES_TO_SCAN", "check_supported", "merged", "merging_argv", "release_ksm",
           "start_ksm"]
