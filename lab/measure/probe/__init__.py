"""Data-plane probers: paced UDP probes per client (C), long-lived TCP flows (Python).

- ``start_udp_prober`` / ``load_udp_probes``: one C prober per client namespace, its records
  turned into ``probes.parquet`` rows (``ProbeTarget.dns``, a ``DnsQuery``: a real DNS server);
- ``start_tcp_flows`` and the spec types: one ``python -m lab.measure.probe.tcpflows`` process for
  every client's TCP flows, writing ``tcp`` events;
- ``start_http_probes`` / ``load_http_probes`` and the spec types: one
  ``python -m lab.measure.probe.httpprobe`` process probing every client's HTTP (or TCP connect)
  flows on one clock, its records turned into ``probes.parquet`` rows;
- ``ensure_prober_built``: compile the prober (``python -m lab.measure.probe.build``).

Names are imported on first use, so the runtime programs ``lab.measure.probe.tcpflows`` and
``lab.measure.probe.httpprobe`` start without pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.measure.probe.build import ensure_prober_built
    from lab.measure.probe.dns import DnsQuery
    from lab.measure.probe.httpprobe import start_http_probes
    from lab.measure.probe.httprecords import load_http_probes
    from lab.measure.probe.httpspec import (
        HttpFlowSpec,
        HttpProbeSpec,
        load_http_probe_spec,
        write_http_probe_spec,
    )
    from lab.measure.probe.records import ProberFile, read_prober_file
    from lab.measure.probe.tcpflows import start_tcp_flows
    from lab.measure.probe.tcpspec import (
        TcpFlowSpec,
        TcpFlowsSpec,
        load_tcp_flows_spec,
        write_tcp_flows_spec,
    )
    from lab.measure.probe.udp import ProbeTarget, load_udp_probes, prober_argv, start_udp_prober

_WHERE = {
    "ensure_prober_built": "build", "DnsQuery": "dns", "start_http_probes": "httpprobe",
    "load_http_probes": "httprecords", "HttpFlowSpec": "httpspec", "HttpProbeSpec": "httpspec",
    "load_http_probe_spec": "httpspec", "write_http_probe_spec": "httpspec",
    "ProberFile": "records",
    "read_prober_file": "records", "start_tcp_flows": "tcpflows", "TcpFlowSpec": "tcpspec",
    "TcpFlowsSpec": "tcpspec", "load_tcp_flows_spec": "tcpspec",
    "write_tcp_flows_spec": "tcpspec", "ProbeTarget": "udp", "load_udp_probes": "udp",
    "prober_argv": "udp", "start_udp_prober": "udp",
}

__all__ = [
    "DnsQuery",
    "HttpFlowSpec",
    "HttpProbeSpec",
    "ProbeTarget",
    "ProberFile",
    "TcpFlowSpec",
    "TcpFlowsSpec",
    "ensure_prober_built",
    "load_http_probe_spec",
    "load_http_probes",
    "load_tcp_flows_spec",
    "load_udp_probes",
    "prober_argv",
    "read_prober_file",
    "start_http_probes",
    "start_tcp_flows",
    "start_udp_prober",
    "write_http_probe_spec",
    "write_tcp_flows_spec",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lab.measure.probe' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lab.measure.probe.{module}"), name)
