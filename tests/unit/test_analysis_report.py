"""The HTML report: one self-contained file, escaped, for one run or several."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis import RunError, load_run, render_report, write_report
from analysis.metrics import client_table
from analysis.tables import compact_client_table, format_table, to_html
from tests.unit.test_analysis_data import (
    MS,
    SAMPLE_BFD,
    T0,
    injector,
    lane,
    meta,
    runner,
    write_run,
)

# the lane runs 2 s (the reply timeout) past the undo's window, which is judged
EVENTS = [runner("trial_start", T0), injector("fault", T0 + 1000 * MS),
          injector("undo", T0 + 2000 * MS), runner("trial_end", T0 + 5000 * MS)]


def _tiny(root: Path, **overrides: object) -> Path:
    return write_run(root, [lane("c1", count=5000, lost=range(1000, 1200), sites={1500: "ams"})],
                     EVENTS,
                     run_meta=meta(**overrides))


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', html)


def test_single_run_report(tmp_path: Path) -> None:
    out = write_report([SAMPLE_BFD], tmp_path / "deep" / "report.html")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert len(_images(html)) == 6
    assert "A Kubernetes node in New York freezes" in html
    for heading in ("Events", "Clients after each fault", "Timers", "Scenario steps",
                    "Timeline", "Control plane"):
        assert f">{heading}<" in html, heading
    assert "869.3 (bfd)" in html  # detection, from the events table
    assert "frr 8.4.4" in html and "300 ms x 3" in html  # versions and timers
    assert "Comparison" not in html


def test_report_is_self_contained(tmp_path: Path) -> None:
    html = render_report([load_run(_tiny(tmp_path / "r"))])
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html


def test_report_escapes_run_text(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script> & <b>bold</b>'
    root = _tiny(tmp_path / "r", scenario={"name": "tiny<i>", "description": evil,
                                           "file": "x.yaml", "document": {}})
    html = render_report([load_run(root)])
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "tiny&lt;i&gt;" in html


def test_several_runs_compare(tmp_path: Path) -> None:
    first = _tiny(tmp_path / "a")
    second = _tiny(tmp_path / "b", run_id="20261127-000001-tiny",
                   scenario={"name": "other", "description": "", "file": "", "document": {}})
    html = write_report([first, second], tmp_path / "report.html").read_text()
    assert "Comparison of 2 runs" in html
    assert html.count('<details class="run">') == 2
    assert len(_images(html)) == 1 + 2 * 6


def test_incomplete_run_is_flagged(tmp_path: Path) -> None:
    root = _tiny(tmp_path / "r", complete=False, interrupted=True)
    html = render_report([load_run(root)])
    assert "This run is incomplete (interrupted)" in html
    with pytest.raises(RunError, match="incomplete"):
        write_report([root], tmp_path / "x.html", require_complete=True)


def test_report_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        render_report([])


def test_missing_run_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError):
        write_report([tmp_path / "nope"], tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_tables_as_text(tmp_path: Path) -> None:
    run = load_run(_tiny(tmp_path / "r"))
    table = client_table(run, phases=("fault",))
    text = compact_client_table(table).iloc[0]
    assert text["site"] == "nyc \u2192 ams" and text["flip (ms)"] == "500.0"
    assert text["outage (ms)"] == "200.0" and text["flows hit"] == "1 of 1"
    shown = format_table(table)
    assert shown.loc[0, "outage (ms)"] == "200.0" and shown.loc[0, "recovered"] == "yes"
    assert "flip_ns" not in shown.columns and "flip (ms)" in shown.columns
    assert "<table" in to_html(table) and to_html(table.iloc[:0]).startswith("<p")
    json.dumps(text.to_dict())  # display text only
