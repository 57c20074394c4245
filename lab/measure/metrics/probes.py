"""Per client, service and family figures of one event window, from the UDP probe stream.

The probe table is split once per trial into one sorted stream per flow (client, service,
family, flow: one source port, so one ECMP hash; a dual-stack service's IPv4 and IPv6 VIPs
are probed as separate targets, so every figure is per family); every window is then a pair
of binary searches and a few vectorised passes over the probes it holds, so a dozen windows
over 720k probes stay well under a second.

The outage of a flow is its longest loss window (a run of consecutive lost probes, from the
first one's send to the next answered probe's): sporadic loss spread over seconds is many
one-probe windows, not seconds of outage. The rate-derived figure (event to the first reply
after the last loss, RFC 6412) and the loss-derived one (lost x interval) stay beside it.

Which probes are charged to a window (see the Definitions in docs/run-format.md):
- probes sent in ``[t_ns, end_ns)`` of the window, except those sent in the last
  ``reply_timeout_ns`` before the flow's probes end (the trial end, or the flow's last probe
  plus one interval if that is earlier): the prober stopped before their replies were due;
- a trailing run of losses that lasts until the next injector action and began less than one
  round trip (plus one interval) before it is that action's in-flight loss, charged to the
  next action's window, not this one; a run that began earlier is an outage that did not
  recover within the window.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from lab.errors import MetricsError
from lab.measure.metrics.collateral import collateral, target_elements, tcp_breaks
from lab.measure.metrics.windows import (
    NS_PER_MS,
    NS_PER_S,
    Event,
    EventWindow,
    event_int,
    is_event,
)

DEFAULT_REPLY_TIMEOUT_NS = 2 * NS_PER_S
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class FlowStream:
    """The probes of one flow of one trial, in send order."""

    client: str
    service: str
    flow: int
    send_ns: IntArray
    answered: BoolArray
    site: IntArray  # index into ProbeStreams.sites; -1 when the probe was lost
    node: IntArray  # index into ProbeStreams.nodes; -1 when the probe was lost
    rtt_ms: FloatArray
    family: str = "ipv4"
    pod: IntArray | None = None  # index into ProbeStreams.pods; -1 when the probe was lost

    @property
    def key(self) -> ClientKey:
        return self.client, self.service, self.family


ClientKey = tuple[str, str, str]  # client, service, family


def probe_families(probes: pd.DataFrame) -> pd.Series:
    """The ``family`` column of probes.parquet; "ipv4" for runs recorded before it existed."""
    if "family" in probes.columns:
        return probes["family"].astype(object)
    return pd.Series("ipv4", index=probes.index, dtype=object)


@dataclass(frozen=True, eq=False)
class ProbeStreams:
    """Every flow of one trial, sorted by (client, service, family, flow)."""

    trial: int
    sites: tuple[str, ...]
    flows: tuple[FlowStream, ...]
    nodes: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()

    def answering(self) -> frozenset[str]:
        """Every site, node and pod that answered a probe of the trial."""
        return frozenset((*self.sites, *self.nodes, *self.pods))


def probe_streams(probes: pd.DataFrame, trial: int) -> ProbeStreams:
    """Split the rows of one trial of probes.parquet into sorted per-flow arrays."""
    rows = probes.loc[probes["trial"] == trial]
    if rows.empty:
        return ProbeStreams(trial, (), ())
    send = rows["send_ns"].to_numpy(dtype=np.int64)
    answered = rows["recv_ns"].notna().to_numpy(dtype=np.bool_)
    rtt = rows["rtt_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
    categories = pd.Categorical(rows["site"].astype(object))
    site = np.where(answered, categories.codes.astype(np.int64), -1)
    node_names = pd.Categorical(rows["node"].astype(object))
    node = np.where(answered, node_names.codes.astype(np.int64), -1)
    pod_names = pd.Categorical(rows["pod"].astype(object) if "pod" in rows.columns
                               else pd.Series(None, index=rows.index, dtype=object))
    pod = np.where(answered, pod_names.codes.astype(np.int64), -1)
    flows: list[FlowStream] = []
    keyed = pd.DataFrame({"client": rows["client"], "service": rows["service"],
                          "family": probe_families(rows), "flow": rows["flow"]})
    groups = keyed.groupby(["client", "service", "family", "flow"], sort=True,
                           observed=True).indices
    for key, positions in groups.items():
        client, service, family, flow = cast(tuple[object, object, object, int], key)
        order = positions[np.argsort(send[positions], kind="stable")]
        flows.append(FlowStream(str(client), str(service), int(flow), send[order],
                                answered[order], site[order], node[order], rtt[order],
                                str(family), pod[order]))
    flows.sort(key=lambda f: (*f.key, f.flow))
    return ProbeStreams(trial, tuple(str(s) for s in categories.categories), tuple(flows),
                        tuple(str(n) for n in node_names.categories),
                        tuple(str(p) for p in pod_names.categories))


def ns_to_ms(ns: int) -> float:
    return round(ns / NS_PER_MS, 6)


def _index(send: IntArray, instant: int) -> int:
    return int(np.searchsorted(send, instant, side="left"))


def most_frequent(codes: IntArray) -> int:
    """The code seen most often (ties: the one seen last); -1 when none (lost probes are
    -1). The answering site (or node) before and after an event is this of its probes."""
    valid = codes[codes >= 0]
    if valid.size == 0:
        return -1
    counts = np.bincount(valid)
    best = np.flatnonzero(counts == counts.max())
    last_seen = [int(np.flatnonzero(codes == code)[-1]) for code in best]
    return int(best[int(np.argmax(last_seen))])


def _median_rtt(stream: FlowStream, part: slice) -> float | None:
    rtt = stream.rtt_ms[part][stream.answered[part]]
    rtt = rtt[~np.isnan(rtt)]
    return round(float(np.median(rtt)), 6) if rtt.size else None


def _inflight_ns(stream: FlowStream, action_ns: int, interval_ns: int,
                 fallback: slice = slice(0, 0)) -> int:
    """How long before an action a probe may still be in flight: the largest round trip of
    the probes answered in the second before it (else in ``fallback``), plus one interval.
    The window that the action closes and the one it opens use the same guard, so that each
    in-flight loss is charged to exactly one of them."""
    send = stream.send_ns
    last_second = slice(_index(send, action_ns - NS_PER_S), _index(send, action_ns))
    for part in (last_second, fallback):
        rtt = stream.rtt_ms[part][stream.answered[part]]
        rtt = rtt[~np.isnan(rtt)]
        if rtt.size:
            return int(float(rtt.max()) * NS_PER_MS) + interval_ns
    return interval_ns


@dataclass(frozen=True)
class _Span:
    """Indexes into one stream: the window [first, stop), probes judged for loss
    [first, judged), and the second before the event and the last second of the window."""

    first: int
    stop: int
    judged: int
    before: slice
    after: slice
    judged_end_ns: int  # probes sent from here on are not judged


def _span(stream: FlowStream, window: EventWindow, reply_timeout_ns: int,
          interval_ns: int) -> _Span:
    send = stream.send_ns
    first, stop = _index(send, window.t_ns), _index(send, window.end_ns)
    stream_end = min(window.trial_end_ns, int(send[-1]) + interval_ns) if send.size else 0
    judged_end = min(window.end_ns, stream_end - reply_timeout_ns)
    judged = min(stop, max(first, _index(send, judged_end)))
    before = slice(_index(send, window.t_ns - NS_PER_S), first)
    after = slice(max(first, _index(send, window.end_ns - NS_PER_S)), stop)
    return _Span(first, stop, judged, before, after, judged_end)


def _charged_losses(stream: FlowStream, window: EventWindow, span: _Span,
                    inflight_ns: int | None, interval_ns: int) -> IntArray:
    """Indexes of the lost probes charged to the window (see the module docstring)."""
    lost = span.first + np.flatnonzero(~stream.answered[span.first:span.judged])
    if lost.size == 0 or not window.ends_at_action:
        return lost
    last = int(lost[-1])
    if stream.answered[last + 1:span.stop].any():
        return lost
    answered = np.flatnonzero(stream.answered[span.first:last])
    previous = span.first + int(answered[-1]) if answered.size else span.first - 1
    run_start = int(stream.send_ns[lost[lost > previous][0]])
    guard = (inflight_ns if inflight_ns is not None
             else _inflight_ns(stream, window.end_ns, interval_ns, span.before))
    if run_start >= window.end_ns - guard:
        return lost[lost <= previous]
    return lost


def _inflight_at_start(stream: FlowStream, window: EventWindow, span: _Span,
                       inflight_ns: int | None, interval_ns: int) -> IntArray:
    """Indexes of the losses in flight at the window's action, which the window before left
    to it (``_charged_losses``): the run of lost probes reaching ``t_ns`` that began less than
    one round trip (plus one interval) before it. A prober that waits for each reply (HTTP on
    a kept-alive connection) often has just one probe lost to a failure, sent before it."""
    none = np.empty(0, dtype=np.int64)
    if span.first == 0 or stream.answered[span.first - 1]:
        return none  # the usual case: the probe before the instant was answered
    guard = (inflight_ns if inflight_ns is not None
             else _inflight_ns(stream, window.t_ns, interval_ns))
    # only the probes sent within the guard are looked at, not the whole trial before it
    low = _index(stream.send_ns, window.t_ns - guard)
    answered = np.flatnonzero(stream.answered[low:span.first])
    if answered.size:
        run_start = low + int(answered[-1]) + 1
    elif low == 0 or stream.answered[low - 1]:
        run_start = low
    else:
        return none  # the run began before the guard: an outage, not an in-flight loss
    run_stop = min(span.first, _index(stream.send_ns, span.judged_end_ns))
    return np.arange(run_start, max(run_start, run_stop), dtype=np.int64)


def _rate_derived(stream: FlowStream, window: EventWindow, lost: IntArray,
                  stop: int) -> tuple[int, bool]:
    """Rate-derived outage in ns (the first reply after the last charged loss, minus the
    instant, or minus the first loss's send when a probe in flight at the instant was lost)
    and whether that reply came within the window."""
    if lost.size == 0:
        return 0, True
    last = int(lost[-1])
    recovered = bool(stream.answered[last + 1:stop].any())
    began = min(window.t_ns, int(stream.send_ns[lost[0]]))
    return _recovery_ns(stream, window, last, stop) - began, recovered


def _recovery_ns(stream: FlowStream, window: EventWindow, last_lost: int, stop: int) -> int:
    """Send instant of the first answered probe of the window after ``last_lost``; the
    window's end when there is none."""
    following = np.flatnonzero(stream.answered[last_lost + 1:stop])
    if following.size == 0:
        return window.end_ns
    return int(stream.send_ns[last_lost + 1 + int(following[0])])


def loss_windows(stream: FlowStream, window: EventWindow, lost: IntArray,
                 stop: int) -> list[tuple[int, int]]:
    """The loss windows of charged losses ``lost``: (first lost send, first answered send
    after the run, or the window's end), one per run of consecutive lost probes."""
    if lost.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(lost) > 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [lost.size - 1]))
    return [(int(stream.send_ns[lost[a]]), _recovery_ns(stream, window, int(lost[b]), stop))
            for a, b in zip(starts, ends, strict=True)]


def flow_interval_ms(stream: FlowStream, interval_ms: float) -> float:
    """The flow's own probe interval: the run's, unless its probes went out further apart
    (the median gap beyond 1.5 times it: HTTP probes at the service's own interval, one
    request at a time on a kept-alive connection), then that median gap, to the microsecond."""
    if stream.send_ns.size < 2:
        return interval_ms
    gap_ms = float(np.median(np.diff(stream.send_ns))) / NS_PER_MS
    return round(gap_ms, 3) if gap_ms > 1.5 * interval_ms else interval_ms


def flow_figures(stream: FlowStream, sites: Sequence[str], window: EventWindow,
                 interval_ms: float, reply_timeout_ns: int = DEFAULT_REPLY_TIMEOUT_NS,
                 inflight_ns: int | None = None,
                 nodes: Sequence[str] = (), pods: Sequence[str] = ()) -> dict[str, Any]:
    """Every figure of one flow in one window (keys in the order of run-format.md)."""
    interval_ms = flow_interval_ms(stream, interval_ms)
    interval_ns = round(interval_ms * NS_PER_MS)
    span = _span(stream, window, reply_timeout_ns, interval_ns)
    in_flight = _inflight_at_start(stream, window, span, inflight_ns, interval_ns)
    lost = np.concatenate((in_flight,
                           _charged_losses(stream, window, span, inflight_ns, interval_ns)))
    rate_derived_ns, recovered = _rate_derived(stream, window, lost, span.stop)
    windows = loss_windows(stream, window, lost, span.stop)
    outage_ns = max((end - start for start, end in windows), default=0)
    probes = span.judged - span.first + int(in_flight.size)
    before, after = most_frequent(stream.site[span.before]), most_frequent(stream.site[span.after])
    node_before = most_frequent(stream.node[span.before])
    node_after = most_frequent(stream.node[span.after])
    pod_before = most_frequent(stream.pod[span.before]) if stream.pod is not None else -1
    pod_after = most_frequent(stream.pod[span.after]) if stream.pod is not None else -1
    flip: int | None = None
    if before >= 0:
        others = stream.site[span.first:span.stop]
        hits = np.flatnonzero((others >= 0) & (others != before))
        flip = int(stream.send_ns[span.first + int(hits[0])]) if hits.size else None
    return {
        "flow": stream.flow, "outage_ms": ns_to_ms(outage_ns),
        "rate_derived_ms": ns_to_ms(rate_derived_ns),
        "loss_derived_ms": round(int(lost.size) * interval_ms, 6), "lost": int(lost.size),
        "loss_windows": len(windows),
        "loss_ratio": round(int(lost.size) / probes, 6) if probes else None,
        "resolution_ms": interval_ms,
        "site_before": sites[before] if before >= 0 else None,
        "site_after": sites[after] if after >= 0 else None, "flip_ns": flip,
        "rtt_before_ms": _median_rtt(stream, span.before),
        "rtt_after_ms": _median_rtt(stream, span.after),
        "recovered": recovered,
        "first_loss_ns": int(stream.send_ns[lost[0]]) if lost.size else None,
        "last_loss_ns": int(stream.send_ns[lost[-1]]) if lost.size else None,
        "probes": probes,
        "node_before": nodes[node_before] if node_before >= 0 and nodes else None,
        "node_after": nodes[node_after] if node_after >= 0 and nodes else None,
        "pod_before": pods[pod_before] if pod_before >= 0 and pods else None,
        "pod_after": pods[pod_after] if pod_after >= 0 and pods else None,
    }


def _tcp_pairs(tcp_events: Sequence[Event], window: EventWindow) -> tuple[
        set[ClientKey], Counter[ClientKey]]:
    """The (client, service, family) keys with TCP flows in the trial, and their breaks in
    the window."""
    pairs: set[ClientKey] = set()
    broken: Counter[ClientKey] = Counter()
    for event in tcp_events:
        if not is_event(event, window.trial, "tcp", ("flow_connected", "flow_broken")):
            continue
        pair = (str(event.get("client")), str(event.get("service")),
                str(event.get("family", "ipv4")))
        pairs.add(pair)
        if (event.get("kind") == "flow_broken"
                and window.t_ns <= event_int(event, "t_ns") < window.end_ns):
            broken[pair] += 1
    return pairs, broken


def _client_entry(key: ClientKey, figures: list[dict[str, Any]],
                  interval_ms: float, tcp_broken: int,
                  collateral_figures: dict[str, Any]) -> dict[str, Any]:
    """One client, service and family: the worst flow's figures (largest outage, then most
    lost, then lowest flow index), the ``collateral`` (lab.measure.metrics.collateral) and,
    with several flows, every flow's under ``flows``."""
    client, service, family = key
    if not figures:  # a TCP-only service: no UDP figures
        worst: dict[str, Any] = dict.fromkeys(_FIGURE_KEYS)
        worst.update(resolution_ms=interval_ms, lost=0, loss_windows=0, probes=0)
    else:
        worst = max(figures, key=lambda f: (f["outage_ms"], f["lost"]))
    entry: dict[str, Any] = {"client": client, "service": service, "family": family}
    entry.update({key: worst[key] for key in _FIGURE_KEYS if key not in _TAIL_KEYS})
    entry["tcp_broken"] = tcp_broken
    entry.update({key: worst[key] for key in _TAIL_KEYS})
    entry["collateral"] = collateral_figures
    if len(figures) > 1:
        entry["flows"] = figures
    return entry


_FIGURE_KEYS = ("outage_ms", "rate_derived_ms", "loss_derived_ms", "lost", "loss_windows",
                "loss_ratio", "resolution_ms", "site_before", "site_after", "flip_ns",
                "rtt_before_ms", "rtt_after_ms", "recovered", "first_loss_ns", "last_loss_ns",
                "probes", "flow", "node_before", "node_after", "pod_before", "pod_after")
_TAIL_KEYS = ("recovered", "first_loss_ns", "last_loss_ns", "probes", "flow", "node_before",
              "node_after", "pod_before", "pod_after")


def client_metrics(probes: pd.DataFrame | ProbeStreams, window: EventWindow,
                   interval_ms: float, *, tcp_events: Sequence[Event] = (),
                   reply_timeout_ns: int = DEFAULT_REPLY_TIMEOUT_NS,
                   inflight_ns: int | None = None) -> list[dict[str, Any]]:
    """The ``clients`` list of one event (or reversion) window, sorted by client, service and
    family.

    ``probes`` is probes.parquet (any trials) or the streams of the window's trial from
    ``probe_streams``; ``tcp_events`` are the events of the run (others are skipped);
    ``inflight_ns`` overrides the measured in-flight guard before the next action."""
    streams = probes if isinstance(probes, ProbeStreams) else probe_streams(probes,
                                                                            window.trial)
    if streams.trial != window.trial:
        raise MetricsError(f"probe streams of trial {streams.trial} given for a window of "
                           f"trial {window.trial}")
    tcp_pairs, broken = _tcp_pairs(tcp_events, window)
    per_key: dict[ClientKey, list[dict[str, Any]]] = {key: [] for key in tcp_pairs}
    for key, flows in itertools.groupby(streams.flows, key=lambda f: f.key):
        per_key[key] = [flow_figures(f, streams.sites, window, interval_ms,
                                     reply_timeout_ns, inflight_ns, streams.nodes,
                                     streams.pods)
                        for f in flows]
    breaks = tcp_breaks(tcp_events, window)
    connected = {str(e.get(k)) for e in tcp_events for k in ("site", "node", "pod")
                 if is_event(e, window.trial, "tcp", ("flow_connected",))}
    target_answers = bool(target_elements(window.target) & (streams.answering() | connected))
    return [_client_entry(key, per_key[key], interval_ms, broken[key], collateral(
                window, per_key[key], [b for k, b in sorted(breaks.items()) if k[:3] == key],
                target_answers))
            for key in sorted(per_key)]


__all__ = ["DEFAULT_REPLY_TIMEOUT_NS", "ClientKey", "FlowStream", "ProbeStreams",
           "client_metrics", "flow_figures", "flow_interval_ms", "loss_windows",
           "most_frequent", "ns_to_ms", "probe_families", "probe_streams"]
