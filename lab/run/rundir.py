"""The run directory: written under a hidden ``.NAME.partial`` name, every file replaced
atomically, renamed to its final name when the run ends (complete or not).

See docs/run-format.md for the files and their columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lab.atomicfile import replace_file


class RunDirectory:
    def __init__(self, runs_root: Path, scenario: str, started: datetime | None = None) -> None:
        stamp = (started or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        runs_root.mkdir(parents=True, exist_ok=True)
        name = f"{stamp}-{scenario}"
        suffix = 1
        while (runs_root / name).exists() or (runs_root / f".{name}.partial").exists():
            suffix += 1
            name = f"{stamp}-{scenario}-{suffix}"
        self.name = name
        self.final = runs_root / name
        self.path = runs_root / f".{name}.partial"
        self.path.mkdir()
        self.scratch = self.path / "scratch"  # raw recordings; removed when finalised
        self.scratch.mkdir()

    def _replace(self, name: str, write: Callable[[Path], object]) -> Path:
        return replace_file(self.path / name, write)

    def write_json(self, name: str, data: Any) -> Path:
        text = json.dumps(data, indent=1, sort_keys=False, default=str) + "\n"
        return self._replace(name, lambda p: p.write_text(text, encoding="utf-8"))

    def write_jsonl(self, name: str, rows: list[dict[str, Any]]) -> Path:
        text = "".join(json.dumps(row, separators=(",", ":"), default=str) + "\n"
                       for row in rows)
        return self._replace(name, lambda p: p.write_text(text, encoding="utf-8"))

    def write_parquet(self, name: str, frame: pd.DataFrame) -> Path:
        return self._replace(name, lambda p: frame.to_parquet(p, index=False))

    def finalize(self, keep_scratch: bool = False) -> Path:
        if not keep_scratch:
            for item in sorted(self.scratch.rglob("*"), reverse=True):
                item.rmdir() if item.is_dir() else item.unlink()
            self.scratch.rmdir()
        self.path.rename(self.final)
        self.path = self.final
        return self.final
