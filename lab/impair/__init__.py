"""Link impairments (delay, jitter, loss, rate, blackhole) that work on every kernel.

``make_driver`` returns a driver: ``netem`` (kernel qdiscs) where the kernel has
sch_netem, else ``userspace`` (one C emulator process per lab). Both create the
link, apply per-direction settings, change them at runtime and report counters.
"""

from lab.errors import ImpairmentError
from lab.impair.driver import ImpairmentDriver
from lab.impair.factory import DriverKind, make_driver
from lab.impair.model import (
    CLEAN,
    Counters,
    Direction,
    DirectionStatus,
    GilbertElliott,
    Impairment,
    LinkEnd,
    LinkRequest,
    LinkStatus,
    VethPair,
)
from lab.impair.netem import NetemDriver, netem_available
from lab.impair.userspace import UserspaceDriver

__all__ = [
    "CLEAN",
    "Counters",
    "Direction",
    "DirectionStatus",
    "DriverKind",
    "GilbertElliott",
    "Impairment",
    "ImpairmentDriver",
    "ImpairmentError",
    "LinkEnd",
    "LinkRequest",
    "LinkStatus",
    "NetemDriver",
    "UserspaceDriver",
    "VethPair",
    "make_driver",
    "netem_available",
]
