"""The links a driver manages, persisted so another process can take over.

Stored as JSON in the lab's state directory and rewritten atomically on every
change; the kernel or the emulator stays the authority for counters.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lab.atomicfile import write_atomic
from lab.errors import ImpairmentError
from lab.impair.model import Impairment, LinkEnd, LinkRequest, check_link_id


@dataclass(frozen=True)
class LinkRecord:
    link_id: str
    a: LinkEnd
    b: LinkEnd
    mtu: int
    a_to_b: Impairment
    b_to_a: Impairment
    ports: tuple[str, str] = ("", "")  # emulator-side interface names, if any

    def with_settings(self, direction: str, imp: Impairment) -> LinkRecord:
        if direction == "a_to_b":
            return replace(self, a_to_b=imp)
        if direction == "b_to_a":
            return replace(self, b_to_a=imp)
        return replace(self, a_to_b=imp, b_to_a=imp)

    def to_dict(self) -> dict[str, Any]:
        return {
            "link_id": self.link_id,
            "a": {"netns": self.a.netns, "ifname": self.a.ifname},
            "b": {"netns": self.b.netns, "ifname": self.b.ifname},
            "mtu": self.mtu,
            "a_to_b": self.a_to_b.to_dict(),
            "b_to_a": self.b_to_a.to_dict(),
            "ports": list(self.ports),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkRecord:
        ports = data.get("ports", ["", ""])
        return cls(
            link_id=str(data["link_id"]),
            a=LinkEnd(**data["a"]),
            b=LinkEnd(**data["b"]),
            mtu=int(data["mtu"]),
            a_to_b=Impairment.from_dict(data["a_to_b"]),
            b_to_a=Impairment.from_dict(data["b_to_a"]),
            ports=(str(ports[0]), str(ports[1])),
        )


class Registry:
    """link_id -> LinkRecord, kept in ``path``.

    Every read goes to the file and every change is a locked read-modify-write,
    so drivers in several processes (lab up, a scenario runner) stay in step.
    """

    def __init__(self, path: Path, driver: str) -> None:
        self.path = path
        self.driver = driver
        self._lock_path = path.with_name(path.name + ".lock")
        self.validate()

    def validate(self) -> None:
        """Raise ImpairmentError if the file is corrupt or belongs to another driver."""
        self.get_all()

    @property
    def links(self) -> dict[str, LinkRecord]:
        return self.get_all()

    def get_all(self) -> dict[str, LinkRecord]:
        """Every record, read from the file now."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("driver") != self.driver:
                raise ImpairmentError(
                    f"{self.path} belongs to driver {data.get('driver')!r}, not {self.driver!r}"
                )
            records = [LinkRecord.from_dict(item) for item in data["links"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ImpairmentError(f"cannot read link registry {self.path}: {exc}") from exc
        return {r.link_id: r for r in records}

    def get(self, link_id: str) -> LinkRecord:
        try:
            return self.links[link_id]
        except KeyError:
            raise ImpairmentError(f"no link {link_id!r}") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, LinkRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            links = self.links
            yield links
            self._write(links)

    def new_records(self, requests: Sequence[LinkRequest],
                    ports: Callable[[str], tuple[str, str]] | None = None) -> list[LinkRecord]:
        """Records for links not managed yet (ids valid, unknown here, each once);
        ``ports`` names a link's emulator-side interfaces, if the driver has any."""
        known = self.links
        records: list[LinkRecord] = []
        for r in requests:
            check_link_id(r.link_id)
            if r.link_id in known or any(x.link_id == r.link_id for x in records):
                raise ImpairmentError(f"link {r.link_id!r} exists")
            if not 68 <= r.mtu <= 65535:
                raise ImpairmentError(f"mtu must be within [68, 65535], got {r.mtu}")
            records.append(LinkRecord(r.link_id, r.a, r.b, r.mtu, r.a_to_b, r.b_to_a,
                                      ports(r.link_id) if ports else ("", "")))
        return records

    def put(self, *records: LinkRecord) -> None:
        with self._locked() as links:
            for record in records:
                links[record.link_id] = record

    def drop(self, link_id: str) -> None:
        with self._locked() as links:
            links.pop(link_id, None)

    def _write(self, links: dict[str, LinkRecord]) -> None:
        data = {"driver": self.driver, "links": [r.to_dict() for r in links.values()]}
        write_atomic(self.path, json.dumps(data))  # one-shot dumps uses the C encoder

    def remove_file(self) -> None:
        self.path.unlink(missing_ok=True)
        self._lock_path.unlink(missing_ok=True)
