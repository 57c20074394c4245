"""Backends build and remove labs. ``netns`` (default) runs everything on this machine."""

from lab.backend.base import Backend, NetnsBackend

__all__ = ["Backend", "NetnsBackend"]
