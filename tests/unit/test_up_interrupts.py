"""An interrupt (Ctrl-C, SIGTERM) at any moment of `up` removes the lab, including the moment
just after the deploy has finished and before readiness starts; a deploy refused because the
name is taken never removes the other lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab import pipeline
from lab.backend import labs
from lab.backend.fake import FakeBackend
from lab.backend.names import lab_dir
from lab.errors import BackendError
from tests.conftest import TOPOLOGIES

MINI = TOPOLOGIES / "two-sites-mini.yaml"


@pytest.fixture(autouse=True)
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYLAB_STATE_DIR", str(tmp_path / "state"))


def _interrupt_after_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    deploy = pipeline.deploy

    def deploy_then_interrupt(*args: Any, **kwargs: Any) -> Any:
        deploy(*args, **kwargs)
        raise KeyboardInterrupt("SIGTERM")  # lands as the deploy returns

    monkeypatch.setattr(pipeline, "deploy", deploy_then_interrupt)


@pytest.mark.parametrize("keep_on_failure", [False, True])
def test_an_interrupt_right_after_the_deploy_removes_the_lab(
        monkeypatch: pytest.MonkeyPatch, keep_on_failure: bool) -> None:
    """The lab is not handed over yet: it goes even with --keep-on-failure."""
    _interrupt_after_deploy(monkeypatch)
    backend = FakeBackend()
    with pytest.raises(KeyboardInterrupt):
        labs.up(MINI, "irq", lambda _m: None, backend=backend,
                keep_on_failure=keep_on_failure)
    assert ("destroy", "irq") in backend.journal
    assert not lab_dir("irq").exists()


def test_an_interrupt_while_waiting_removes_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt("SIGINT")

    monkeypatch.setattr(pipeline, "ready", interrupted)
    backend = FakeBackend()
    with pytest.raises(KeyboardInterrupt):
        labs.up(MINI, "irq2", lambda _m: None, backend=backend)
    assert backend.journal[-1] == ("destroy", "irq2")


def test_a_refused_deploy_leaves_the_lab_that_has_the_name() -> None:
    first = FakeBackend()
    labs.up(MINI, "taken", lambda _m: None, backend=first)
    second = FakeBackend()
    with pytest.raises(BackendError, match="exists already"):
        labs.up(MINI, "taken", lambda _m: None, backend=second)
    assert ("destroy", "taken") not in second.journal
    assert lab_dir("taken").exists()
