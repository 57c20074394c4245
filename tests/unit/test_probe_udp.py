"""Starting the UDP prober: argument building and checks (no root, nothing started)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import lab.measure.probe
from lab.backend.state import ProcessRecord
from lab.errors import ProbeError
from lab.measure.probe import ProbeTarget, prober_argv, start_udp_prober
from lab.measure.probe import udp as udp_module
from lab.measure.probe.build import PROBER_SOURCE, ensure_prober_built
from lab.measure.probe.build import main as build_main

BIN = Path("/opt/prober")
DNS = ProbeTarget("dns", "192.0.2.53", 53)
NTP = ProbeTarget("ntp", "192.0.2.123", 123)


def test_argv_lists_every_target_and_option(tmp_path: Path) -> None:
    argv = prober_argv(BIN, [DNS, NTP], 1.0, 4, tmp_path / "o.txt", duration_ms=3000,
                       rt_priority=7)
    assert argv == [str(BIN), "--interval-us", "1000", "--out", str(tmp_path / "o.txt"),
                    "--flows", "4", "--target", "dns=192.0.2.53:53",
                    "--target", "ntp=192.0.2.123:123", "--duration-ms", "3000",
                    "--rt-priority", "7"]


def test_rotating_flows_is_one_option_and_off_by_default(tmp_path: Path) -> None:
    argv = prober_argv(BIN, [DNS, NTP], 1.0, 16, tmp_path / "o.txt", rotate=True)
    assert argv[5:8] == ["--flows", "16", "--rotate"] and argv.count("--rotate") == 1
    assert "--rotate" not in prober_argv(BIN, [DNS], 1.0, 16, tmp_path / "o.txt")


def test_an_ipv6_target_is_written_in_brackets_beside_the_ipv4_one(tmp_path: Path) -> None:
    argv = prober_argv(BIN, [DNS, ProbeTarget("dns", "2001:db8:53::53", 53)], 1.0, 1,
                       tmp_path / "o")
    assert argv[argv.index("--target") + 3] == "dns=[2001:db8:53::53]:53"


def test_no_real_time_priority_means_no_option(tmp_path: Path) -> None:
    assert "--rt-priority" not in prober_argv(BIN, [DNS], 0.5, 1, tmp_path / "o", rt_priority=0)


@pytest.mark.parametrize(("ms", "us"), [(1.0, 1000), (0.5, 500), (0.01, 10), (250, 250000)])
def test_interval_in_microseconds(ms: float, us: int) -> None:
    assert udp_module.interval_us(ms) == us


@pytest.mark.parametrize("ms", [0.0, 0.005, 1.0000001, float("nan"), -1.0])
def test_bad_intervals_are_refused(ms: float) -> None:
    with pytest.raises(ProbeError, match="interval"):
        udp_module.interval_us(ms)


@pytest.mark.parametrize(("targets", "flows", "message"), [
    ([], 1, "1 to 16 targets"),
    ([DNS, DNS], 1, "probed twice in one family"),
    ([ProbeTarget("d n s", "192.0.2.1", 53)], 1, "without blanks"),
    ([ProbeTarget("a=b", "192.0.2.1", 53)], 1, "without blanks"),
    ([ProbeTarget("dns", "2001:db8::zz", 53)], 1, "not an IP address"),
    ([ProbeTarget("dns", "192.0.2.1", 0)], 1, "out of range"),
    ([DNS], 0, "flows must be"),
    ([DNS], 65, "flows must be"),
], ids=["none", "twice", "blank", "equals", "ipv6", "port", "no-flows", "many-flows"])
def test_bad_arguments_are_refused(tmp_path: Path, targets: list[ProbeTarget], flows: int,
                                   message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        prober_argv(BIN, targets, 1.0, flows, tmp_path / "o")


def test_start_hands_the_prober_to_the_spawn_it_is_given(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def fake_spawn(argv: Sequence[str], log: Path) -> ProcessRecord:
        calls.append({"argv": list(argv), "log": log})
        return ProcessRecord(4242, "us-c1", "prober", 1)

    out = tmp_path / "run" / "c1.txt"
    record = start_udp_prober(fake_spawn, "us-c1", [DNS], 1.0, 2, out, tmp_path / "c1.log",
                              binary=BIN)
    assert record.pid == 4242 and out.parent.is_dir()
    start_udp_prober(fake_spawn, "us-c1", [DNS], 1.0, 2, out, tmp_path / "c1.log", binary=BIN,
                     rotate=True)
    first, rotating = calls
    assert first["log"] == tmp_path / "c1.log"
    assert first["argv"][:3] == [str(BIN), "--interval-us", "1000"]
    assert "--rotate" not in first["argv"] and "--rotate" in rotating["argv"]


def test_the_prober_builds_and_refuses_bad_arguments(tmp_path: Path) -> None:
    binary = ensure_prober_built(out_dir=tmp_path)
    assert binary.name.startswith("prober-") and ensure_prober_built(out_dir=tmp_path) == binary
    for argv, message in (([], "usage"), (["--interval-us", "5"], "--interval-us"),
                          (["--interval-us", "1000", "--out", "x", "--target", "dns"],
                           "SERVICE=IP:PORT"),
                          (["--rotate"], "usage"),  # an option without a value
                          (["--bogus", "1"], "unknown option")):
        proc = subprocess.run([str(binary), *argv], capture_output=True, text=True, timeout=10,
                              check=False)
        assert proc.returncode == 2 and message in proc.stderr, (argv, proc.stderr)


def test_build_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_main(["--print-command"]) == 0
    assert str(PROBER_SOURCE) in capsys.readouterr().out
    assert build_main(["--what"]) == 2


def test_the_public_names_resolve() -> None:
    for name in lab.measure.probe.__all__:
        assert getattr(lab.measure.probe, name) is not None
    with pytest.raises(AttributeError):
        _ = lab.measure.probe.nothing_here  # type: ignore[attr-defined]
