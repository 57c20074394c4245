"""Where the project keeps what it builds or installs for itself on this machine."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def project_folder(env_variable: str, in_checkout: str, in_cache: str) -> Path:
    """``$env_variable`` when set; else ``in_checkout`` at the root of a writable source
    checkout; else ``in_cache`` in the user's cache."""
    env = os.environ.get(env_variable)
    if env:
        return Path(env)
    if (REPO_ROOT / "pyproject.toml").is_file() and os.access(REPO_ROOT, os.W_OK):
        return REPO_ROOT / in_checkout
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / in_cache
