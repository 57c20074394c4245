"""Backends build and remove labs. ``netns`` (default) runs everything on this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.backend.base import Backend, NetnsBackend

__all__ = ["Backend", "NetnsBackend"]


def __getattr__(name: str) -> Any:
    # Lazy: the netlink worker imports lab.backend.netspec and should not pay for the rest.
    if name in __all__:
        from lab.backend import base

        return getattr(base, name)
    raise AttributeError(name)
