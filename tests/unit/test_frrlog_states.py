"""lab.measure.recorder.frrlog.LogStates: latest BGP and BFD state per peer from an FRR 8.4 log that
grows between reads (only new bytes parsed, partial last lines held back)."""

from __future__ import annotations

from pathlib import Path

from lab.measure.recorder.frrlog import LogStates

BGP_UP = ("2026/11/27 03:11:24.671597 BGP: [N9HHH-F8H1M] %ADJCHANGE: neighbor 10.254.0.0(vm) "
          "in vrf default Up")
BGP_DOWN = ("2026/11/27 03:11:25.677401 BGP: [PXVXG-TFNNT] %ADJCHANGE: neighbor 10.254.0.0(vm) "
            "in vrf default Down BGP Notification send")
BGP_UP_PLAIN = ("2026/11/27 03:11:24.700001 BGP: [N9HHH-F8H1M] %ADJCHANGE: neighbor 10.254.0.9 "
                "in vrf default Up")
NOTE = ("2026/11/27 03:11:25.677300 BGP: [HZN6M-XRM1G] %NOTIFICATION(Hard Reset): sent to "
        "neighbor 10.254.0.0 6/10 (Cease/BFD Down) 0 bytes ")


def bfd(old: str, new: str, reason: str = "") -> str:
    return ("2026/11/27 03:11:25.677355 BFD: [SEY1D-NT8EQ] state-change: [mhop:no "
            "peer:10.254.0.0 local:10.254.0.1 vrf:default ifname:nyc-s1] "
            f"{old} -> {new}{f' reason:{reason}' if reason else ''}")


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_reads_only_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    states = LogStates(log)
    append(log, BGP_UP + "\n")
    states.update()
    assert states.bgp == {"10.254.0.0": "Up"} and states.bfd == {}
    states.bgp.clear()  # a re-read of the first line would bring it back
    append(log, bfd("down", "up") + "\n")
    states.update()
    states.update()
    assert states.bgp == {} and states.bfd == {"10.254.0.0": "up"}


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    states = LogStates(log)
    append(log, BGP_UP)
    states.update()
    assert states.bgp == {}
    append(log, "\n" + BGP_DOWN[:40])
    states.update()
    assert states.bgp == {"10.254.0.0": "Up"}
    append(log, BGP_DOWN[40:] + "\n")
    states.update()
    assert states.bgp == {"10.254.0.0": "Down"}


def test_latest_state_wins_per_peer(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    log.write_text("\n".join([BGP_UP, BGP_UP_PLAIN, NOTE, BGP_DOWN]) + "\n", encoding="utf-8")
    states = LogStates(log)
    states.update()
    assert states.bgp == {"10.254.0.0": "Down", "10.254.0.9": "Up"}
    append(log, BGP_UP + "\n")
    states.update()
    assert states.bgp == {"10.254.0.0": "Up", "10.254.0.9": "Up"}


def test_bfd_new_state_per_peer(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    states = LogStates(log)
    seen = []
    for old, new, reason in [("down", "init", ""), ("init", "up", ""),
                             ("up", "down", "neighbor-down")]:
        append(log, bfd(old, new, reason) + "\n")
        states.update()
        seen.append(dict(states.bfd))
    assert seen == [{"10.254.0.0": "init"}, {"10.254.0.0": "up"}, {"10.254.0.0": "down"}]
    assert states.bgp == {}


def test_other_lines_are_ignored(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    log.write_text("\n".join([
        NOTE,
        "2026/11/27 03:11:20.000001 BGP: [VTVCM-Y2NW3] Configuration Read in Took: 00:00:00",
        "2026/11/27 03:11:20.000002 BFD: [MSVDW-Y8Z5Q] state-change: [garbled",
        "2026/11/27 03:11:20.000003 BFD: state-change: [mhop:no vrf:default] down -> up",
        "%ADJCHANGE: neighbor 10.254.0.0 in vrf default Up",  # no timestamp: not a log line
        "not a log line at all", ""]) + "\n", encoding="utf-8")
    with log.open("ab") as handle:
        handle.write(b"\xff\xfe not utf-8\n")
    states = LogStates(log)
    states.update()
    assert states.bgp == {} and states.bfd == {}


def test_missing_file_then_created(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    states = LogStates(log)
    states.update()
    assert states.bgp == {} and states.bfd == {}
    append(log, BGP_UP + "\n")
    states.update()
    assert states.bgp == {"10.254.0.0": "Up"}


def test_hostname_suffix_keys_on_the_address(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    log.write_text(BGP_UP.replace("(vm)", "(nyc-s1.example)") + "\n" + BGP_UP_PLAIN + "\n",
                   encoding="utf-8")
    states = LogStates(log)
    states.update()
    assert states.bgp == {"10.254.0.0": "Up", "10.254.0.9": "Up"}


def test_a_truncated_log_is_read_again(tmp_path: Path) -> None:
    log = tmp_path / "frr.log"
    states = LogStates(log)
    append(log, BGP_UP + "\n" + BGP_UP_PLAIN + "\n")
    states.update()
    log.write_text(BGP_DOWN + "\n", encoding="utf-8")  # shorter than what was read
    states.update()
    assert states.bgp == {"10.254.0.0": "Down", "10.254.0.9": "Up"}
