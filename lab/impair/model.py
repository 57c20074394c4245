"""Typed values of the impairment API: what a link direction does, and what it did.

Semantics are the same for every driver:
- delay_ms is added one way; jitter_ms is the standard deviation of the extra
  random delay for every distribution (normal clipped at +-4 sd like netem's
  16-bit tables; uniform; pareto shaped like iproute2's table, a right tail
  clipped at about 4.9 sd); negative totals are clamped to zero.
- Frames keep their order unless ``reorder`` is set, even with jitter: a frame
  never leaves before its predecessor (netem's behaviour when a rate is set).
  Frames closer together than the jitter then queue behind slow ones, so the
  observed delay shifts up and its spread shrinks; ``reorder`` gives the pure
  distribution.
- rate_bps shapes layer-2 frame bytes (Ethernet header included, no FCS);
  frames wait at most queue_ms in the shaper, later ones are tail-dropped.
- queue_limit bounds the frames held per direction (delay line included).
- blackhole drops every new frame; frames already in flight are delivered.
- A change applies to the next frame; frames already held keep their schedule.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from lab.errors import ImpairmentError

Direction = Literal["a_to_b", "b_to_a", "both"]
JitterDistribution = Literal["normal", "uniform", "pareto"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
DISTRIBUTIONS: tuple[str, ...] = get_args(JitterDistribution)

MAX_DELAY_MS = 60_000.0
# tc's 32-bit byte rates cap both drivers at the same figure.
MAX_RATE_BPS = (2**32 - 1) * 8
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_LINK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImpairmentError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or not low <= value <= high:
        raise ImpairmentError(f"{name} must be within [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class GilbertElliott:
    """Correlated (bursty) loss: a two-state Markov chain, as netem's ``gemodel``.

    Per frame: first the state may change (good->bad with p_pct, bad->good
    with r_pct), then the frame is lost with the loss probability of the state.
    """

    p_pct: float
    r_pct: float
    loss_bad_pct: float = 100.0
    loss_good_pct: float = 0.0

    def __post_init__(self) -> None:
        _check_range("gilbert.p_pct", self.p_pct, 0.0, 100.0)
        _check_range("gilbert.r_pct", self.r_pct, 0.0, 100.0)
        _check_range("gilbert.loss_bad_pct", self.loss_bad_pct, 0.0, 100.0)
        _check_range("gilbert.loss_good_pct", self.loss_good_pct, 0.0, 100.0)
        if self.p_pct <= 0.0:
            raise ImpairmentError("gilbert.p_pct must be > 0 (0 never enters the bad state)")

    @property
    def mean_loss_pct(self) -> float:
        """Long-run loss rate of the chain."""
        if self.r_pct <= 0.0:
            return self.loss_bad_pct
        bad = self.p_pct / (self.p_pct + self.r_pct)
        return bad * self.loss_bad_pct + (1.0 - bad) * self.loss_good_pct


@dataclass(frozen=True)
class Impairment:
    """What one direction of a link does to frames (see the module docstring)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_distribution: JitterDistribution = "normal"
    loss_pct: float = 0.0
    gilbert: GilbertElliott | None = None
    rate_bps: int | None = None
    queue_ms: float = 50.0
    queue_limit: int = 10_000
    blackhole: bool = False
    reorder: bool = False

    def __post_init__(self) -> None:
        _check_range("delay_ms", self.delay_ms, 0.0, MAX_DELAY_MS)
        _check_range("jitter_ms", self.jitter_ms, 0.0, MAX_DELAY_MS)
        _check_range("loss_pct", self.loss_pct, 0.0, 100.0)
        _check_range("queue_ms", self.queue_ms, 0.001, MAX_DELAY_MS)
        if self.jitter_distribution not in DISTRIBUTIONS:
            raise ImpairmentError(
                f"jitter_distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                f"got {self.jitter_distribution!r}"
            )
        if self.gilbert is not None and self.loss_pct > 0.0:
            raise ImpairmentError("loss_pct and gilbert are exclusive: pick one loss model")
        if self.rate_bps is not None and (
            isinstance(self.rate_bps, bool)
            or not isinstance(self.rate_bps, int)
            or not 1_000 <= self.rate_bps <= MAX_RATE_BPS
        ):
            raise ImpairmentError(
                f"rate_bps must be an integer within [1000, {MAX_RATE_BPS}], got {self.rate_bps!r}"
            )
        if isinstance(self.queue_limit, bool) or not isinstance(self.queue_limit, int):
            raise ImpairmentError(f"queue_limit must be an integer, got {self.queue_limit!r}")
        if not 1 <= self.queue_limit <= 1_000_000:
            raise ImpairmentError(
                f"queue_limit must be within [1, 1000000], got {self.queue_limit}"
            )
        if not isinstance(self.blackhole, bool) or not isinstance(self.reorder, bool):
            raise ImpairmentError("blackhole and reorder must be booleans")

    @property
    def is_clean(self) -> bool:
        """True when frames pass untouched (no delay, loss, rate or blackhole)."""
        return not (
            self.delay_ms or self.jitter_ms or self.loss_pct or self.gilbert
            or self.rate_bps or self.blackhole
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Impairment:
        """Inverse of to_dict; raises ImpairmentError on unknown or bad fields."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ImpairmentError(f"unknown impairment fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        gilbert = values.get("gilbert")
        if isinstance(gilbert, dict):
            try:
                values["gilbert"] = GilbertElliott(**gilbert)
            except TypeError as exc:
                raise ImpairmentError(f"bad gilbert settings: {exc}") from exc
        return cls(**values)


CLEAN = Impairment()


@dataclass(frozen=True)
class LinkEnd:
    """One visible end of a link: interface ``ifname`` in namespace ``netns`` (a name under
    /run/netns, or the absolute path of a namespace such as ``/proc/PID/ns/net``)."""

    netns: str
    ifname: str

    def __post_init__(self) -> None:
        is_path = self.netns.startswith("/") and "\0" not in self.netns
        if not is_path and (not self.netns or "/" in self.netns or self.netns in (".", "..")):
            raise ImpairmentError(f"bad namespace name {self.netns!r}")
        if not _IFNAME.fullmatch(self.ifname):
            raise ImpairmentError(
                f"bad interface name {self.ifname!r}: 1-15 characters of A-Z a-z 0-9 _ . -"
            )


@dataclass(frozen=True)
class VethPair:
    """One veth pair a driver needs for a link: ``ifname`` in ``netns`` and ``peer_ifname``
    in ``peer_netns``, both up; ``offloads_off`` on both ends when set."""

    netns: str
    ifname: str
    peer_netns: str
    peer_ifname: str
    mtu: int
    offloads_off: bool


@dataclass(frozen=True)
class LinkRequest:
    """A link to create or adopt: ends, per-direction settings and MTU."""

    link_id: str
    a: LinkEnd
    b: LinkEnd
    a_to_b: Impairment
    b_to_a: Impairment
    mtu: int = 1500


def check_link_id(link_id: str) -> str:
    """Link ids name emulator state and hashes: 1-64 safe characters."""
    if not isinstance(link_id, str) or not _LINK_ID.fullmatch(link_id):
        raise ImpairmentError(
            f"bad link id {link_id!r}: 1-64 characters of A-Z a-z 0-9 _ . : -"
        )
    return link_id


@dataclass(frozen=True)
class Counters:
    """Frames seen by one direction since the link was created.

    dropped_loss/blackhole/queue are intended drops; dropped_error and
    dropped_overrun are not (netem reports neither).
    """

    forwarded: int = 0
    forwarded_bytes: int = 0
    dropped_loss: int = 0
    dropped_blackhole: int = 0
    dropped_queue: int = 0
    dropped_error: int = 0  # send failures, truncated frames
    dropped_overrun: int = 0  # lost before the emulator read them (it fell behind)
    in_queue: int = 0
    # sent later than due by more than 0.5, 2 and 10 ms (the emulator's own lag)
    late_500us: int = 0
    late_2ms: int = 0
    late_10ms: int = 0

    @property
    def dropped(self) -> int:
        return (self.dropped_loss + self.dropped_blackhole + self.dropped_queue
                + self.dropped_error + self.dropped_overrun)


@dataclass(frozen=True)
class DirectionStatus:
    impairment: Impairment
    counters: Counters


@dataclass(frozen=True)
class LinkStatus:
    """Settings and counters of a link, per direction."""

    link_id: str
    a: LinkEnd
    b: LinkEnd
    mtu: int
    driver: str
    a_to_b: DirectionStatus
    b_to_a: DirectionStatus
    details: dict[str, str] = field(default_factory=dict)
