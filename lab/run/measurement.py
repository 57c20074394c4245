"""What a run measures with, started and stopped by the runner: the FIB recorder for the whole
run, and per trial the UDP probers (one per client) and the long-lived TCP flows. Every
process is started through the lab's backend, which puts it in the right node (probers) or
on the machine (the recorder and the TCP flows enter the nodes they need themselves).

The runner takes the class as a parameter: unit tests drive the timeline and the faults with
``NoMeasurement`` and the fake backend, without root.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING

from lab.backend.processes import Spawn, stop_pids
from lab.backend.state import ProcessRecord
from lab.errors import BackendError, LabError
from lab.plan.model import Role, ServicePlan

if TYPE_CHECKING:
    from lab.faults.primitives import LabHandle
    from lab.run.instrument import Snapshot
    from lab.run.runner import Progress, Recording
    from lab.scenario.load import LoadedScenario

STABLE_UPTIME_S = 3.0  # every session Established this long before a trial starts
STABLE_TIMEOUT_S = 60.0
RECORDER_READY_S = 30.0
TCP_MESSAGE_INTERVAL_MS, TCP_TIMEOUT_MS, TCP_RECONNECT_MS = 50, 1000, 100


class Measurement:
    """The recorder, probers and TCP flows of one run."""

    def __init__(self, handle: LabHandle, loaded: LoadedScenario, recording: Recording,
                 progress: Progress) -> None:
        self.handle = handle
        self.loaded = loaded
        self.recording = recording
        self.progress = progress
        self.recorder: ProcessRecord | None = None
        self.trial_processes: list[ProcessRecord] = []
        self._trial_start: tuple[int, int, Snapshot] | None = None  # trial, t_ns, counters

    def _spawner(self, node: str | None, kind: str) -> Spawn:
        handle = self.handle
        return lambda argv, log: handle.backend.spawn(handle.state, node, kind, argv, log)

    def start(self) -> None:
        """Delay calibration, then the FIB recorder, watching every router's table, until
        ``stop``."""
        from lab.measure.recorder import RecorderSpec, start_recorder, wait_ready

        self._calibrate()
        self.progress("starting the FIB recorder")
        handle, scratch = self.handle, self.recording.run_dir.scratch
        routers = [n.name for n in handle.plan.nodes
                   if n.role not in {Role.CLIENT, Role.K8S_NODE}]
        out, ready = scratch / "routes.jsonl", scratch / "recorder.ready"
        spec = RecorderSpec.build(handle.lab, {r: str(handle.netns_path(r)) for r in routers},
                                  [str(p) for s in handle.plan.services for p in s.prefixes],
                                  out, ready)
        spec_path = spec.write(scratch / "recorder.json")
        self.recording.routes_file = out
        log = scratch / "recorder.log"
        self.recorder = start_recorder(self._spawner(None, "recorder"), spec_path, log)
        wait_ready(ready, RECORDER_READY_S, self.recorder, log)

    def _calibrate(self) -> None:
        """Take the lab's forwarding cost off the emulated delays (lab.measure.calibrate),
        under the probers' load; recorded in run.json. Only with the userspace emulator."""
        from lab.backend.labs import calibrate_delays_of

        handle = self.handle
        if self.loaded.scenario.probe.calibrate:
            calibration = calibrate_delays_of(handle.backend, handle.state, handle.plan,
                                              self.progress)
            self.recording.calibration = calibration.to_dict() if calibration else None

    def settle(self) -> None:
        """Every BGP session Established for a few seconds before a trial: a session that has
        just come up (a lab started moments ago, a restart in an earlier trial) is still
        sending its first updates, which must not land in a trial."""
        from lab.backend.daemons import bgp_peer_uptimes_ms
        from lab.backend.inspect import frr_routers

        handle = self.handle
        deadline = time.monotonic() + STABLE_TIMEOUT_S
        routers = [r for r in frr_routers(handle.plan)
                   if handle.plan.node(r).role != Role.K8S_NODE]
        while True:
            youngest: float = float("inf")
            for router in routers:
                for uptime in bgp_peer_uptimes_ms(handle.files(router)).values():
                    youngest = min(youngest, -1 if uptime is None else uptime / 1000)
            if youngest >= STABLE_UPTIME_S:
                return
            if time.monotonic() > deadline:
                raise BackendError("BGP sessions keep flapping; the lab is not stable enough "
                                   "to measure (`anylab status` shows which)")
            self.progress(f"waiting for stable BGP sessions (youngest "
                          f"{max(youngest, 0):.1f} s)")
            time.sleep(max(0.2, STABLE_UPTIME_S - max(youngest, 0)))

    def start_trial(self, trial: int) -> None:
        """The probers of every probed client and the TCP flows, until ``stop_trial``."""
        from lab.measure.probe.services import client_vips, udp_targets
        from lab.measure.probe.tcpflows import start_tcp_flows
        from lab.measure.probe.udp import start_udp_prober
        from lab.plan.paths import expected_rtts

        handle, probe, recording = self.handle, self.loaded.scenario.probe, self.recording
        plan, scratch = handle.plan, recording.run_dir.scratch
        clients = [n.name for n in plan.nodes_with_role(Role.CLIENT)
                   if probe.clients == "all" or n.name in probe.clients]
        services = [s for s in plan.services
                    if probe.services == "all" or s.name in probe.services]
        for client in clients:
            # every VIP of every UDP service in each family the client has, on one clock
            udp = udp_targets(plan, client, services)
            if not udp:
                continue
            out = scratch / f"probes-{trial}-{client}.txt"
            self.trial_processes.append(start_udp_prober(
                self._spawner(client, "prober"), client, udp, probe.interval, probe.flows, out,
                scratch / f"prober-{client}.log", rotate=probe.rotate and probe.flows > 1))
            recording.prober_files.append((trial, client, out))
        for service in services:
            if service.tcp_probe is not None:
                self._start_http_probes(trial, service, clients)
        # the built-in server's line echo; a real server has its own probe (tcp_probe)
        tcp = [s for s in services if s.protocol == "tcp" and s.tcp_probe is None]
        if tcp and probe.tcp_flows:
            events = scratch / f"tcp-{trial}.jsonl"
            flows = [{"client": c, "netns": str(handle.netns_path(c)), "service": s.name,
                      "vip": str(vip), "port": s.port, "flow": k}
                     for c in clients for s in tcp for vip in client_vips(plan, c, s)
                     for k in range(probe.tcp_flows)]
            spec = scratch / f"tcp-{trial}.json"
            spec.write_text(json.dumps({
                "lab": handle.lab, "flows": flows,
                "message_interval_ms": TCP_MESSAGE_INTERVAL_MS, "timeout_ms": TCP_TIMEOUT_MS,
                "reconnect_ms": TCP_RECONNECT_MS, "events": str(events), "trial": trial}))
            self.trial_processes.append(start_tcp_flows(
                self._spawner(None, "tcpflows"), spec, scratch / f"tcp-{trial}.log"))
            recording.tcp_files.append(events)
        # the configured round trips the trial's delays are measured against (lab.plan.paths)
        self.recording.event(trial, "runner", "paths", expected_rtt_ms=expected_rtts(
            plan, clients, [n.name for n in plan.nodes_with_role(Role.K8S_NODE)]))
        self._trial_start = (trial, time.monotonic_ns(), self._snapshot())

    def _start_http_probes(self, trial: int, service: ServicePlan, clients: list[str]) -> None:
        """The HTTP (or TCP connect) probes of one service from every probed client: a TCP
        connection per flow, ``tcp_flows`` of them (at least one) per client
        (lab.measure.probe.httpprobe)."""
        from lab.measure.probe.httpprobe import start_http_probes
        from lab.measure.probe.httpspec import HttpFlowSpec, HttpProbeSpec, write_http_probe_spec
        from lab.measure.probe.services import client_vips

        handle, probe, scratch = self.handle, self.loaded.scenario.probe, \
            self.recording.run_dir.scratch
        ask = service.tcp_probe
        assert ask is not None
        out = scratch / f"http-{trial}-{service.name}.txt"
        flows = tuple(HttpFlowSpec(c, str(handle.netns_path(c)), service.name, str(vip),
                                   service.port, k)
                      for c in clients for vip in client_vips(handle.plan, c, service)
                      for k in range(max(1, probe.tcp_flows)))
        if not flows:
            return
        spec = write_http_probe_spec(HttpProbeSpec(
            handle.lab, flows, out, mode=ask.mode, path=ask.path, host=ask.host,
            identity_header=ask.identity_header, keepalive=ask.keepalive,
            interval_ms=max(1, round(ask.interval_ms)), trial=trial),
            scratch / f"http-{trial}-{service.name}.json")
        self.trial_processes.append(start_http_probes(
            self._spawner(None, "httpprobes"), spec, scratch / f"http-{trial}-{service.name}.log"))
        self.recording.http_files.append((trial, service.name, out))

    def _snapshot(self) -> Snapshot:
        """The instrument's counters (lab.run.instrument): the host, the link emulator, and
        the UDP sockets of every pod (its server) and probed client (its prober)."""
        from lab.run.instrument import namespace_processes, snapshot

        driver = None
        if any(r.kind == "emulator" for r in self.handle.state.processes):  # never start one
            with contextlib.suppress(LabError, OSError):
                driver = self.handle.driver()
        sockets = namespace_processes([*self.handle.state.processes, *self.trial_processes],
                                      ("server", "prober"))
        return snapshot(driver, sockets)

    def stop_trial(self) -> None:
        """The trial's ``instrument`` event (while its probers still run), then stop them."""
        from lab.run.instrument import trial_fields

        if self._trial_start is not None:
            trial, start_ns, start = self._trial_start
            self._trial_start = None
            with contextlib.suppress(LabError, OSError, ValueError):
                end_ns, end = time.monotonic_ns(), self._snapshot()
                self.recording.event(trial, "runner", "instrument", t_ns=end_ns,
                                     **trial_fields(start, end, end_ns - start_ns))
        stop_pids([r.pid for r in self.trial_processes], grace_s=3.0)
        self.trial_processes = []

    def stop(self) -> None:
        if self.recorder is not None:
            stop_pids([self.recorder.pid], grace_s=2.0)
            self.recorder = None


class NoMeasurement(Measurement):
    """Measures nothing: the timeline and its faults alone (unit tests, with the fake
    backend). Targets must be named (``serving:`` needs the probers' answers)."""

    def start(self) -> None:
        pass

    def settle(self) -> None:
        pass

    def start_trial(self, trial: int) -> None:
        pass


