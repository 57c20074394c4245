"""The userspace driver's own guarantees: offloads, one process, lifecycle, cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.impair import (
    CLEAN,
    Impairment,
    ImpairmentError,
    LinkEnd,
    LinkRequest,
    UserspaceDriver,
    make_driver,
    netem_available,
)
from lab.impair.emulator import emulator_pids, stop_pid, wait_gone
from lab.impair.measure import (
    UdpProbe,
    address_link,
    scratch_namespaces,
    tcp_transfer,
    unique_name,
)
from lab.impair.namespaces import (
    active_offloads,
    create_veth,
    disable_offloads,
    netns_exists,
    remove_netns,
    rtnl,
)
from lab.impair.userspace import port_names
from tests.conftest import require_root

pytestmark = pytest.mark.integration


@dataclass
class Lab:
    name: str
    state: Path
    hidden: str
    a: str
    b: str

    def driver(self, tie_to_process: bool = False) -> UserspaceDriver:
        return UserspaceDriver(self.name, self.state, self.hidden,
                               tie_to_process=tie_to_process)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Namespaces and names for one test; whatever the test leaves is removed."""
    require_root()
    name, hidden = unique_name("lab"), unique_name("hid")
    with scratch_namespaces("a", "b") as (a, b):
        try:
            yield Lab(name, tmp_path / "state", hidden, a, b)
        finally:
            for pid in emulator_pids(name):
                stop_pid(pid, name)
            remove_netns(hidden)


def has_link(ns: str, ifname: str) -> bool:
    with rtnl(ns) as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def alive(pid: int) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        return not wait_gone(fd, 0)
    finally:
        os.close(fd)


def exits_within(pid: int, seconds: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return wait_gone(fd, seconds)
    finally:
        os.close(fd)


def add_addressed_link(driver: UserspaceDriver, lab: Lab, n: int, delay_ms: float) -> str:
    a, b = LinkEnd(lab.a, f"eth{n}"), LinkEnd(lab.b, f"eth{n}")
    driver.add_link(f"link{n}", a, b, Impairment(delay_ms=delay_ms), CLEAN)
    address_link(a, b, f"198.18.{n}.1", f"198.18.{n}.2")
    return f"198.18.{n}.2"


def median_delay(lab: Lab, dst: str, port: int = 47000) -> float:
    return UdpProbe(lab.a, lab.b, dst, pps=1000, count=300, port=port).run().median_ms()


def test_offloads_are_off_on_all_four_ends(lab: Lab) -> None:
    driver = lab.driver(tie_to_process=True)
    try:
        driver.add_link("l", LinkEnd(lab.a, "eth0"), LinkEnd(lab.b, "eth0"), CLEAN, CLEAN)
        pa, pb = port_names("l")
        for ns, ifname in ((lab.a, "eth0"), (lab.b, "eth0"), (lab.hidden, pa), (lab.hidden, pb)):
            assert active_offloads(ns, ifname) == [], (ns, ifname)
    finally:
        driver.close()


def test_one_process_serves_many_links(lab: Lab) -> None:
    driver = lab.driver(tie_to_process=True)
    try:
        targets = {n: add_addressed_link(driver, lab, n, 5.0 * n) for n in (1, 2, 3)}
        assert emulator_pids(lab.name) == [driver.pid]
        assert {link["id"] for link in driver.stats()["links"]} == {"link1", "link2", "link3"}
        for n, dst in targets.items():
            assert median_delay(lab, dst, 47000 + n) == pytest.approx(5.0 * n, abs=1.0)
        driver.remove_link("link2")
        assert not has_link(lab.a, "eth2") and not has_link(lab.b, "eth2")
        assert driver.link_ids() == ["link1", "link3"]
        assert median_delay(lab, targets[3]) == pytest.approx(15.0, abs=1.0)
        assert driver.get("link1").a_to_b.counters.forwarded >= 300
    finally:
        driver.close()


def test_adopted_links_created_by_the_caller_are_impaired(lab: Lab) -> None:
    """The lab build path: the caller creates the veth pairs the driver asks for (one
    netlink pass for the whole lab), then hands the link over with its settings."""
    driver = lab.driver(tie_to_process=True)
    try:
        a, b = LinkEnd(lab.a, "eth7"), LinkEnd(lab.b, "eth7")
        pairs = driver.link_veths("adopted", a, b)
        assert [(p.netns, p.ifname) for p in pairs] == [(lab.a, "eth7"), (lab.b, "eth7")]
        assert {p.peer_netns for p in pairs} == {lab.hidden}
        assert [p.peer_ifname for p in pairs] == list(port_names("adopted"))
        for pair in pairs:
            create_veth(pair.netns, pair.ifname, pair.peer_netns, pair.peer_ifname, pair.mtu)
            disable_offloads(pair.netns, pair.ifname)
            disable_offloads(pair.peer_netns, pair.peer_ifname)
        driver.adopt_links([LinkRequest("adopted", a, b, Impairment(delay_ms=12.0), CLEAN)])
        address_link(a, b, "198.18.7.1", "198.18.7.2")
        assert driver.link_ids() == ["adopted"]
        assert median_delay(lab, "198.18.7.2") == pytest.approx(12.0, abs=1.0)
        with pytest.raises(ImpairmentError, match="exists"):
            driver.adopt_links([LinkRequest("adopted", a, b, CLEAN, CLEAN)])
    finally:
        driver.close()
    assert not has_link(lab.a, "eth7") and not has_link(lab.b, "eth7")


def test_close_leaves_nothing(lab: Lab) -> None:
    driver = lab.driver()
    add_addressed_link(driver, lab, 1, 1.0)
    pid = driver.pid
    driver.close()
    assert not alive(pid)
    assert emulator_pids(lab.name) == []
    assert not netns_exists(lab.hidden)
    assert not has_link(lab.a, "eth1") and not has_link(lab.b, "eth1")
    assert sorted(p.name for p in (lab.state / "impair").iterdir()) == ["linkemu.log"]


def test_emulator_exits_when_its_lifetime_file_goes(lab: Lab) -> None:
    driver = lab.driver()
    driver.files.lifefile.unlink()
    assert exits_within(driver.pid, 2.0)
    driver.close()  # still removes links and namespace
    assert not netns_exists(lab.hidden)


def test_emulator_exits_on_sigterm(lab: Lab) -> None:
    driver = lab.driver()
    os.kill(driver.pid, signal.SIGTERM)
    assert exits_within(driver.pid, 2.0)
    driver.close()


def test_emulator_dies_with_a_tied_process(lab: Lab) -> None:
    code = (
        "import sys; from pathlib import Path; from lab.impair import UserspaceDriver; "
        "d = UserspaceDriver(sys.argv[1], Path(sys.argv[2]), sys.argv[3], tie_to_process=True); "
        "print(d.pid)"
    )
    out = subprocess.run([sys.executable, "-c", code, lab.name, str(lab.state), lab.hidden],
                         capture_output=True, text=True, timeout=60, check=True)
    assert exits_within(int(out.stdout), 2.0)


def test_another_process_attaches_and_a_restart_restores_links(lab: Lab) -> None:
    first = lab.driver()
    try:
        dst = add_addressed_link(first, lab, 1, 10.0)
        second = lab.driver()
        assert second.pid == first.pid
        assert second.link_ids() == ["link1"]
        second.set("link1", "a_to_b", Impairment(delay_ms=20.0))
        assert first.get("link1").a_to_b.impairment.delay_ms == 20.0
        assert median_delay(lab, dst) == pytest.approx(20.0, abs=1.0)
        second.detach()
        os.kill(first.pid, signal.SIGKILL)
        assert exits_within(first.pid, 2.0)
        third = lab.driver()  # starts a new emulator and gives it the recorded links
        assert third.pid != first.pid
        assert median_delay(lab, dst) == pytest.approx(20.0, abs=1.0)
        tcp_transfer(lab.a, lab.b, dst, 1_000_000)
        third.close()
    finally:
        with contextlib.suppress(Exception):
            first.close()
    assert emulator_pids(lab.name) == []


def test_detach_leaves_the_link_running(lab: Lab) -> None:
    first = lab.driver()
    dst = add_addressed_link(first, lab, 1, 10.0)
    first.detach()
    assert median_delay(lab, dst) == pytest.approx(10.0, abs=1.0)
    again = lab.driver()
    assert again.pid == first.pid
    again.close()
    assert emulator_pids(lab.name) == []


def test_auto_follows_the_probe(lab: Lab) -> None:
    driver = make_driver("auto", lab.name, lab.state, lab.hidden)
    try:
        assert driver.kind == ("netem" if netem_available() else "userspace")
    finally:
        driver.close()
