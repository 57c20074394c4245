"""Collateral damage of an event: which flows were on the failed element, what the others
lost, and why each broken TCP flow broke."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lab.measure.metrics.collateral import target_elements
from lab.measure.metrics.probes import client_metrics
from tests.unit.test_metrics import EVENT, MS, T0, probe_stream, window


def _on_node(frame: pd.DataFrame, node: str) -> pd.DataFrame:
    frame = frame.copy()
    answered = frame["node"].notna()
    frame.loc[answered, "node"] = node
    frame.loc[answered, "pod"] = f"{node}-p1"
    return frame


def _four_flows() -> pd.DataFrame:
    """Flows 0 and 1 answered by nyc-k8s-n1 (the crashed node), 2 and 3 by nyc-k8s-n2; flow 0
    loses 900 ms at the crash, flow 2 loses 20 ms 1.6 s after it (collateral), flow 3 none."""
    flows = [_on_node(probe_stream(flow=0, gaps=[(EVENT, 900)]), "nyc-k8s-n1"),
             _on_node(probe_stream(flow=1, gaps=[(EVENT, 950)]), "nyc-k8s-n1"),
             _on_node(probe_stream(flow=2, gaps=[(EVENT + 1600 * MS, 20)]), "nyc-k8s-n2"),
             _on_node(probe_stream(flow=3), "nyc-k8s-n2")]
    return pd.concat(flows, ignore_index=True)


def tcp(kind: str, t_ns: int, flow: int, node: str | None = None,
        reason: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"t_ns": t_ns, "trial": 0, "source": "tcp", "kind": kind,
                             "client": "us-c1", "service": "dns", "family": "ipv4",
                             "flow": flow}
    if node is not None:
        event.update(site="nyc", node=node, pod=f"{node}-p1")
    if reason is not None:
        event["reason"] = reason
    return event


def test_flows_on_the_crashed_node_and_the_collateral_of_the_others() -> None:
    events = [tcp("flow_connected", T0, 0, "nyc-k8s-n1"),
              tcp("flow_connected", T0, 1, "nyc-k8s-n2"),
              tcp("flow_connected", T0, 2, "nyc-k8s-n3"),
              tcp("flow_broken", EVENT + 900 * MS, 0, reason="timeout"),
              tcp("flow_broken", EVENT + 1600 * MS, 1, reason="reset"),
              tcp("flow_connected", EVENT + 1700 * MS, 1, "nyc-k8s-n4"),
              tcp("flow_broken", EVENT + 1650 * MS, 2, reason="timeout")]
    (entry,) = client_metrics(_four_flows(), window(), 1.0, tcp_events=events)
    assert entry["outage_ms"] == 950.0 and len(entry["flows"]) == 4
    assert [f["node_before"] for f in entry["flows"]] == ["nyc-k8s-n1"] * 2 + ["nyc-k8s-n2"] * 2
    collateral = entry["collateral"]
    assert {k: v for k, v in collateral.items() if k != "tcp_flows"} == {
        "target_answers": True, "flows_on_target": 2, "flows_elsewhere": 2,
        "flows_with_loss": 1, "lost": 20, "loss_windows": 1, "longest_ms": 20.0,
        "tcp_broken": 2}
    assert [(t["flow"], t["reason"], t["cause"], t["node_before"], t["node_after"])
            for t in collateral["tcp_flows"]] == [
        (0, "timeout", "target", "nyc-k8s-n1", None),
        (1, "reset", "moved", "nyc-k8s-n2", "nyc-k8s-n4"),
        (2, "timeout", "path loss", "nyc-k8s-n3", None)]
    assert collateral["tcp_flows"][1]["at_ms"] == 1600.0


def test_a_target_that_answers_no_probe_counts_every_flow() -> None:
    """A spine answers no probe: no flow is on it, every loss is reported."""
    (entry,) = client_metrics(_four_flows(), window(target="nyc-s1"), 1.0)
    collateral = entry["collateral"]
    assert collateral["target_answers"] is False
    assert (collateral["flows_on_target"], collateral["flows_elsewhere"],
            collateral["flows_with_loss"], collateral["lost"]) == (0, 4, 3, 1870)


def test_a_pod_a_site_or_a_link_end_is_the_failed_element() -> None:
    frames = _four_flows()
    pod = client_metrics(frames, window(target="nyc-k8s-n2-p1"), 1.0)[0]["collateral"]
    assert (pod["flows_on_target"], pod["flows_with_loss"], pod["lost"]) == (2, 2, 1850)
    site = client_metrics(frames, window(target="nyc"), 1.0)[0]["collateral"]
    assert (site["flows_on_target"], site["flows_elsewhere"]) == (4, 0)
    link = client_metrics(frames, window(target="nyc-l1--nyc-k8s-n1"), 1.0)[0]["collateral"]
    assert (link["flows_on_target"], link["lost"]) == (2, 20)
    assert target_elements("nyc-l1--nyc-k8s-n1") == {"nyc-l1", "nyc-k8s-n1"}
    assert np.isclose(pod["longest_ms"], 950.0)
