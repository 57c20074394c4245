"""lab.backend.bfdstart on the two-sites-mini plan: which session ends get BFD lines, the
boot configuration without them (with them as static bfdd peers, and a short coalesce
time), the vty sessions that add them and that finish the start, and bfdd's peer states."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator

import pytest

from lab import pipeline
from lab.backend.bfdstart import (
    BOOT_COALESCE_MS,
    BfdAttachment,
    attach,
    attachments,
    bfd_peer_states,
    boot_config,
    finish_start,
    router_attachments,
)
from lab.backend.daemons import NodeFiles
from lab.errors import BackendError
from lab.plan.model import LabPlan
from lab.render.configs import RenderedLab, frr_daemons
from tests.conftest import TOPOLOGIES
from tests.unit.fakevty import FakeVty, Reply, short_dir


@pytest.fixture(scope="module")
def mini() -> tuple[LabPlan, RenderedLab]:
    return pipeline.render(TOPOLOGIES / "two-sites-mini.yaml")


@pytest.fixture
def files() -> Iterator[NodeFiles]:
    with short_dir() as folder:
        yield NodeFiles(folder)


def frr_conf(rendered: RenderedLab, router: str) -> str:
    return rendered.files[router]["frr.conf"]


def router_lines(plan: LabPlan, router: str) -> set[str]:
    return {a.line for s in plan.sessions for a in attachments(plan, s) if a.router == router}


def test_one_attachment_per_bgpd_end(mini: tuple[LabPlan, RenderedLab]) -> None:
    plan, _ = mini
    for session in plan.sessions:
        assert session.timers.bfd is not None
        found = attachments(plan, session)
        ends = [e for e in (session.a, session.b) if "bgpd" in frr_daemons(plan.node(e))]
        assert [a.router for a in found] == ends
        for item in found:
            local, asn, ifname, _, peer, _ = session.side(item.router)
            assert item == BfdAttachment(session.id, item.router, asn, str(peer),
                                         session.timers.bfd.profile, str(local), ifname)
            assert item.line == f" neighbor {peer} bfd profile {session.timers.bfd.profile}"
            assert item.static_peer == f" peer {peer} local-address {local} interface {ifname}"
    by_id = {s.id: s for s in plan.sessions}
    gobgp = attachments(plan, by_id["alpha-l1--alpha-k8s-n1"])
    frr = attachments(plan, by_id["beta-l1--beta-k8s-n1"])
    assert [a.router for a in gobgp] == ["alpha-l1"]
    assert [a.router for a in frr] == ["beta-l1", "beta-k8s-n1"]


def test_no_attachment_without_bfd(mini: tuple[LabPlan, RenderedLab]) -> None:
    plan, _ = mini
    for session in plan.sessions:
        plain = dataclasses.replace(session, timers=dataclasses.replace(session.timers, bfd=None))
        assert attachments(plan, plain) == []


def start_only(plan: LabPlan, router: str) -> list[str]:
    """What the boot configuration adds: the static bfdd peers, the short coalesce time."""
    items = router_attachments(plan, router)
    block = ["bfd"]
    for item in items:
        block += [item.static_peer, f"  profile {item.profile}", " exit"]
    return [*block, "exit"] if items else []


def test_boot_config_drops_only_the_bfd_lines(mini: tuple[LabPlan, RenderedLab]) -> None:
    plan, rendered = mini
    coalesce = f" coalesce-time {BOOT_COALESCE_MS}"
    for router in rendered.files:
        text = frr_conf(rendered, router)
        expected = router_lines(plan, router)
        booted = boot_config(plan, router, text).split("\n")
        kept = [ln for ln in text.split("\n") if ln not in expected]
        # a short coalesce time right after each `router bgp`, the static peers before `end`
        added = start_only(plan, router)
        without = [ln for ln in booted if ln != coalesce]
        assert without == [*kept[:kept.index("end")], *added, *kept[kept.index("end"):]]
        instances = [i for i, ln in enumerate(booted) if ln.startswith("router bgp ")]
        assert [booted[i + 1] for i in instances] == [coalesce] * len(instances)
        assert booted.count(coalesce) == len(instances)
        if "bgpd" in frr_daemons(plan.node(router)):
            assert expected and instances
            assert len(added) == 2 + 3 * len(expected)
        else:
            assert booted == text.split("\n")


def test_boot_config_needs_each_line_once(mini: tuple[LabPlan, RenderedLab]) -> None:
    plan, rendered = mini
    text = frr_conf(rendered, "alpha-l1")
    line = " neighbor 10.254.0.9 bfd profile bfd-300x3"
    assert line in router_lines(plan, "alpha-l1")
    missing = text.replace(line + "\n", "")
    doubled = text.replace(line + "\n", line + "\n" + line + "\n")
    for broken in (missing, doubled):
        with pytest.raises(BackendError, match=re.escape(line.strip())):
            boot_config(plan, "alpha-l1", broken)
    with pytest.raises(BackendError):
        boot_config(plan, "alpha-l1", boot_config(plan, "alpha-l1", text))


def test_attach_sends_one_session(mini: tuple[LabPlan, RenderedLab], files: NodeFiles) -> None:
    plan, _ = mini
    items = [a for s in plan.sessions_of("alpha-l1") for a in attachments(plan, s)
             if a.router == "alpha-l1"]
    with FakeVty(files.vty_socket("bgpd")) as vty:
        attach(files, items)
    assert vty.commands == [
        "enable", "configure terminal", "router bgp 4200001001",
        "neighbor 10.254.0.0 bfd profile bfd-300x3", "neighbor 10.254.0.9 bfd profile bfd-300x3",
        "exit", "end"]


def test_attach_groups_by_asn(files: NodeFiles) -> None:
    items = [BfdAttachment("s1", "r", 65001, "10.0.0.1", "p1", "10.0.0.0", "a"),
             BfdAttachment("s2", "r", 65002, "10.0.0.3", "p2", "10.0.0.2", "b"),
             BfdAttachment("s3", "r", 65001, "10.0.0.5", "p1", "10.0.0.4", "c")]
    with FakeVty(files.directory / "bgpd.vty") as vty:
        attach(files, items)
    assert vty.commands == [
        "enable", "configure terminal",
        "router bgp 65001", "neighbor 10.0.0.1 bfd profile p1", "neighbor 10.0.0.5 bfd profile p1",
        "exit", "router bgp 65002", "neighbor 10.0.0.3 bfd profile p2", "exit", "end"]


def test_attach_failure_names_the_router(files: NodeFiles) -> None:
    item = BfdAttachment("s1", "r", 65001, "10.0.0.1", "nope", "10.0.0.0", "a")
    reply = Reply("% Profile not found\n", 13)
    expected = re.escape(f"cannot switch BFD on in {files.directory}: bgpd.vty:")
    with FakeVty(files.vty_socket("bgpd"), {item.line.strip(): reply}) as vty, \
            pytest.raises(BackendError, match=expected):
        attach(files, [item])
    assert vty.commands[-1] == "neighbor 10.0.0.1 bfd profile nope"


def test_finish_start_restores_coalesce_and_drops_static_peers(
        mini: tuple[LabPlan, RenderedLab], files: NodeFiles) -> None:
    plan, rendered = mini
    files.frr_conf.write_text(frr_conf(rendered, "alpha-l1"))
    items = router_attachments(plan, "alpha-l1")
    assert len(items) == 2
    with FakeVty(files.vty_socket("bgpd")) as bgpd, FakeVty(files.vty_socket("bfdd")) as bfdd:
        finish_start(files, items)
    assert bgpd.commands == ["enable", "configure terminal", "router bgp 4200001001",
                             f"no coalesce-time {BOOT_COALESCE_MS}", "exit", "end"]
    assert bfdd.commands == ["enable", "configure terminal", "bfd",
                             *(f"no {item.static_peer.strip()}" for item in items), "exit", "end"]


def test_finish_start_without_bfd_leaves_bfdd_alone(mini: tuple[LabPlan, RenderedLab],
                                                    files: NodeFiles) -> None:
    _, rendered = mini
    files.frr_conf.write_text(frr_conf(rendered, "alpha-l1"))
    with FakeVty(files.vty_socket("bgpd")) as bgpd:
        finish_start(files, [])
    assert bgpd.commands[2:4] == ["router bgp 4200001001", f"no coalesce-time {BOOT_COALESCE_MS}"]


def test_finish_start_failure_names_the_router(mini: tuple[LabPlan, RenderedLab],
                                               files: NodeFiles) -> None:
    _, rendered = mini
    files.frr_conf.write_text(frr_conf(rendered, "alpha-l1"))
    reply = Reply("% Unknown command\n", 13)
    command = f"no coalesce-time {BOOT_COALESCE_MS}"
    with FakeVty(files.vty_socket("bgpd"), {command: reply}), \
            pytest.raises(BackendError, match=re.escape(f"finish the start of {files.directory}")):
        finish_start(files, [])


def test_bfd_peer_states(files: NodeFiles) -> None:
    peers = [{"multihop": False, "peer": "10.254.0.0", "local": "10.254.0.1", "status": "up"},
             {"peer": "10.254.0.9", "status": "init"}, {"peer": "10.254.0.2"}, "junk"]
    with FakeVty(files.vty_socket("bfdd"),
                 {"show bfd peers json": Reply(json.dumps(peers))}) as vty:
        states = bfd_peer_states(files)
    assert states == {"10.254.0.0": "up", "10.254.0.9": "init", "10.254.0.2": "?"}
    assert vty.commands == ["enable", "show bfd peers json"]  # bfdd shows only in enable


@pytest.mark.parametrize("output", ["", "{}", '{"peer": "10.254.0.0", "status": "up"}'])
def test_bfd_peer_states_not_a_list(files: NodeFiles, output: str) -> None:
    with FakeVty(files.vty_socket("bfdd"), {"show bfd peers json": Reply(output)}):
        assert bfd_peer_states(files) == {}
