"""The userspace driver: links run through one emulator process per lab.

A link ``a`` <-> ``b`` becomes two veth pairs: ``a.ifname`` (in a.netns) <->
port A and ``b.ifname`` (in b.netns) <-> port B, with both ports in the lab's
hidden namespace, where the emulator moves frames between them. Port names are
derived from the link id, so several links share the hidden namespace.
Offloads are switched off on all four ends: a packet socket would otherwise
receive partial checksums and GSO super-frames.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.errors import ImpairmentError
from lab.impair import emulator
from lab.impair.control import ControlClient, decode_stats, encode_add, encode_set
from lab.impair.model import (
    DIRECTIONS,
    Direction,
    DirectionStatus,
    Impairment,
    LinkEnd,
    LinkRequest,
    LinkStatus,
    VethPair,
    check_link_id,
)
from lab.impair.namespaces import (
    create_veth,
    delete_link,
    disable_offloads,
    ensure_netns,
    netns_exists,
    remove_netns,
    rtnl,
)
from lab.impair.registry import LinkRecord, Registry


def _emulator_binary() -> Path:
    # Imported here so that `python -m lab.impair.build` runs a fresh module.
    from lab.impair.build import ensure_built

    return ensure_built()


def port_names(link_id: str) -> tuple[str, str]:
    """The emulator-side interface names of a link (11 characters, stable)."""
    digest = hashlib.blake2s(link_id.encode(), digest_size=4).hexdigest()
    return f"le{digest}a", f"le{digest}b"


class UserspaceDriver:
    """ImpairmentDriver backed by the C link emulator (lab/impair/csrc/linkemu.c).

    Constructing it starts the lab's emulator, or attaches to the one already
    running for ``state_dir`` (another process may have started the lab).
    ``rt_priority`` (SCHED_FIFO, 0 for none) keeps delays accurate when the
    machine is busy: measured under full CPU load, the 99th-percentile delay
    error fell from ~4 ms to ~0.2 ms.
    """

    DEFAULT_RT_PRIORITY = 10

    kind = "userspace"

    def __init__(self, lab: str, state_dir: Path, hidden_netns: str, *,
                 binary: Path | None = None, tie_to_process: bool = False,
                 rt_priority: int = DEFAULT_RT_PRIORITY) -> None:
        self.lab = emulator.check_lab_name(lab)
        self.hidden_netns = LinkEnd(hidden_netns, "lo").netns  # validates the name
        self.files = emulator.EmulatorFiles(Path(state_dir).resolve() / "impair")
        self._registry = Registry(self.files.dir / "links.json", self.kind)
        self._life_w: int | None = None
        created_netns = ensure_netns(hidden_netns)
        try:
            self._pid, self._ctl = self._attach() or self._spawn(
                binary or _emulator_binary(), tie_to_process, rt_priority)
            self._reconcile()
        except BaseException:
            if created_netns:
                remove_netns(hidden_netns)
            raise

    @property
    def pid(self) -> int:
        """Pid of the emulator process serving this lab's links."""
        return self._pid

    # ---- process ----

    def _attach(self) -> tuple[int, ControlClient] | None:
        pid = self.files.read_pid()
        if pid is None or pid not in emulator.emulator_pids(self.lab):
            return None
        try:
            ctl = ControlClient(self.files.control)
            hello = ctl.request("hello")[0]
        except ImpairmentError:
            return None
        if hello.get("pid") != pid:
            ctl.close()
            return None
        return pid, ctl

    def _spawn(self, binary: Path, tie_to_process: bool,
               rt_priority: int) -> tuple[int, ControlClient]:
        for stale in emulator.emulator_pids(self.lab):  # one emulator per lab, ever
            emulator.stop_pid(stale, self.lab)
        life_r = None
        if tie_to_process:
            # The emulator holds the read end; our death closes the write end.
            life_r, self._life_w = os.pipe()
        try:
            pid = emulator.spawn(binary, self.lab, self.files, self.hidden_netns, life_r,
                                 rt_priority)
        finally:
            if life_r is not None:
                os.close(life_r)
        try:
            return pid, ControlClient(self.files.control)
        except ImpairmentError:
            emulator.stop_pid(pid, self.lab)
            raise

    def _reconcile(self) -> None:
        """Give a freshly started emulator the links recorded by an earlier one."""
        known = decode_stats(self._ctl.request("stats")[0])
        for record in list(self._registry.links.values()):
            if record.link_id in known:
                continue
            if not all(self._port_exists(p) for p in record.ports):
                self._registry.drop(record.link_id)
                continue
            self._ctl.request(*self._commands(record))

    def _port_exists(self, name: str) -> bool:
        with rtnl(self.hidden_netns) as ipr:
            return bool(ipr.link_lookup(ifname=name))

    @staticmethod
    def _commands(record: LinkRecord) -> list[str]:
        return [
            encode_add(record.link_id, record.ports[0], record.ports[1], record.mtu),
            encode_set(record.link_id, "a_to_b", record.a_to_b),
            encode_set(record.link_id, "b_to_a", record.b_to_a),
        ]

    # ---- ImpairmentDriver ----

    def link_veths(self, link_id: str, a: LinkEnd, b: LinkEnd, mtu: int = 1500
                   ) -> list[VethPair]:
        port_a, port_b = port_names(check_link_id(link_id))
        return [VethPair(a.netns, a.ifname, self.hidden_netns, port_a, mtu, offloads_off=True),
                VethPair(b.netns, b.ifname, self.hidden_netns, port_b, mtu, offloads_off=True)]

    def add_link(self, link_id: str, a: LinkEnd, b: LinkEnd, a_to_b: Impairment,
                 b_to_a: Impairment, mtu: int = 1500) -> None:
        record, = self._registry.new_records([LinkRequest(link_id, a, b, a_to_b, b_to_a, mtu)],
                                             port_names)
        for end in (a, b):
            if not netns_exists(end.netns):
                raise ImpairmentError(f"namespace {end.netns} does not exist")
        taken = [p for p in record.ports if self._port_exists(p)]
        if taken:  # a hash collision with another link's ports: never touch those
            raise ImpairmentError(f"emulator port {taken[0]} of link {link_id!r} is in use")
        created: list[str] = []
        try:
            for pair in self.link_veths(link_id, a, b, mtu):
                create_veth(pair.netns, pair.ifname, pair.peer_netns, pair.peer_ifname, mtu)
                created.append(pair.peer_ifname)
                disable_offloads(pair.netns, pair.ifname)
                disable_offloads(pair.peer_netns, pair.peer_ifname)
            self._start(record)
        except BaseException:
            for port in created:
                with contextlib.suppress(ImpairmentError):
                    delete_link(self.hidden_netns, port)
            raise

    def adopt_links(self, links: Sequence[LinkRequest]) -> None:
        self._start(*self._registry.new_records(links, port_names))

    def _start(self, *records: LinkRecord) -> None:
        try:
            # One write: the links start with their settings, never unimpaired.
            self._ctl.request(*(c for r in records for c in self._commands(r)))
        except BaseException:
            for record in records:
                with contextlib.suppress(ImpairmentError):
                    self._ctl.request(f"del {record.link_id}")
            raise
        self._registry.put(*records)

    def set(self, link_id: str, direction: Direction, imp: Impairment) -> None:
        if direction not in DIRECTIONS:
            raise ImpairmentError(f"direction must be one of {', '.join(DIRECTIONS)}")
        record = self._registry.get(link_id)
        self._ctl.request(encode_set(link_id, direction, imp))
        self._registry.put(record.with_settings(direction, imp))

    def get(self, link_id: str) -> LinkStatus:
        record = self._registry.get(link_id)
        stats = decode_stats(self._ctl.request(f"stats {link_id}")[0])
        ab, ba = stats[link_id]
        return LinkStatus(
            link_id=link_id, a=record.a, b=record.b, mtu=record.mtu, driver=self.kind,
            a_to_b=DirectionStatus(record.a_to_b, ab),
            b_to_a=DirectionStatus(record.b_to_a, ba),
            details={"emulator_pid": str(self._pid), "ports": ",".join(record.ports),
                     "hidden_netns": self.hidden_netns},
        )

    def link_ids(self) -> list[str]:
        return sorted(self._registry.links)

    def compensation(self, link_id: str) -> float:
        """Microseconds taken off each frame's hold on the link (``comp``; a→b direction)."""
        self._registry.get(link_id)
        reply = self._ctl.request(f"stats {link_id}")[0]
        return float(reply["links"][0]["a_to_b"].get("comp_us", 0.0))

    def compensate(self, link_id: str, microseconds: float) -> None:
        """Take ``microseconds`` off every frame's hold in both directions of the link: the
        measured forwarding cost of the lab around the emulator (lab.measure.calibrate)."""
        self._registry.get(link_id)
        self._ctl.request(f"comp {check_link_id(link_id)} both {microseconds:.3f}")

    def stats(self) -> dict[str, Any]:
        """The emulator's raw ``stats`` reply (every link, with echoed settings)."""
        return self._ctl.request("stats")[0]

    def remove_link(self, link_id: str) -> None:
        record = self._registry.get(link_id)
        with contextlib.suppress(ImpairmentError):  # the emulator may have lost it already
            self._ctl.request(f"del {link_id}")
        for port in record.ports:
            delete_link(self.hidden_netns, port)
        self._registry.drop(link_id)

    def detach(self) -> None:
        """Drop the control connection; the emulator and links keep running
        (unless ``tie_to_process`` was set: then they end with this process)."""
        self._ctl.close()

    def close(self) -> None:
        """Stop the emulator, delete every link and the hidden namespace."""
        with contextlib.suppress(ImpairmentError):
            self._ctl.request("quit")
        self._ctl.close()
        emulator.stop_pid(self._pid, self.lab, first_wait_s=2.0)
        if self._life_w is not None:
            os.close(self._life_w)
            self._life_w = None
        for record in self._registry.links.values():
            for port in record.ports:
                delete_link(self.hidden_netns, port)
        remove_netns(self.hidden_netns)
        self._registry.remove_file()
        self.files.clear()
