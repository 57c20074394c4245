"""A node drain as the agent sees it: a small JSON file beside the agent's spec, written by the
``node-drain`` fault (as an operator's ``kubectl drain`` plus the speaker's node annotation).

While it exists the agent takes the node out of the fabric before anything stops:
- ``withdraw``: it withdraws every VIP (kube-router and MetalLB do this when a node is excluded
  from load balancers or loses its endpoints);
- ``gshut``: it announces the VIPs with the GRACEFUL_SHUTDOWN community 65535:0 (RFC 8326;
  FRR on the leaf sets local preference 0 for such routes, so other nodes win);
- ``prepend``: it announces them with its AS prepended ``prepend`` times (kube-router's
  ``kube-router.io/path-prepend.*`` node annotations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from lab.apps.agent.events import write_json_atomic
from lab.plan.model import DrainMethod

DRAIN_FILE = "drain.json"
GSHUT_COMMUNITY = "65535:0"
DRAIN_METHODS: tuple[DrainMethod, ...] = get_args(DrainMethod)


@dataclass(frozen=True)
class Drain:
    method: DrainMethod
    prepend: int = 3

    @property
    def keeps_announcing(self) -> bool:
        """gshut and prepend keep the VIPs announced, with attributes that make them lose."""
        return self.method != "withdraw"

    def describe(self) -> dict[str, object]:
        return {"method": self.method} | ({"prepend": self.prepend}
                                          if self.method == "prepend" else {})


def write_drain(path: Path, drain: Drain) -> None:
    write_json_atomic(path, drain.describe())


def read_drain(path: Path) -> Drain | None:
    """The drain asked for, or None (no file, or a file that does not say one)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("method") not in DRAIN_METHODS:
        return None
    prepend = document.get("prepend", 3)
    return Drain(document["method"], prepend if isinstance(prepend, int) and prepend > 0 else 3)
