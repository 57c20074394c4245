"""Control-plane recorder: FIB changes of service prefixes in every router namespace
(netlink), and BGP/BFD session events from FRR's logs, on CLOCK_MONOTONIC.

``start_recorder``, ``wait_ready`` and ``load_routes`` live in ``lab.measure.recorder.fib`` and are
loaded on first use, so the recorder process itself stays free of pandas and the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.errors import RecorderError
from lab.measure.recorder.frrlog import ClockPair, parse_frr_logs, read_clock_pair
from lab.measure.recorder.spec import RecorderSpec, RouterNamespace

if TYPE_CHECKING:
    from lab.measure.recorder.fib import ROUTE_COLUMNS, load_routes, start_recorder, wait_ready

__all__ = [
    "ROUTE_COLUMNS",
    "ClockPair",
    "RecorderError",
    "RecorderSpec",
    "RouterNamespace",
    "load_routes",
    "parse_frr_logs",
    "read_clock_pair",
    "start_recorder",
    "wait_ready",
]

_LAZY = {"ROUTE_COLUMNS", "load_routes", "start_recorder", "wait_ready"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from lab.measure.recorder import fib

        return getattr(fib, name)
    raise AttributeError(f"module 'lab.measure.recorder' has no attribute {name!r}")
