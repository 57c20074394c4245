"""Impairment values: validation and round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.impair import GilbertElliott, Impairment, ImpairmentError, LinkEnd
from lab.impair.model import MAX_RATE_BPS, check_link_id
from lab.impair.registry import LinkRecord, Registry
from lab.impair.userspace import port_names


def test_defaults_are_clean() -> None:
    imp = Impairment()
    assert imp.is_clean
    assert not imp.reorder and not imp.blackhole
    assert imp.queue_limit == 10_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay_ms": -1.0}, "delay_ms must be within"),
        ({"delay_ms": math.nan}, "delay_ms must be within"),
        ({"delay_ms": "5"}, "delay_ms must be a number"),
        ({"jitter_ms": -0.1}, "jitter_ms must be within"),
        ({"loss_pct": 100.5}, "loss_pct must be within"),
        ({"queue_ms": 0.0}, "queue_ms must be within"),
        ({"jitter_distribution": "gamma"}, "jitter_distribution must be one of"),
        ({"rate_bps": 10}, "rate_bps must be an integer within"),
        ({"rate_bps": MAX_RATE_BPS + 1}, "rate_bps must be an integer within"),
        ({"rate_bps": 1e6}, "rate_bps must be an integer within"),
        ({"rate_bps": True}, "rate_bps must be an integer within"),
        ({"queue_limit": 0}, "queue_limit must be within"),
        ({"blackhole": 1}, "must be booleans"),
        ({"loss_pct": 1.0, "gilbert": GilbertElliott(1.0, 10.0)}, "exclusive"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_invalid_impairments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ImpairmentError, match=message):
        Impairment(**kwargs)  # type: ignore[arg-type]


def test_gilbert_validation_and_mean_loss() -> None:
    with pytest.raises(ImpairmentError, match="p_pct must be > 0"):
        GilbertElliott(p_pct=0.0, r_pct=10.0)
    with pytest.raises(ImpairmentError, match="r_pct must be within"):
        GilbertElliott(p_pct=1.0, r_pct=101.0)
    ge = GilbertElliott(p_pct=1.0, r_pct=9.0, loss_bad_pct=50.0, loss_good_pct=1.0)
    assert ge.mean_loss_pct == pytest.approx(0.1 * 50.0 + 0.9 * 1.0)
    assert GilbertElliott(p_pct=1.0, r_pct=0.0).mean_loss_pct == 100.0


def test_blackhole_and_rate_are_not_clean() -> None:
    assert not Impairment(blackhole=True).is_clean
    assert not Impairment(rate_bps=1_000_000).is_clean
    assert Impairment(reorder=True).is_clean


@pytest.mark.parametrize("name", ["", "x" * 16, "eth 0", "a/b", "a:b"])
def test_bad_interface_names(name: str) -> None:
    with pytest.raises(ImpairmentError, match="bad interface name"):
        LinkEnd("ns", name)


@pytest.mark.parametrize("ns", ["", "a/b", "..", "."])
def test_bad_namespace_names(ns: str) -> None:
    with pytest.raises(ImpairmentError, match="bad namespace name"):
        LinkEnd(ns, "eth0")


@pytest.mark.parametrize("link_id", ["", "x" * 65, "a b", "a\nb", "a\"b", "a=b"])
def test_bad_link_ids(link_id: str) -> None:
    with pytest.raises(ImpairmentError, match="bad link id"):
        check_link_id(link_id)


def test_link_ids_of_the_planner_are_accepted() -> None:
    assert check_link_id("site1-leaf1--site1-spine2") == "site1-leaf1--site1-spine2"


def test_port_names_fit_and_differ() -> None:
    a, b = port_names("site1-leaf1--site1-spine2")
    assert len(a) <= 15 and len(b) <= 15 and a != b
    assert port_names("site1-leaf1--site1-spine2") == (a, b)
    assert port_names("other") != (a, b)


impairments = st.builds(
    Impairment,
    delay_ms=st.floats(0, 60_000),
    jitter_ms=st.floats(0, 1_000),
    jitter_distribution=st.sampled_from(["normal", "uniform", "pareto"]),
    loss_pct=st.floats(0, 100),
    rate_bps=st.none() | st.integers(1_000, MAX_RATE_BPS),
    queue_ms=st.floats(0.001, 10_000),
    queue_limit=st.integers(1, 1_000_000),
    blackhole=st.booleans(),
    reorder=st.booleans(),
)


@given(impairments)
def test_dict_round_trip(imp: Impairment) -> None:
    assert Impairment.from_dict(imp.to_dict()) == imp


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ImpairmentError, match="unknown impairment fields: colour"):
        Impairment.from_dict({"delay_ms": 1.0, "colour": "red"})


def test_registry_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "links.json"
    reg = Registry(path, "userspace")
    record = LinkRecord(
        "l1", LinkEnd("a", "eth0"), LinkEnd("b", "eth1"), 1400,
        Impairment(delay_ms=5.0, gilbert=GilbertElliott(1.0, 10.0)), Impairment(),
        ("le00000000a", "le00000000b"),
    )
    reg.put(record)
    again = Registry(path, "userspace")
    assert again.get("l1") == record
    with pytest.raises(ImpairmentError, match="belongs to driver 'userspace'"):
        Registry(path, "netem")
    again.drop("l1")
    assert Registry(path, "userspace").links == {}
    with pytest.raises(ImpairmentError, match="no link 'l1'"):
        again.get("l1")
