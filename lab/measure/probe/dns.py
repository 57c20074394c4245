"""The DNS query a prober target asks instead of the echo probe (``ProbeTarget.dns``).

Kept apart from ``udp`` so the record reader (``records``) can use it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from lab.errors import ProbeError

Identity = Literal["nsid", "chaos", "none"]
IDENTITIES: tuple[str, ...] = get_args(Identity)
MAX_NAME = 253  # presentation form without the final dot: 255 bytes on the wire
MAX_LABEL = 63
# Names travel in the prober's argv and record file: printable ASCII, no separator of either.
_FORBIDDEN = set(",\\")


@dataclass(frozen=True)
class DnsQuery:
    """What a DNS target asks, and how the answering instance names itself.

    - ``nsid``: ``name``/``qtype`` class IN with EDNS0 (UDP size 1232) and an empty NSID option
      (RFC 5001); the identity is the NSID the answer carries;
    - ``chaos``: ``name`` (e.g. ``hostname.bind``, ``id.server``) TXT class CH (RFC 4892),
      whatever ``qtype`` says; the identity is the first string of the first TXT answer;
    - ``none``: ``name``/``qtype`` class IN, no identity.

    ``name`` is ASCII, absolute or not (one final dot is allowed). ProbeError when invalid.
    """

    name: str
    qtype: int = 1  # A
    identity: Identity = "nsid"

    def __post_init__(self) -> None:
        check_name(self.name)
        if not 1 <= self.qtype <= 65535:
            raise ProbeError(f"DNS query type {self.qtype} must be in 1-65535")
        if self.identity not in IDENTITIES:
            raise ProbeError(f"DNS identity {self.identity!r} must be one of "
                             f"{', '.join(IDENTITIES)}")

    @property
    def spec(self) -> str:
        """NAME,QTYPE,IDENTITY: the value of the prober's ``--dns SERVICE=...``."""
        return f"{self.name},{self.qtype},{self.identity}"


def check_name(name: str) -> None:
    """ProbeError unless ``name`` is a DNS name the prober can ask (the checks of its C twin)."""
    bare = name.removesuffix(".")
    if not bare.isascii() or any(not "!" <= c <= "~" or c in _FORBIDDEN for c in bare):
        raise ProbeError(f"DNS name {name!r} must be printable ASCII without blanks, "
                         "',' or '\\'")
    if len(bare) > MAX_NAME:
        raise ProbeError(f"DNS name {name!r} is longer than {MAX_NAME} characters")
    labels = bare.split(".")
    if any(not 1 <= len(label) <= MAX_LABEL for label in labels):
        raise ProbeError(f"DNS name {name!r} must be labels of 1-{MAX_LABEL} characters "
                         "separated by single dots")
