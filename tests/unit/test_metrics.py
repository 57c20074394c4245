"""The figures of summary.json on synthetic probe streams, routes and events (exact values)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lab.errors import MetricsError
from lab.measure.metrics.summary import (
    EventWindow,
    aggregate,
    client_metrics,
    control_plane,
    describe,
    detection,
    event_windows,
    probe_streams,
    summarize_run,
    summarize_trial,
    trial_end_ns,
)

MS = 1_000_000
S = 1_000_000_000
T0 = 100 * S  # first probe
EVENT = T0 + 5 * S  # the fault instant
TRIAL_END = T0 + 15 * S  # one probe a millisecond until the trial end


def probe_stream(*, client: str = "us-c1", service: str = "dns", flow: int = 0, trial: int = 0,
                 start_ns: int = T0, count: int = 15_000, interval_ns: int = MS,
                 site: str = "nyc", rtt_ms: float = 10.0,
                 gaps: Sequence[tuple[int, int]] = (),
                 flips: Sequence[tuple[int, str]] = (),
                 rtts: Sequence[tuple[int, float]] = ()) -> pd.DataFrame:
    """Probes every ``interval_ns`` answered by ``site``. ``gaps``: (instant, n) loses n probes
    from the first one sent at or after the instant; ``flips``: (instant, site) and ``rtts``:
    (instant, ms) apply from that instant on."""
    send = start_ns + np.arange(count, dtype=np.int64) * interval_ns
    sites = np.full(count, site, dtype=object)
    for at, new_site in flips:
        sites[send >= at] = new_site
    rtt = np.full(count, rtt_ms)
    for at, value in rtts:
        rtt[send >= at] = value
    lost = np.zeros(count, dtype=bool)
    for at, n in gaps:
        first = int(np.searchsorted(send, at))
        lost[first:first + n] = True
    recv = send + (rtt * MS).astype(np.int64)
    return pd.DataFrame({
        "trial": np.full(count, trial, dtype=np.int16),
        "client": client, "service": service,
        "flow": np.full(count, flow, dtype=np.int16),
        "seq": np.arange(count, dtype=np.int64), "send_ns": send,
        "recv_ns": pd.arrays.IntegerArray(recv, lost),
        "rtt_ms": np.where(lost, np.nan, rtt),
        "site": unless_lost(sites, lost),
        "cluster": unless_lost(np.char.add(sites.astype(str), "-k8s"), lost),
        "node": unless_lost(np.char.add(sites.astype(str), "-k8s-n1"), lost),
        "pod": unless_lost(np.full(count, "pod-0"), lost),
    })


def unless_lost(values: np.ndarray[Any, Any], lost: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The identity of the answering pod: null for a lost probe."""
    out = values.astype(object)
    out[lost] = None
    return out


def window(t_ns: int = EVENT, end_ns: int = TRIAL_END, trial_end_ns: int = TRIAL_END,
           target: str = "nyc-k8s-n1", trial: int = 0) -> EventWindow:
    return EventWindow(trial=trial, step=0, fault="node-crash", target=target, kind="fault",
                       t_ns=t_ns, end_ns=end_ns, trial_end_ns=trial_end_ns)


def one(probes: pd.DataFrame, win: EventWindow | None = None, **kwargs: Any) -> dict[str, Any]:
    (entry,) = client_metrics(probes, win or window(), 1.0, **kwargs)
    return entry


def injector(kind: str, t_ns: int, step: int, *, trial: int = 0, fault: str = "node-crash",
             target: str = "nyc-k8s-n1", **extra: Any) -> dict[str, Any]:
    return {"t_ns": t_ns, "trial": trial, "source": "injector", "kind": kind, "step": step,
            "fault": fault, "target": target, "done_ns": t_ns + 5 * MS, "details": {}, **extra}


# ------------------------------------------------------------------------------ windows


def test_windows_end_at_the_next_action_and_reversion_at_the_following_one() -> None:
    events = [
        {"t_ns": T0, "trial": 0, "source": "runner", "kind": "settled"},
        injector("fault", EVENT, 0),
        injector("fault", EVENT + 2 * S, 1, fault="link-down", target="a--b"),
        injector("undo", EVENT + 3 * S, 0),
        injector("fault", EVENT + 1 * S, 0, trial=1),  # another trial
    ]
    first, second = event_windows(events, 0, TRIAL_END)
    assert (first.step, first.t_ns, first.end_ns, first.kind) == (0, EVENT, EVENT + 2 * S,
                                                                  "fault")
    assert first.done_ns == EVENT + 5 * MS and first.ends_at_action
    assert first.reversion is not None
    assert (first.reversion.kind, first.reversion.t_ns, first.reversion.end_ns) == (
        "undo", EVENT + 3 * S, TRIAL_END)
    assert not first.reversion.ends_at_action
    assert (second.fault, second.target, second.end_ns) == ("link-down", "a--b", EVENT + 3 * S)
    assert second.reversion is None


def test_windows_of_link_flap_cycles_pair_each_undo_with_its_own_fault() -> None:
    events = [injector(kind, EVENT + i * S, 0, fault="link-flap", cycle=i // 2)
              for i, kind in enumerate(["fault", "undo", "fault", "undo"])]
    windows = event_windows(events, 0, TRIAL_END)
    assert [(w.t_ns, w.end_ns, w.cycle) for w in windows] == [
        (EVENT, EVENT + S, 0), (EVENT + 2 * S, EVENT + 3 * S, 1)]
    assert [w.reversion.t_ns for w in windows if w.reversion] == [EVENT + S, EVENT + 3 * S]
    assert windows[1].reversion is not None and windows[1].reversion.end_ns == TRIAL_END


def test_windows_skip_late_actions_share_same_instant_ends_and_mark_trial_end_undos() -> None:
    events = [injector("fault", EVENT, 0), injector("fault", EVENT, 1),
              {**injector("undo", TRIAL_END - MS, 0), "details": {"at_trial_end": True}},
              injector("undo", TRIAL_END, 1)]  # at the end: not measured
    a, b = event_windows(events, 0, TRIAL_END)
    assert a.end_ns == b.end_ns == TRIAL_END - MS
    assert a.reversion is not None and a.reversion.at_trial_end
    assert b.reversion is None


def test_faults_the_timeline_puts_at_one_instant_share_their_window() -> None:
    """Applied one after the other (here 40 ms apart, as a slow fault takes), two faults of
    the same instant both run to the next instant's action; one of another instant does not."""
    events = [injector("fault", EVENT, 0, at_ms=1000.0),
              injector("fault", EVENT + 40 * MS, 1, at_ms=1000.0, fault="link-down"),
              injector("undo", EVENT + 3 * S, 0, at_ms=4000.0),
              injector("undo", EVENT + 3 * S + 7 * MS, 1, at_ms=4000.0),
              injector("fault", EVENT + 5 * S, 2, at_ms=6000.0)]
    a, b, c = event_windows(events, 0, TRIAL_END)
    assert a.end_ns == b.end_ns == EVENT + 3 * S and a.at_ms == 1000.0
    assert a.reversion is not None and b.reversion is not None
    assert a.reversion.end_ns == b.reversion.end_ns == EVENT + 5 * S
    assert c.end_ns == TRIAL_END
    # without instants (runs written before they were recorded): the next action closes it
    old = [{k: v for k, v in e.items() if k != "at_ms"} for e in events]
    assert event_windows(old, 0, TRIAL_END)[0].end_ns == EVENT + 40 * MS


def test_windows_refuse_an_event_without_an_integer_instant() -> None:
    with pytest.raises(MetricsError, match="'t_ns' must be an integer"):
        event_windows([injector("fault", EVENT, 0) | {"t_ns": "soon"}], 0, TRIAL_END)


def test_trial_end_from_the_runner_else_after_the_last_probe() -> None:
    probes = probe_stream()
    events = [{"t_ns": TRIAL_END + 7, "trial": 0, "source": "runner", "kind": "trial_end"}]
    assert trial_end_ns(events, probes, 0) == TRIAL_END + 7
    assert trial_end_ns([], probes, 0) == TRIAL_END - MS + 1
    with pytest.raises(MetricsError, match="neither events nor probes"):
        trial_end_ns([], probes, 3)


# ------------------------------------------------------------------------------ clients


def test_no_loss_gives_zero_outage_and_the_same_site() -> None:
    entry = one(probe_stream())
    assert entry == {
        "client": "us-c1", "service": "dns", "family": "ipv4", "outage_ms": 0.0,
        "rate_derived_ms": 0.0, "loss_derived_ms": 0.0, "lost": 0, "loss_windows": 0,
        "loss_ratio": 0.0, "resolution_ms": 1.0, "site_before": "nyc",
        "site_after": "nyc",
        "flip_ns": None, "rtt_before_ms": 10.0, "rtt_after_ms": 10.0, "tcp_broken": 0,
        "recovered": True, "first_loss_ns": None, "last_loss_ns": None,
        "probes": 8_000,  # from the event to 2 s (the reply timeout) before the trial end
        "flow": 0, "node_before": "nyc-k8s-n1", "node_after": "nyc-k8s-n1",
        "pod_before": "pod-0", "pod_after": "pod-0",
        "collateral": {"target_answers": True, "flows_on_target": 1, "flows_elsewhere": 0,
                       "flows_with_loss": 0, "lost": 0, "loss_windows": 0,
                       "longest_ms": 0.0, "tcp_broken": 0, "tcp_flows": []}}


def test_a_900_ms_gap_at_the_instant_is_a_900_ms_outage() -> None:
    entry = one(probe_stream(gaps=[(EVENT, 900)]))
    assert (entry["lost"], entry["loss_derived_ms"], entry["outage_ms"]) == (900, 900.0, 900.0)
    assert (entry["rate_derived_ms"], entry["loss_windows"]) == (900.0, 1)
    assert entry["loss_ratio"] == round(900 / 8_000, 6)
    assert (entry["first_loss_ns"], entry["last_loss_ns"]) == (EVENT, EVENT + 899 * MS)
    assert entry["recovered"] is True


def test_the_outage_is_the_longest_window_and_rate_derived_ends_at_the_last_reply() -> None:
    entry = one(probe_stream(gaps=[(EVENT + 100 * MS, 900), (EVENT + 2 * S, 3)]))
    assert entry["lost"] == 903
    assert entry["loss_derived_ms"] == 903.0
    assert (entry["outage_ms"], entry["loss_windows"]) == (900.0, 2)
    assert entry["rate_derived_ms"] == 2003.0  # the reply to the probe sent at EVENT + 2003 ms


def test_sporadic_loss_is_many_short_windows_not_a_long_outage() -> None:
    # 1 % of the probes lost one at a time over 8 s (the run that showed "8998 ms" of outage)
    entry = one(probe_stream(gaps=[(EVENT + k * 100 * MS, 1) for k in range(80)]))
    assert (entry["lost"], entry["loss_windows"], entry["outage_ms"]) == (80, 80, 1.0)
    assert entry["loss_ratio"] == 0.01
    assert entry["rate_derived_ms"] == 7901.0  # the scatter, to the reply after the last
    assert entry["recovered"] is True


def test_pairs_and_bursts_among_sporadic_loss_give_the_longest_run() -> None:
    gaps = [(EVENT + k * 100 * MS, 2) for k in range(40)] + [(EVENT + 4_050 * MS, 30)]
    entry = one(probe_stream(gaps=gaps))
    assert (entry["lost"], entry["loss_windows"], entry["outage_ms"]) == (110, 41, 30.0)


def test_one_answered_probe_splits_an_outage_in_two_windows() -> None:
    entry = one(probe_stream(gaps=[(EVENT, 400), (EVENT + 401 * MS, 500)]))
    assert (entry["lost"], entry["loss_windows"], entry["outage_ms"]) == (900, 2, 500.0)
    assert entry["rate_derived_ms"] == 901.0


def test_the_worst_flow_is_the_longest_window_not_the_widest_scatter() -> None:
    scattered = [(EVENT + k * 50 * MS, 1) for k in range(160)]
    probes = pd.concat([probe_stream(flow=0, gaps=scattered),
                        probe_stream(flow=1, gaps=[(EVENT + S, 120)])], ignore_index=True)
    entry = one(probes)
    assert (entry["flow"], entry["outage_ms"], entry["rate_derived_ms"]) == (1, 120.0, 1120.0)
    assert [(f["flow"], f["outage_ms"], f["loss_windows"]) for f in entry["flows"]] == [
        (0, 1.0, 160), (1, 120.0, 1)]


def test_losses_before_the_instant_are_not_charged() -> None:
    entry = one(probe_stream(gaps=[(EVENT - 300 * MS, 200)]))
    assert (entry["lost"], entry["outage_ms"]) == (0, 0.0)


def test_a_flip_from_nyc_to_ams() -> None:
    entry = one(probe_stream(flips=[(EVENT + 50 * MS, "ams")], rtts=[(EVENT + 50 * MS, 80.0)]))
    assert (entry["site_before"], entry["site_after"]) == ("nyc", "ams")
    assert entry["flip_ns"] == EVENT + 50 * MS
    assert (entry["rtt_before_ms"], entry["rtt_after_ms"]) == (10.0, 80.0)
    assert entry["outage_ms"] == 0.0


def test_a_flip_after_a_gap_is_the_first_reply_from_the_new_site() -> None:
    entry = one(probe_stream(gaps=[(EVENT, 300)], flips=[(EVENT + 300 * MS, "ams")]))
    assert entry["flip_ns"] == EVENT + 300 * MS
    assert entry["outage_ms"] == 300.0


def test_rtt_medians_over_the_second_before_and_the_last_second() -> None:
    probes = probe_stream(rtts=[(EVENT - 200 * MS, 12.0), (EVENT, 10.0),
                                (TRIAL_END - 300 * MS, 40.0)])
    entry = one(probes)
    assert entry["rtt_before_ms"] == 10.0  # 800 probes at 10 ms, 200 at 12 ms
    assert entry["rtt_after_ms"] == 10.0  # 700 at 10 ms, 300 at 40 ms
    probes = probe_stream(rtts=[(EVENT - 500 * MS, 12.0)])
    assert one(probes)["rtt_before_ms"] == 11.0  # an even count: the mean of the middle two


def test_site_ties_go_to_the_site_seen_last_and_no_flip_back() -> None:
    entry = one(probe_stream(flips=[(EVENT - 500 * MS, "ams")]))
    assert entry["site_before"] == "ams"  # 500 nyc then 500 ams
    assert entry["flip_ns"] is None


def test_nothing_answered_before_the_event_means_no_site_and_no_flip() -> None:
    entry = one(probe_stream(start_ns=EVENT, count=10_000, site="ams"))
    assert (entry["site_before"], entry["rtt_before_ms"], entry["flip_ns"]) == (None, None,
                                                                                None)
    assert entry["site_after"] == "ams"


def test_the_site_after_of_a_short_window_only_looks_inside_the_window() -> None:
    probes = probe_stream(flips=[(EVENT + 100 * MS, "ams")])
    entry = one(probes, window(end_ns=EVENT + 300 * MS))
    assert entry["site_after"] == "ams"  # 200 ams, 100 nyc (the second before is not seen)


def test_loss_until_the_next_action_is_an_unrecovered_window_long_outage() -> None:
    probes = probe_stream(gaps=[(EVENT + S, 5_000)])
    entry = one(probes, window(end_ns=EVENT + 3 * S))
    assert entry["recovered"] is False
    assert (entry["outage_ms"], entry["rate_derived_ms"]) == (2000.0, 3000.0)  # lower bounds
    assert entry["lost"] == 2_000 and entry["loss_derived_ms"] == 2000.0
    assert (entry["site_after"], entry["rtt_after_ms"]) == (None, None)  # no reply at all


def test_loss_until_the_trial_end_is_unrecovered_and_counted_until_the_reply_timeout() -> None:
    entry = one(probe_stream(gaps=[(EVENT + S, 20_000)]))
    assert entry["recovered"] is False
    assert entry["rate_derived_ms"] == 10_000.0  # the whole window
    assert entry["outage_ms"] == 9_000.0  # from the first loss to the window's end
    assert entry["lost"] == 7_000  # EVENT + 1 s .. TRIAL_END - 2 s
    assert (entry["site_after"], entry["rtt_after_ms"]) == (None, None)


def test_trailing_probes_near_the_trial_end_are_not_lost() -> None:
    probes = probe_stream(gaps=[(TRIAL_END - 1500 * MS, 1_500)])
    entry = one(probes)
    assert (entry["lost"], entry["outage_ms"], entry["recovered"]) == (0, 0.0, True)
    entry = one(probes, reply_timeout_ns=1 * S)
    assert (entry["lost"], entry["outage_ms"], entry["recovered"]) == (500, 1_500.0, False)
    assert entry["rate_derived_ms"] == 10_000.0


def test_a_prober_that_stopped_early_leaves_its_last_probes_unjudged() -> None:
    probes = probe_stream(count=9_000, gaps=[(T0 + 8_990 * MS, 10)])  # stopped at T0 + 9 s
    entry = one(probes)
    assert (entry["lost"], entry["outage_ms"], entry["probes"]) == (0, 0.0, 2_000)


def test_in_flight_losses_at_an_action_are_charged_to_the_window_it_opens() -> None:
    end = EVENT + 3 * S  # the next action: probes sent in its last RTT (10 ms) were in flight
    probes = probe_stream(gaps=[(EVENT + 100 * MS, 50), (end - 8 * MS, 30)])
    entry = one(probes, window(end_ns=end))
    assert (entry["lost"], entry["outage_ms"], entry["recovered"]) == (50, 50.0, True)
    assert (entry["rate_derived_ms"], entry["loss_windows"]) == (150.0, 1)
    assert entry["last_loss_ns"] == EVENT + 149 * MS
    # the next action's window charges them: 8 in flight at its instant, 22 after it
    entry = one(probes, window(t_ns=end))
    assert (entry["lost"], entry["outage_ms"], entry["rate_derived_ms"]) == (30, 30.0, 30.0)
    assert (entry["first_loss_ns"], entry["probes"]) == (end - 8 * MS, 7_000 - 2_000 + 8)
    # a run that began before the last round trip is this window's unrecovered outage
    probes = probe_stream(gaps=[(end - 50 * MS, 80)])
    entry = one(probes, window(end_ns=end))
    assert (entry["lost"], entry["outage_ms"], entry["recovered"]) == (50, 50.0, False)
    assert entry["rate_derived_ms"] == 3000.0
    # the guard can be given
    entry = one(probes, window(end_ns=end), inflight_ns=60 * MS)
    assert (entry["lost"], entry["outage_ms"], entry["recovered"]) == (0, 0.0, True)
    assert one(probes, window(t_ns=end), inflight_ns=60 * MS)["lost"] == 80
    assert one(probes, window(t_ns=end))["lost"] == 30  # began before the guard: not in flight


def test_a_waiting_prober_whose_one_request_was_in_flight_has_an_outage() -> None:
    """An HTTP prober on a kept-alive connection: one request every 30 ms (26 ms round
    trips); the one sent 1.4 ms before the fault got no reply, and the next went out after
    its reply timeout, 1.1 s later, and was answered from another site."""
    send = [*range(EVENT - 3_000 * MS, EVENT - 1 * MS, 30 * MS)]
    send[-1] = EVENT - 1_400_000
    after = [*range(EVENT + 1_102 * MS, TRIAL_END, 110 * MS)]
    probes = pd.DataFrame({
        "trial": 0, "client": "us-c2", "service": "web", "flow": 0,
        "seq": range(len(send) + len(after)), "send_ns": [*send, *after],
        "recv_ns": pd.array([*(t + 26 * MS for t in send[:-1]), None,
                             *(t + 100 * MS for t in after)], dtype="Int64"),
        "rtt_ms": [*([26.0] * (len(send) - 1)), None, *([100.0] * len(after))],
        "site": [*(["nyc"] * (len(send) - 1)), None, *(["ams"] * len(after))],
        "node": None})
    entry = one(probes)
    assert (entry["lost"], entry["loss_windows"], entry["site_after"]) == (1, 1, "ams")
    assert entry["outage_ms"] == entry["rate_derived_ms"] == 1_103.4
    assert entry["first_loss_ns"] == EVENT - 1_400_000


def test_several_flows_report_the_worst_and_each_flow() -> None:
    probes = pd.concat([probe_stream(flow=0, gaps=[(EVENT, 200)]),
                        probe_stream(flow=1, gaps=[(EVENT, 500)], site="ams"),
                        probe_stream(flow=2, gaps=[(EVENT, 500)])], ignore_index=True)
    entry = one(probes)
    assert (entry["flow"], entry["outage_ms"], entry["lost"], entry["site_before"]) == (
        1, 500.0, 500, "ams")
    assert [(f["flow"], f["outage_ms"], f["site_before"]) for f in entry["flows"]] == [
        (0, 200.0, "nyc"), (1, 500.0, "ams"), (2, 500.0, "nyc")]
    assert "tcp_broken" not in entry["flows"][0]
    assert "flows" not in one(probe_stream())


def test_clients_and_services_are_sorted_and_other_trials_ignored() -> None:
    probes = pd.concat([probe_stream(client="us-c2"), probe_stream(service="ntp"),
                        probe_stream(), probe_stream(client="eu-c1", trial=1)],
                       ignore_index=True)
    entries = client_metrics(probes, window(), 1.0)
    assert [(e["client"], e["service"]) for e in entries] == [
        ("us-c1", "dns"), ("us-c1", "ntp"), ("us-c2", "dns")]


def test_tcp_breaks_in_the_window_are_counted_and_tcp_only_services_listed() -> None:
    def tcp(kind: str, t_ns: int, service: str = "dns", trial: int = 0) -> dict[str, Any]:
        return {"t_ns": t_ns, "trial": trial, "source": "tcp", "kind": kind,
                "client": "us-c1", "service": service, "flow": 0, "reason": "reset"}

    events = [tcp("flow_connected", T0), tcp("flow_broken", EVENT + MS),
              tcp("flow_broken", EVENT + 2 * S), tcp("flow_broken", EVENT - MS),
              tcp("flow_broken", EVENT + MS, trial=1), tcp("flow_connected", T0, "web"),
              tcp("flow_broken", EVENT + 5 * MS, "web")]
    dns, web = client_metrics(probe_stream(), window(), 1.0, tcp_events=events)
    assert dns["tcp_broken"] == 2
    assert (web["service"], web["tcp_broken"], web["outage_ms"], web["lost"]) == (
        "web", 1, None, 0)
    assert (web["loss_windows"], web["loss_ratio"], web["rate_derived_ms"]) == (0, None, None)


def test_prepared_streams_must_be_of_the_window_trial() -> None:
    streams = probe_streams(probe_stream(), 0)
    assert client_metrics(streams, window(), 1.0) == client_metrics(probe_stream(), window(),
                                                                    1.0)
    with pytest.raises(MetricsError, match="trial 0 given for a window of trial 1"):
        client_metrics(streams, window(trial=1), 1.0)


@pytest.mark.parametrize("backend", ["numpy", "pyarrow"])
def test_parquet_dtypes_give_the_same_figures(backend: str) -> None:
    probes = probe_stream(gaps=[(EVENT, 321)], flips=[(EVENT + 321 * MS, "ams")])
    table = pa.Table.from_pandas(probes, preserve_index=False)
    read = (table.to_pandas() if backend == "numpy"
            else table.to_pandas(types_mapper=pd.ArrowDtype))
    assert one(read) == one(probes)
    assert one(read)["flip_ns"] == EVENT + 321 * MS


# ------------------------------------------------------------------------------ detection


def session(source: str, kind: str, t_ns: int, router: str, peer: str,
            trial: int = 0) -> dict[str, Any]:
    return {"t_ns": t_ns, "trial": trial, "source": source, "kind": kind, "router": router,
            "peer": peer, "reason": "down"}


def test_detection_prefers_sessions_touching_the_target() -> None:
    events = [session("bfd", "bfd_down", EVENT - 100 * MS, "nyc-l1", "nyc-k8s-n1"),
              session("bgp", "session_down", EVENT + 500 * MS, "ams-l1", "ams-s1"),
              session("bfd", "bfd_up", EVENT + 600 * MS, "nyc-l1", "nyc-k8s-n1"),
              session("bfd", "bfd_down", EVENT + 912_100_000, "nyc-l1", "nyc-k8s-n1"),
              session("bfd", "bfd_down", EVENT + 10 * MS, "nyc-l1", "nyc-k8s-n1", trial=1)]
    assert detection(events, window()) == (912.1, "bfd")
    assert detection(events, window(), prefer_target=False) == (500.0, "bgp")
    assert detection(events, window(target="lon-k8s-n1")) == (500.0, "bgp")
    assert detection(events, window(end_ns=EVENT + 400 * MS)) == (None, None)


def test_detection_of_a_link_fault_looks_at_both_ends() -> None:
    events = [session("bgp", "session_down", EVENT + 2 * S, "x", "y"),
              session("bgp", "session_down", EVENT + 3 * S, "nyc-s1", "wan-r1")]
    assert detection(events, window(target="nyc-l1--nyc-s1")) == (3000.0, "bgp")


# ------------------------------------------------------------------------------ control plane


def route_rows(rows: Sequence[tuple[int, int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "trial": pd.array([r[0] for r in rows], dtype="int16"),
        "t_ns": pd.array([r[1] for r in rows], dtype="int64"),
        "router": [r[2] for r in rows], "prefix": "192.0.2.53/32",
        "action": [r[3] for r in rows], "nexthops": "", "n_nexthops": np.int16(0)})


def test_control_plane_first_and_last_fib_change_per_router_and_overall() -> None:
    routes = route_rows([(0, EVENT - S, "nyc-l1", "present"),
                         (0, EVENT + 10 * MS, "nyc-l1", "present"),
                         (0, EVENT + 915 * MS, "nyc-l1", "add"),
                         (0, EVENT + 920 * MS, "nyc-l2", "del"),
                         (0, EVENT + 940_200_000, "nyc-l1", "add"),
                         (0, TRIAL_END + 1, "nyc-l1", "add"),
                         (1, EVENT + 1 * MS, "nyc-l1", "add")])
    assert control_plane(routes, window()) == {
        "first_fib_change_ms": 915.0, "last_fib_change_ms": 940.2,
        "routers": {"nyc-l1": {"first_ms": 915.0, "last_ms": 940.2},
                    "nyc-l2": {"first_ms": 920.0, "last_ms": 920.0}}}
    assert control_plane(routes, window(), prefixes=["198.51.100.1/32"]) == {
        "first_fib_change_ms": None, "last_fib_change_ms": None, "routers": {}}


# ------------------------------------------------------------------------------ trials


def test_summarize_trial_with_an_undone_fault() -> None:
    undo = EVENT + 3 * S
    probes = probe_stream(gaps=[(EVENT, 200), (undo + 10 * MS, 50)],
                          flips=[(EVENT + 200 * MS, "ams"), (undo + 60 * MS, "nyc")])
    events = [injector("fault", EVENT, 0), injector("undo", undo, 0),
              session("bfd", "bfd_down", EVENT + 150 * MS, "nyc-l1", "nyc-k8s-n1"),
              {"t_ns": TRIAL_END, "trial": 0, "source": "runner", "kind": "trial_end"}]
    routes = route_rows([(0, EVENT + 160 * MS, "nyc-l1", "del"),
                         (0, undo + 40 * MS, "nyc-l1", "add")])
    summary = summarize_trial(0, events, probes, routes, interval_ms=1.0)
    assert summary["trial"] == 0 and summary["complete"] is True
    (event,) = summary["events"]
    assert list(event) == ["step", "fault", "target", "t_ns", "undo_t_ns", "detection_ms",
                           "detection_source", "control_plane", "clients", "reversion"]
    assert (event["t_ns"], event["undo_t_ns"]) == (EVENT, undo)
    assert (event["detection_ms"], event["detection_source"]) == (150.0, "bfd")
    assert event["control_plane"]["first_fib_change_ms"] == 160.0
    (client,) = event["clients"]
    assert (client["outage_ms"], client["site_after"], client["flip_ns"]) == (
        200.0, "ams", EVENT + 200 * MS)
    reversion = event["reversion"]
    assert reversion["t_ns"] == undo
    assert reversion["control_plane"]["first_fib_change_ms"] == 40.0
    (back,) = reversion["clients"]
    assert (back["outage_ms"], back["lost"], back["site_before"], back["site_after"]) == (
        50.0, 50, "ams", "nyc")
    assert back["rate_derived_ms"] == 60.0  # from the undo instant
    assert back["flip_ns"] == undo + 60 * MS


def test_summarize_an_interrupted_trial_and_a_fault_undone_at_its_end() -> None:
    events = [injector("fault", EVENT, 0),
              {**injector("undo", TRIAL_END - 2 * MS, 0), "details": {"at_trial_end": True}}]
    summary = summarize_trial(0, events, probe_stream(), route_rows([]), interval_ms=1.0)
    assert summary["complete"] is False
    (event,) = summary["events"]
    assert event["undo_t_ns"] == TRIAL_END - 2 * MS and event["reversion"] is None
    assert event["detection_ms"] is None and event["control_plane"]["routers"] == {}


# ------------------------------------------------------------------------------ aggregate


def trial_doc(trial: int, outages: Sequence[float], detection_ms: float | None,
              complete: bool = True, reversion: float | None = None) -> dict[str, Any]:
    def client(outage: float) -> dict[str, Any]:
        return {"client": "us-c1", "service": "dns", "outage_ms": outage,
                "loss_derived_ms": outage - 1, "tcp_broken": 0, "recovered": outage < 5000}

    events = [{"step": 0, "fault": "node-crash", "detection_ms": detection_ms,
               "clients": [client(o)],
               "reversion": None if reversion is None else {"clients": [client(reversion)]}}
              for o in outages]
    return {"trial": trial, "complete": complete, "events": events}


def test_aggregate_statistics_over_trials() -> None:
    trials = [trial_doc(0, [100.0], 900.0, reversion=20.0), trial_doc(1, [200.0], None),
              trial_doc(2, [400.0], 1000.0, reversion=30.0),
              trial_doc(3, [9000.0], 5.0, complete=False)]
    (row,) = aggregate(trials)
    assert row["outage_ms"] == {"median": 200.0, "p95": 380.0, "iqr": 150.0, "min": 100.0,
                                "max": 400.0}
    assert row["loss_derived_ms"] == {"median": 199.0, "p95": 379.0, "iqr": 150.0,
                                      "min": 99.0, "max": 399.0}
    assert row["detection_ms"] == {"median": 950.0, "p95": 995.0, "iqr": 50.0, "min": 900.0,
                                   "max": 1000.0}
    assert row["reversion_outage_ms"] == {"median": 25.0, "p95": 29.5, "iqr": 5.0,
                                          "min": 20.0, "max": 30.0}
    assert (row["step"], row["fault"], row["client"], row["service"]) == (
        0, "node-crash", "us-c1", "dns")
    assert (row["n"], row["n_detected"], row["unrecovered"]) == (3, 2, 0)
    (with_incomplete,) = aggregate(trials, include_incomplete=True)
    assert (with_incomplete["n"], with_incomplete["unrecovered"]) == (4, 1)
    assert with_incomplete["outage_ms"]["max"] == 9000.0


def test_aggregate_counts_every_cycle_of_a_step() -> None:
    (row,) = aggregate([trial_doc(0, [10.0, 30.0], None), trial_doc(1, [20.0], None)])
    assert row["n"] == 3 and row["outage_ms"]["median"] == 20.0
    assert row["detection_ms"] is None and row["reversion_outage_ms"] is None


def test_describe_one_value_and_none() -> None:
    assert describe([7.0]) == {"median": 7.0, "p95": 7.0, "iqr": 0.0, "min": 7.0, "max": 7.0}
    assert describe([]) is None


# ------------------------------------------------------------------------------ run


def test_summarize_run_marks_the_interrupted_last_trial_and_aggregates_the_others() -> None:
    second = 100 * S
    probes = pd.concat([probe_stream(gaps=[(EVENT, 100)]),
                        probe_stream(trial=1, start_ns=T0 + second, gaps=[(EVENT + second, 300)])],
                       ignore_index=True)
    events = [injector("fault", EVENT, 0), injector("fault", EVENT + second, 0, trial=1)]
    summary = summarize_run(scenario="node-crash-bfd", complete=False, probes=probes,
                            routes=route_rows([]), events=events, interval_ms=1.0,
                            trial_bounds=[(0, T0, TRIAL_END), (1, T0 + second, TRIAL_END + second)])
    assert list(summary) == ["scenario", "complete", "interval_ms", "metrics_version", "trials",
                             "aggregate"]
    assert summary["metrics_version"] == 3
    assert [t["complete"] for t in summary["trials"]] == [True, False]
    assert summary["trials"][1]["events"][0]["clients"][0]["outage_ms"] == 300.0
    (row,) = summary["aggregate"]
    assert (row["n"], row["outage_ms"]["max"]) == (1, 100.0)


def test_summarize_a_run_without_probes_or_routes() -> None:
    empty_probes = pd.DataFrame({c: pd.Series(dtype="object") for c in [
        "trial", "client", "service", "flow", "seq", "send_ns", "recv_ns", "rtt_ms", "site",
        "cluster", "node", "pod"]})
    empty_routes = pd.DataFrame({c: pd.Series(dtype="object") for c in [
        "trial", "t_ns", "router", "prefix", "action", "nexthops", "n_nexthops"]})
    summary = summarize_run(scenario="s", complete=True, probes=empty_probes,
                            routes=empty_routes, events=[injector("fault", EVENT, 0)],
                            interval_ms=1.0, trial_bounds=[(0, T0, TRIAL_END)])
    (event,) = summary["trials"][0]["events"]
    assert event["clients"] == [] and event["control_plane"]["routers"] == {}
    assert summary["aggregate"] == []
