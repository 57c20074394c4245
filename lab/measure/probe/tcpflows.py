"""Long-lived TCP flows from client namespaces: which connections a failure breaks.

``python -m lab.measure.probe.tcpflows --spec FILE`` (spec: ``lab.measure.probe.tcpspec``)
keeps one TCP connection per flow to an anycast service, sends a line every message interval and
expects the server's reply line (the line, a space, the identity JSON) within the timeout. It
appends JSON lines to the spec's events file (one ``write`` each, flushed)::

  {"t_ns", "source": "tcp", "kind": "flow_connected", "client", "service", "family", "flow",
   "site", "node", "pod", "attempts"}
  {"t_ns", "source": "tcp", "kind": "flow_broken", "client", "service", "family", "flow",
   "reason"}

``flow_connected`` is recorded at the first reply of a connection (identity from that reply;
``attempts``: failed tries since the previous connection). ``flow_broken`` reasons: ``reset``,
``timeout`` (no reply, or no handshake, within the timeout), ``eof``, ``refused``,
``unreachable``. It is recorded once per outage: when a connection that had answered breaks, or
when the first attempt of a flow fails; retries every ``reconnect_ms`` during an outage are
silent. With ``trial`` in the spec every event carries it. Times are CLOCK_MONOTONIC ns.

One thread and one selector for every flow; each socket is created inside its client's
namespace (setns on this thread, then back), so the process itself stays in its own namespace.
SIGTERM/SIGINT end it with exit status 0 and nothing more recorded.

``start_tcp_flows`` (for the runner) starts this program tagged with the lab; it imports the
backend only when called, so the program itself starts without it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.apps.mainloop import MainLoop
from lab.apps.server.spec import SpecError
from lab.errors import ProbeError
from lab.measure.probe.tcpspec import TcpFlowSpec, TcpFlowsSpec, load_tcp_flows_spec
from lab.netns import in_netns

if TYPE_CHECKING:
    from lab.backend.processes import Spawn
    from lab.backend.state import ProcessRecord

RECV_SIZE = 65536
MAX_INBOX = 64 * 1024
LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST: a broken flow leaves no FIN_WAIT
_REASONS = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset", errno.EPIPE: "reset",
            errno.ECONNABORTED: "reset", errno.ETIMEDOUT: "timeout",
            errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable",
            errno.EHOSTDOWN: "unreachable", errno.ENETDOWN: "unreachable"}


def reason_for(code: int) -> str:
    """The flow_broken reason of a socket error number."""
    return _REASONS.get(code, "reset")


def identity_of(reply_line: bytes) -> dict[str, str]:
    """The identity in one reply line (``LINE {json}``): site/node/pod, None-free."""
    start = reply_line.find(b"{")
    if start < 0:
        return {}
    try:
        decoded = json.loads(reply_line[start:])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {k: v for k in ("site", "node", "pod") if isinstance(v := decoded.get(k), str)}


class EventLog:
    """Appends one JSON object per line, one write call each (O_APPEND: lines never mix)."""

    def __init__(self, path: str, trial: int | None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.path = path
        self.trial = trial

    def record(self, t_ns: int, kind: str, flow: TcpFlowSpec, **extra: Any) -> None:
        event: dict[str, Any] = {"t_ns": t_ns}
        if self.trial is not None:
            event["trial"] = self.trial
        event.update({"source": "tcp", "kind": kind, "client": flow.client,
                      "service": flow.service, "family": flow.family, "flow": flow.flow,
                      **extra})
        os.write(self.fd, (json.dumps(event, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        os.close(self.fd)


class Flow:
    """One flow's connection and schedule: idle -> connecting -> open -> idle ..."""

    def __init__(self, spec: TcpFlowSpec, runner: FlowRunner) -> None:
        self.spec, self.runner = spec, runner
        self.sock: socket.socket | None = None
        self.state = "idle"
        self.due_ns = 0  # idle: reconnect time; connecting: handshake deadline; open: next send
        self.answered = False  # this connection has answered (flow_connected recorded)
        self.in_outage = False  # flow_broken recorded, no flow_connected since
        self.attempts = 0
        self.seq = 0
        self.outstanding: deque[int] = deque()  # send instants of unanswered lines
        self.inbox = bytearray()
        self.outbox = bytearray()

    def deadline(self) -> int:
        if self.state == "open" and self.outstanding:
            return min(self.due_ns, self.outstanding[0] + self.runner.timeout_ns)
        return self.due_ns

    def on_time(self, now: int) -> None:
        if self.state == "idle" and now >= self.due_ns:
            self.connect(now)
        elif self.state == "connecting" and now >= self.due_ns:
            self.broken(now, "timeout")
        elif self.state == "open":
            if self.outstanding and now - self.outstanding[0] >= self.runner.timeout_ns:
                self.broken(now, "timeout")
            elif now >= self.due_ns:
                self.send_line(now)

    def connect(self, now: int) -> None:
        self.attempts += 1
        try:
            with in_netns(self.spec.netns):
                family = socket.AF_INET6 if self.spec.family == "ipv6" else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
        except (ProbeError, OSError) as exc:  # namespace gone, out of descriptors
            print(f"lab.measure.probe.tcpflows: {self.spec.client}: {exc}", file=sys.stderr,
                  flush=True)
            self.broken(now, "unreachable")
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.state = sock, "connecting"
        self.due_ns = now + self.runner.timeout_ns
        code = sock.connect_ex((self.spec.vip, self.spec.port))
        if code not in (0, errno.EINPROGRESS):
            self.broken(now, reason_for(code))
            return
        self.runner.selector.register(sock, selectors.EVENT_WRITE, self)

    def on_ready(self, mask: int, now: int) -> None:
        if self.sock is None:
            return
        if self.state == "connecting":
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.broken(now, reason_for(code))
                return
            self.state, self.answered = "open", False
            self.outstanding.clear()
            self.inbox.clear()
            self.outbox.clear()
            self.runner.selector.modify(self.sock, selectors.EVENT_READ, self)
            self.due_ns = now
            self.send_line(now)
            return
        if mask & selectors.EVENT_READ:
            self.receive(now)
        if self.state == "open" and mask & selectors.EVENT_WRITE:
            self.flush(now)

    def send_line(self, now: int) -> None:
        interval = self.runner.interval_ns
        self.outbox += f"{self.spec.flow} {self.seq}\n".encode()
        self.seq += 1
        self.outstanding.append(now)
        # The next slot on the schedule; slots missed while stalled are skipped, not bursted.
        self.due_ns += interval
        if self.due_ns <= now:
            self.due_ns = now + interval
        self.flush(now)

    def flush(self, now: int) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.outbox) if self.outbox else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.broken(now, reason_for(exc.errno or 0))
            return
        del self.outbox[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
        if self.runner.selector.get_key(self.sock).events != events:
            self.runner.selector.modify(self.sock, events, self)

    def receive(self, now: int) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.broken(now, reason_for(exc.errno or 0))
            return
        if not data:
            self.broken(now, "eof")
            return
        self.inbox += data
        while (end := self.inbox.find(b"\n")) >= 0:
            line = bytes(self.inbox[:end])
            del self.inbox[:end + 1]
            if self.outstanding:
                self.outstanding.popleft()
            if not self.answered:
                self.answered, self.in_outage = True, False
                self.runner.log.record(now, "flow_connected", self.spec, **identity_of(line),
                                       attempts=self.attempts - 1)
                self.attempts = 0
        if len(self.inbox) > MAX_INBOX:
            self.broken(now, "reset")  # not the line protocol we speak

    def broken(self, now: int, reason: str) -> None:
        if self.answered or not self.in_outage:
            self.runner.log.record(now, "flow_broken", self.spec, reason=reason)
            self.in_outage = True
        self.close(reset=True)
        self.state, self.answered = "idle", False
        self.due_ns = now + self.runner.reconnect_ns

    def close(self, reset: bool = False) -> None:
        if self.sock is None:
            return
        if self.runner.selector.get_map().get(self.sock) is not None:
            self.runner.selector.unregister(self.sock)
        if reset:
            try:  # noqa: SIM105 (best effort on a socket that may be dead already)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            except OSError:
                pass
        self.sock.close()
        self.sock = None


class FlowRunner:
    """Every flow on one main loop; ``run`` until ``stop``."""

    def __init__(self, spec: TcpFlowsSpec, log: EventLog) -> None:
        self.interval_ns = spec.message_interval_ms * 1_000_000
        self.timeout_ns = spec.timeout_ms * 1_000_000
        self.reconnect_ns = spec.reconnect_ms * 1_000_000
        self.log = log
        self.loop = MainLoop()
        self.selector = self.loop.selector
        self.flows = [Flow(f, self) for f in spec.flows]

    @property
    def stopping(self) -> bool:
        return self.loop.stopping

    def run(self) -> None:
        while not self.stopping:
            now = time.monotonic_ns()
            for flow in self.flows:
                if self.stopping:
                    return
                flow.on_time(now)
            wait = min((f.deadline() for f in self.flows), default=now + 1_000_000_000) - now
            for key, mask in self.loop.wait(wait / 1e9):
                if self.stopping:
                    break
                key.data.on_ready(mask, time.monotonic_ns())

    def stop(self) -> None:
        self.loop.stop()

    def close(self) -> None:
        for flow in self.flows:
            flow.close()
        self.loop.close()


def tcp_flows_argv(spec_path: Path) -> list[str]:
    return [sys.executable, "-m", "lab.measure.probe.tcpflows", "--spec", str(spec_path)]


def start_tcp_flows(spawn: Spawn, spec_path: Path, log: Path) -> ProcessRecord:
    """Start one process for every flow of the spec (validated first: SpecError lists the
    problems) with ``spawn``, outside every node: it opens each socket in its client's
    namespace (the spec gives their paths)."""
    spec = load_tcp_flows_spec(spec_path)
    return start_program(spawn, tcp_flows_argv(spec_path), log, spec.events,
                         f"the TCP flows of {spec.lab}")


def start_program(spawn: Spawn, argv: list[str], log: Path, output: Path,
                  what: str) -> ProcessRecord:
    """Start a probing program with ``spawn`` once its output's folder exists; ProbeError
    naming ``what`` when it cannot start."""
    from lab.errors import BackendError

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        return spawn(argv, log)
    except BackendError as exc:
        raise ProbeError(f"cannot start {what}: {exc}") from exc


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.measure.probe.tcpflows",
                                     description="long-lived TCP flows from client namespaces")
    parser.add_argument("--spec", required=True, help="the flows spec (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        spec = load_tcp_flows_spec(Path(args.spec))
        log = EventLog(str(spec.events), spec.trial)
    except SpecError as exc:
        print(f"lab.measure.probe.tcpflows: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lab.measure.probe.tcpflows: cannot open the events file: {exc}", file=sys.stderr)
        return 1
    runner = FlowRunner(spec, log)
    print(f"tcp flows: {len(spec.flows)} flows, events to {spec.events}", file=sys.stderr,
          flush=True)
    try:
        with runner.loop.stopped_by_signals():
            runner.run()
    except ProbeError as exc:
        print(f"lab.measure.probe.tcpflows: {exc}", file=sys.stderr)
        return 1
    finally:
        runner.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
