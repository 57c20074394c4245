"""Property tests of the metrics: a reference written probe by probe from the definitions in
docs/run-format.md, the relations between the outage figures (longest loss window,
rate-derived and loss-derived, RFC 6412), and windows that tile the timeline."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.measure.metrics.summary import EventWindow, client_metrics, event_windows
from tests.unit.test_metrics import EVENT, MS, T0, TRIAL_END, S, injector, probe_stream, window

PROPERTY = settings(deadline=None,
                    max_examples=int(os.environ.get("ANYLAB_FUZZ_EXAMPLES", "100")),
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(offset_ms=st.integers(0, 2_000), length=st.integers(0, 3_000))
def test_one_contiguous_gap(offset_ms: int, length: int) -> None:
    (entry,) = client_metrics(probe_stream(gaps=[(EVENT + offset_ms * MS, length)]),
                              window(), 1.0)
    assert entry["lost"] == length
    assert entry["loss_derived_ms"] == float(length)
    assert entry["loss_derived_ms"] <= entry["rate_derived_ms"] + entry["resolution_ms"]
    assert (entry["outage_ms"] == 0) == (entry["lost"] == 0)
    assert entry["outage_ms"] == entry["loss_derived_ms"]  # one window
    assert entry["loss_windows"] == (1 if length else 0)
    assert entry["rate_derived_ms"] == (float(offset_ms + length) if length else 0.0)
    assert entry["recovered"] is True


def stream_from(send: np.ndarray, answered: np.ndarray, sites: list[str]) -> pd.DataFrame:
    count = len(send)
    return pd.DataFrame({
        "trial": np.zeros(count, dtype=np.int16), "client": "c", "service": "s",
        "flow": np.zeros(count, dtype=np.int16), "seq": np.arange(count),
        "send_ns": send,
        "recv_ns": pd.arrays.IntegerArray(send + 10 * MS, ~answered),
        "rtt_ms": np.where(answered, 10.0, np.nan),
        "site": [site if ok else None for site, ok in zip(sites, answered, strict=True)],
        "node": [f"{site}-n1" if ok else None for site, ok in zip(sites, answered, strict=True)]})


def reference(send: list[int], answered: list[bool], win: EventWindow, reply_timeout: int,
              inflight: int) -> tuple[int, int, bool, list[int]]:
    """(lost, rate-derived outage in ns, recovered, the length of each loss window in ns),
    probe by probe."""
    inside = [i for i, t in enumerate(send) if win.t_ns <= t < win.end_ns]
    stream_end = min(win.trial_end_ns, send[-1] + MS)
    judged_end = min(win.end_ns, stream_end - reply_timeout)
    lost = [i for i in inside if send[i] < judged_end and not answered[i]]
    # the losses in flight at the instant: the run of lost probes reaching it, if it began
    # within the guard (the window before left them to this one)
    in_flight: list[int] = []
    for i in reversed([i for i, t in enumerate(send) if t < win.t_ns]):
        if answered[i]:
            break
        in_flight.insert(0, i)
    if in_flight and send[in_flight[0]] < win.t_ns - inflight:
        in_flight = []
    in_flight = [i for i in in_flight if send[i] < judged_end]
    if lost and win.ends_at_action:
        after = [i for i in inside if i > lost[-1] and answered[i]]
        if not after:
            before = [i for i in inside if i < lost[-1] and answered[i]]
            run_start = next(i for i in lost if not before or i > before[-1])
            if send[run_start] >= win.end_ns - inflight:
                lost = [i for i in lost if before and i < before[-1]]
    lost = in_flight + lost
    if not lost:
        return 0, 0, True, []
    runs = [[lost[0]]]
    for i in lost[1:]:
        if i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    windows = []
    for run in runs:
        reply = [i for i in inside if i > run[-1] and answered[i]]
        windows.append((send[reply[0]] if reply else win.end_ns) - send[run[0]])
    recovery = [i for i in inside if i > lost[-1] and answered[i]]
    began = min(win.t_ns, send[lost[0]])
    if not recovery:
        return len(lost), win.end_ns - began, False, windows
    return len(lost), send[recovery[0]] - began, True, windows


@st.composite
def probe_patterns(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[str], EventWindow,
                                               int]:
    count = draw(st.integers(1, 300))
    gaps = draw(st.lists(st.integers(200_000, 1_800_000), min_size=count, max_size=count))
    send = T0 + np.cumsum(np.asarray(gaps, dtype=np.int64))
    answered = np.asarray(draw(st.lists(st.booleans(), min_size=count, max_size=count)))
    sites = draw(st.lists(st.sampled_from(["nyc", "ams", "sin"]), min_size=count,
                          max_size=count))
    span = int(send[-1] - T0)
    start = T0 + draw(st.integers(0, span))
    trial_end = int(send[-1]) + draw(st.integers(1, 40 * MS))
    end = draw(st.sampled_from([trial_end, min(trial_end, start + draw(st.integers(
        1, span + 1)))]))
    win = window(t_ns=start, end_ns=end, trial_end_ns=trial_end)
    # often a loss run up to the window end: unrecovered outages and in-flight losses
    tail = draw(st.sampled_from([0, draw(st.integers(0, 60 * MS))]))
    answered &= ~((send >= end - tail) & (send < end))
    return send, answered, sites, win, draw(st.integers(0, 30 * MS))


@PROPERTY
@given(pattern=probe_patterns(), reply_timeout_ms=st.integers(0, 50))
def test_any_loss_pattern_matches_the_reference(pattern: Any, reply_timeout_ms: int) -> None:
    send, answered, sites, win, inflight = pattern
    (entry,) = client_metrics(stream_from(send, answered, sites), win, 1.0,
                              reply_timeout_ns=reply_timeout_ms * MS, inflight_ns=inflight)
    lost, rate_derived_ns, recovered, windows = reference(
        [int(t) for t in send], list(answered), win, reply_timeout_ms * MS, inflight)
    assert (entry["lost"], entry["recovered"]) == (lost, recovered)
    assert entry["rate_derived_ms"] == round(rate_derived_ns / MS, 6)
    assert entry["loss_windows"] == len(windows)
    assert entry["outage_ms"] == round(max(windows, default=0) / MS, 6)
    assert (entry["outage_ms"] == 0) == (entry["lost"] == 0)
    began = min([win.t_ns, *([entry["first_loss_ns"]] if entry["lost"] else [])])
    assert entry["outage_ms"] <= entry["rate_derived_ms"] <= (win.end_ns - began) / MS


@PROPERTY
@given(pattern=probe_patterns())
def test_flip_is_the_first_reply_from_another_site(pattern: Any) -> None:
    send, answered, sites, win, _ = pattern
    (entry,) = client_metrics(stream_from(send, answered, sites), win, 1.0)
    replies = [(int(t), site) for t, ok, site in zip(send, answered, sites, strict=True) if ok]
    before = [site for t, site in replies if win.t_ns - S <= t < win.t_ns]
    if not before:
        assert entry["site_before"] is None and entry["flip_ns"] is None
        return
    assert before.count(entry["site_before"]) == max(before.count(s) for s in set(before))
    flips = [t for t, site in replies
             if win.t_ns <= t < win.end_ns and site != entry["site_before"]]
    assert entry["flip_ns"] == (flips[0] if flips else None)


@PROPERTY
@given(data=st.data(), steps=st.integers(1, 6))
def test_windows_tile_the_timeline(data: st.DataObject, steps: int) -> None:
    instants = data.draw(st.lists(st.integers(EVENT, TRIAL_END - 1), min_size=2 * steps,
                                  max_size=2 * steps, unique=True))
    events = []
    for step in range(steps):
        fault_at, undo_at = sorted(instants[2 * step:2 * step + 2])
        events.append(injector("fault", fault_at, step))
        if data.draw(st.booleans()):
            events.append(injector("undo", undo_at, step))
    events.sort(key=lambda e: e["t_ns"])
    windows = event_windows(events, 0, TRIAL_END)
    every = sorted([*windows, *(w.reversion for w in windows if w.reversion)],
                   key=lambda w: w.t_ns)
    assert len(every) == len(events)
    assert [w.end_ns for w in every[:-1]] == [w.t_ns for w in every[1:]]
    assert every[-1].end_ns == TRIAL_END
    assert all(w.reversion is None or w.reversion.t_ns > w.t_ns for w in windows)
