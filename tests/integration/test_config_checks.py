"""Every rendered configuration passes the daemons' own checkers (vtysh, gobgpd, nft)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import pipeline
from lab.render.check import available_checkers, check_rendered_dir
from lab.topology.generate import ScaleParameters, scale_topology_yaml
from tests.conftest import SHIPPED_TOPOLOGIES, require_root, require_tool

pytestmark = pytest.mark.daemons


def _check(topology: Path, out: Path) -> None:
    """Every file checked, each kind at least once: gobgpd.toml where a node runs GoBGP."""
    require_tool("vtysh", "gobgpd", "nft", "unshare")
    require_root()  # nft -c runs in a throw-away namespace: unshare -n needs root
    plan, rendered = pipeline.render(topology)
    rendered.write(out)
    results = check_rendered_dir(rendered, out)
    assert all(available_checkers().values())
    gobgp = any(node.speaker == "gobgp" for node in plan.nodes)
    kinds = {"frr.conf", "service-proxy.nft"} | ({"gobgpd.toml"} if gobgp else set())
    assert kinds <= {r.file for r in results}
    failures = [f"{r.node}/{r.file}: {r.output}" for r in results if not r.ok]
    assert failures == []


@pytest.mark.parametrize("topology", SHIPPED_TOPOLOGIES, ids=lambda p: p.stem)
def test_shipped_topologies_pass_daemon_checks(topology: Path, tmp_path: Path) -> None:
    _check(topology, tmp_path)


def test_generated_topology_passes_daemon_checks(tmp_path: Path) -> None:
    path = tmp_path / "scale.yaml"
    path.write_text(scale_topology_yaml(ScaleParameters(sites=3, leafs=3, nodes=4,
                                                        speaker="frr")))
    _check(path, tmp_path / "out")


def test_checker_catches_a_broken_line(tmp_path: Path) -> None:
    require_tool("vtysh")
    plan, rendered = pipeline.render(SHIPPED_TOPOLOGIES[0])
    node = plan.nodes[0].name
    broken = {**rendered.files, node: {**rendered.files[node], "frr.conf":
                                       rendered.files[node]["frr.conf"] + "bogus command\n"}}
    from lab.render.configs import RenderedLab

    lab = RenderedLab(broken)
    lab.write(tmp_path)
    failed = [r for r in check_rendered_dir(lab, tmp_path) if not r.ok]
    assert [(r.node, r.file) for r in failed] == [(node, "frr.conf")]
    assert "bogus command" in failed[0].output
