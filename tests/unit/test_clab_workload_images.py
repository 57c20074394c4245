"""The containerlab backend's images for users' own servers: a base of their own per set of
Debian packages, the node and pod images on it, and the programs checked in them before
anything is deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import pipeline
from lab.backend.containerlab import deploy, images
from lab.errors import BackendError
from tests.conftest import TOPOLOGIES


@pytest.fixture(autouse=True)
def _no_prober_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The client image's tag hashes the prober binary: a stand-in file, no compiler."""
    prober = tmp_path / "prober"
    prober.write_bytes(b"prober")
    monkeypatch.setattr("lab.measure.probe.build.ensure_prober_built", lambda: prober)


def test_workload_packages_give_the_node_and_pod_images_a_base_of_their_own() -> None:
    plain = images.role_tags()
    assert images.lab_tags(()) == plain
    tags = images.lab_tags(("nsd", "nginx-light"))
    assert {role for role in images.ROLES if tags[role] != plain[role]} == {"node", "pod"}
    assert tags == images.lab_tags(("nginx-light", "nsd", "nsd"))  # a set of packages
    assert tags["pod"] != images.lab_tags(("nsd",))["pod"]
    assert images.base_tag(("nsd",)) not in (images.base_tag(), images.base_tag(("knot",)))
    assert tags["pod"].startswith("anylab-pod:") and tags["node"].startswith("anylab-node:")


def test_programs_missing_from_the_images_are_all_said_before_deploying(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each service's command is looked up in the pod image, an `exec` check's program in
    the node image; every miss is reported at once, with the hint."""
    plan = pipeline.plan(TOPOLOGIES / "web-anycast.yaml")
    asked: list[tuple[str, tuple[str, ...]]] = []

    def missing(tag: str, programs: list[str]) -> list[str]:
        asked.append((tag, tuple(programs)))
        return list(programs)

    monkeypatch.setattr(images, "missing_programs", missing)
    tags = {"router": "r:1", "node": "n:1", "pod": "p:1", "client": "c:1"}
    with pytest.raises(BackendError) as raised:
        deploy.check_workload_programs(plan, tags)
    assert asked == [("p:1", ("/usr/sbin/nginx",))]
    message = str(raised.value)
    assert "service web runs '/usr/sbin/nginx', which image p:1 does not have" in message
    assert "`workload.packages`" in message
    monkeypatch.setattr(images, "missing_programs", lambda _tag, _programs: [])
    deploy.check_workload_programs(plan, tags)  # all there: nothing to say
