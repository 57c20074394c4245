"""The topology picture: written as PNG or SVG, deterministic, readable at scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.plan.model import LabPlan
from lab.plan.planner import build_plan
from lab.topology.graph import DPI, MAX_WIDTH, draw_topology
from lab.topology.model import Topology
from lab.topology.validate import load_topology
from tests.conftest import TOPOLOGIES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _shipped(name: str) -> LabPlan:
    topology, _ = load_topology(TOPOLOGIES / f"{name}.yaml")
    return build_plan(topology)


def _generated(sites: int, leafs: int, nodes: int) -> LabPlan:
    """A ring of transits, one site each, one cluster per site (the scale-lab shape)."""
    document: dict[str, Any] = {
        "name": f"gen-{sites}x{leafs}x{nodes}",
        "transits": [{"name": f"t{i}"} for i in range(1, sites + 1)],
        "wan_links": [{"between": [f"t{i}", f"t{i % sites + 1}"], "delay": f"{10 + i}ms"}
                      for i in range(1, sites + 1) if i < i % sites + 1 or sites > 2],
        "sites": [{"name": f"dc{i}", "uplinks": [{"transit": f"t{i}", "delay": "1ms"}],
                   "fabric": {"spines": 2, "leafs": leafs},
                   "clusters": [{"name": f"dc{i}-k8s", "nodes": nodes, "pods_per_node": 1,
                                 "pod_cidr_size": 28}]}
                  for i in range(1, sites + 1)],
        "services": [{"name": "dns", "vip": "192.0.2.53", "protocol": "udp", "port": 53}],
        "clients": [{"name": f"t{i}-c1", "transit": f"t{i}", "delay": "3ms"}
                    for i in range(1, sites + 1)],
    }
    return build_plan(Topology.model_validate(document))


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_MAGIC
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.parametrize("name", ["three-sites", "two-sites-mini"])
def test_png_of_shipped_topology(name: str, tmp_path: Path) -> None:
    out = draw_topology(_shipped(name), tmp_path / f"{name}.png")
    assert out == tmp_path / f"{name}.png"
    width, height = _png_size(out)
    assert 1000 <= width <= MAX_WIDTH * DPI
    assert height > 800


@pytest.mark.parametrize("name", ["three-sites", "two-sites-mini"])
def test_svg_of_shipped_topology_keeps_its_text(name: str, tmp_path: Path) -> None:
    plan = _shipped(name)
    text = draw_topology(plan, tmp_path / f"{name}.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert f"anycast lab: {name}" in text
    for node in plan.nodes:  # every node is named: small topologies draw no collapsed rows
        assert f">{node.name}<" in text
    for service in plan.services:
        assert str(service.vip) in text


def test_three_sites_shows_wan_and_access_delays(tmp_path: Path) -> None:
    text = draw_topology(_shipped("three-sites"), tmp_path / "t.svg").read_text()
    for delay in ("38 ms", "82 ms", "110 ms", "1 ms", "4 ms", "15 ms"):
        assert f">{delay}<" in text
    for label in ("New York", "US East", "nyc-k8s · GoBGP · 8 pods", "k8s node (GoBGP)"):
        assert label in text


def test_title_can_be_given(tmp_path: Path) -> None:
    out = draw_topology(_shipped("two-sites-mini"), tmp_path / "t.svg", title="Our lab")
    assert ">Our lab<" in out.read_text()


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_same_plan_gives_the_same_bytes(suffix: str, tmp_path: Path) -> None:
    plan = _shipped("three-sites")
    first = draw_topology(plan, tmp_path / f"a{suffix}").read_bytes()
    assert draw_topology(plan, tmp_path / f"b{suffix}").read_bytes() == first


@pytest.mark.parametrize("name", ["topology.jpg", "topology.pdf", "topology", "topology.png.txt"])
def test_other_suffixes_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        draw_topology(_shipped("two-sites-mini"), tmp_path / name)
    assert not (tmp_path / name).exists()


def test_suffix_case_does_not_matter(tmp_path: Path) -> None:
    assert _png_size(draw_topology(_shipped("two-sites-mini"), tmp_path / "T.PNG"))[0] > 0


def test_large_topology_stays_readable(tmp_path: Path) -> None:
    """10 sites x 8 leafs x 32 nodes: two tiers of sites, crowded rows collapse into boxes."""
    plan = _generated(sites=10, leafs=8, nodes=32)
    width, _ = _png_size(draw_topology(plan, tmp_path / "big.png"))
    assert width <= MAX_WIDTH * DPI
    text = draw_topology(plan, tmp_path / "big.svg").read_text()
    assert ">32 nodes" in text and "32 pods<" in text
    assert ">t10<" in text and ">dc10<" in text and ">dc10-s2<" in text


def test_mixed_topology_renders(tmp_path: Path) -> None:
    """Border leafs, two clusters (GoBGP and FRR), a dual-homed site, a transit with no site."""
    document = {
        "name": "mixed",
        "transits": [{"name": "a", "location": "Frankfurt"}, {"name": "b"}, {"name": "lone"}],
        "wan_links": [{"between": ["a", "b"], "delay": "5ms"},
                      {"between": ["b", "lone"], "delay": "7ms"},
                      {"between": ["a", "lone"], "delay": "9ms"}],
        "sites": [
            {"name": "fra", "location": "Frankfurt am Main",
             "uplinks": [{"transit": "a", "delay": "2ms"}, {"transit": "b", "delay": "3ms"}],
             "fabric": {"spines": 2, "leafs": 3, "border": "leafs"},
             "clusters": [{"name": "fra-a", "nodes": 3},
                          {"name": "fra-b", "nodes": 2, "speaker": "frr"}]},
            {"name": "bare", "uplinks": [{"transit": "b"}], "fabric": {"leafs": 12}},
        ],
        "services": [{"name": "dns", "vip": "192.0.2.53", "port": 53, "clusters": ["fra-a"]}],
        "clients": [{"name": f"c{i}", "transit": "lone", "delay": f"{i}ms"} for i in range(5)],
    }
    plan = build_plan(Topology.model_validate(document))
    text = draw_topology(plan, tmp_path / "mixed.svg").read_text()
    assert ">fra-b1<" in text and "border leaf" in text and "k8s node (FRR)" in text
    assert "(fra-a)" in text  # a service on some clusters only says which
    assert _png_size(draw_topology(plan, tmp_path / "mixed.png"))[0] > 0
