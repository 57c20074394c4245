"""Backends build, change and remove labs; every operation on a lab or one of its nodes goes
through the protocol in ``lab.backend.protocol``. ``netns`` (the default) runs a lab as
network namespaces on this machine, ``containerlab`` as containers deployed by containerlab,
``mininet`` as Mininet hosts and links (all share the bring-up steps of ``bringup``);
``lab.backend.fake`` stands in for them in unit tests.
``labs`` is the life cycle the CLI and the runner use (up, down, status, list); the other
modules here are shared by every backend (state, names, processes, readiness, evidence).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from lab.errors import BackendError

if TYPE_CHECKING:
    from lab.backend.protocol import Backend

DEFAULT_BACKEND = "netns"
# name -> "module:class"; imported on first use (the netlink worker imports this package)
BACKENDS = {"netns": "lab.backend.netns.backend:NetnsBackend",
            "containerlab": "lab.backend.containerlab.backend:ContainerlabBackend",
            "mininet": "lab.backend.mininet.backend:MininetBackend",
            "fake": "lab.backend.fake:FakeBackend"}


def backend_named(name: str) -> Backend:
    """The backend called ``name`` (as a lab's state records it)."""
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}"
                           ) from None
    backend: Backend = getattr(import_module(module), cls)()
    return backend


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "backend_named"]
