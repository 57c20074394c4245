"""The interface every impairment driver offers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lab.impair.model import (
    Direction,
    Impairment,
    LinkEnd,
    LinkRequest,
    LinkStatus,
    VethPair,
)


class ImpairmentDriver(Protocol):
    """Creates impaired point-to-point links and changes them at runtime.

    Every method raises ImpairmentError on failure.
    """

    @property
    def kind(self) -> str:
        """"netem" or "userspace"."""
        ...

    def add_link(self, link_id: str, a: LinkEnd, b: LinkEnd, a_to_b: Impairment,
                 b_to_a: Impairment, mtu: int = 1500) -> None:
        """Create the link: ``a.ifname`` appears in ``a.netns`` and ``b.ifname``
        in ``b.netns``, both up with the given MTU and offloads handled; the
        caller only adds addresses. Frames from a to b get ``a_to_b``."""
        ...

    def link_veths(self, link_id: str, a: LinkEnd, b: LinkEnd, mtu: int = 1500
                   ) -> list[VethPair]:
        """The veth pairs ``add_link`` would create for this link, for a caller that builds
        many links at once (one netlink socket per namespace) and then calls
        ``adopt_links``."""
        ...

    def adopt_links(self, links: Sequence[LinkRequest]) -> None:
        """Take over links whose veth pairs (``link_veths``) the caller has created, up and
        with offloads as asked: apply their settings and manage them like ``add_link``'s."""
        ...

    def set(self, link_id: str, direction: Direction, imp: Impairment) -> None:
        """Replace the settings of one or both directions; applies to the next frame."""
        ...

    def get(self, link_id: str) -> LinkStatus:
        """Current settings and counters of a link."""
        ...

    def link_ids(self) -> list[str]:
        """Ids of the links this driver manages."""
        ...

    def remove_link(self, link_id: str) -> None:
        """Delete the link and both visible interfaces."""
        ...

    def close(self) -> None:
        """Remove every link and everything the driver started or created."""
        ...

    def detach(self) -> None:
        """Release this process's handles and leave the links running (a later
        driver for the same state directory takes them over)."""
        ...
