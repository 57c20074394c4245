"""Evidence of a lab that failed, kept before it is torn down.

A lab's state directory (configurations, daemon logs, state.json) lives on a tmpfs and goes
with the lab. When ``up`` is not ready in time, when it fails half-way, or when a run ends
invalid, this module copies it to a directory that stays, and adds what only the running lab
can tell: the status document (``status --json``), each BGP session as its daemons describe
it, every FRR router's own view (interfaces, routes, neighbours, BFD) and every namespace's
kernel view (links, addresses, routes, neighbour entries).

Where: ``$ANYLAB_EVIDENCE_DIR`` or ``/var/tmp/anylab/evidence`` (kept across reboots), one
folder per failure named ``<UTC time>-<lab>-<what failed>``; a run keeps it inside its run
directory. Collecting never raises: a part that cannot be read is noted in its place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.backend.inspect import SessionState, frr_end
from lab.backend.names import lab_dir
from lab.backend.state import LabState
from lab.backend.vty import vty_commands
from lab.errors import LabError
from lab.plan.model import LabPlan, SessionPlan
from lab.render.configs import frr_daemons

if TYPE_CHECKING:
    from lab.backend.protocol import Backend

EVIDENCE_VARIABLE = "ANYLAB_EVIDENCE_DIR"
DEFAULT_ROOT = Path("/var/tmp/anylab/evidence")
README = "README.txt"
# what each FRR daemon is asked (through its own vty socket)
ROUTER_QUERIES = {
    "zebra": ["show interface brief", "show ip route", "show ipv6 route", "show ip nht"],
    "bgpd": ["show bgp summary", "show bgp neighbors", "show bgp ipv4 unicast",
             "show bgp ipv6 unicast"],
    "bfdd": ["show bfd peers"],
}
QUERY_TIMEOUT_S = 3.0  # a daemon that is stopped or stuck must not hold the evidence up
# each per-node part (kernel views, routers' views) stops asking after this: at a thousand
# nodes on a saturated machine, one nsenter or vty round each took over 18 minutes
PART_TIME_S = 60.0
NEIGHBOR_FIELDS = ("bgpState", "lastResetDueTo", "lastResetTimerMsecs", "lastErrorCodeSubcode",
                   "connectionsEstablished", "connectionsDropped", "bgpTimerUpMsec",
                   "hostLocal", "hostForeign")


def evidence_root() -> Path:
    return Path(os.environ.get(EVIDENCE_VARIABLE) or DEFAULT_ROOT)


def new_evidence_dir(lab: str, what: str, root: Path | None = None) -> Path:
    """A fresh folder for one failure (a suffix keeps two in one second apart)."""
    base = root or evidence_root()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder, suffix = base / f"{stamp}-{lab}-{what}", 1
    while folder.exists():
        suffix += 1
        folder = base / f"{stamp}-{lab}-{what}-{suffix}"
    folder.mkdir(parents=True, mode=0o700)
    return folder


# ------------------------------------------------------------------ sessions, in the daemons' words


def neighbor_details(backend: Backend, state: LabState,
                     routers: list[str]) -> dict[str, dict[str, Any]]:
    """Router -> peer address -> what its bgpd says of the session (the fields above)."""

    def ask(router: str) -> tuple[str, dict[str, Any]]:
        files = backend.router_files(state, router)
        try:
            data = json.loads(vty_commands(files.vty_socket("bgpd"),
                                           ["enable", "show bgp neighbors json"],
                                           QUERY_TIMEOUT_S)[1] or "{}")
        except (LabError, ValueError) as exc:
            return router, {"error": str(exc)}
        if not isinstance(data, dict):
            return router, {}
        return router, {peer: {k: info.get(k) for k in NEIGHBOR_FIELDS if k in info}
                        for peer, info in data.items() if isinstance(info, dict)}

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(ask, sorted(set(routers))))


def describe_neighbor(router: str, info: dict[str, Any] | None) -> str:
    """One line: state, the last reset and its reason, connections made and dropped."""
    if info is None:
        return f"{router} does not know the peer"
    if "error" in info:
        return f"{router} does not answer ({info['error']})"
    text = f"{info.get('bgpState', '?')} at {router}"
    reason = info.get("lastResetDueTo")
    if reason:
        ago = info.get("lastResetTimerMsecs")
        when = f" {ago / 1000:.1f} s ago" if isinstance(ago, int | float) else ""
        text += f", last reset{when}: {reason}"
        if info.get("lastErrorCodeSubcode") not in (None, "000000"):
            text += f" (error {info['lastErrorCodeSubcode']})"
    text += (f"; {info.get('connectionsEstablished', 0)} connections established, "
             f"{info.get('connectionsDropped', 0)} dropped")
    return text


def session_reasons(backend: Backend, state: LabState, plan: LabPlan,
                    sessions: list[SessionPlan]) -> dict[str, str]:
    """Session id -> why it is down as its FRR ends describe it (both ends where both run
    FRR: the two often disagree, and the disagreement is the clue)."""
    ends = {s.id: _frr_ends(plan, s) for s in sessions}
    details = neighbor_details(backend, state,
                               [r for pairs in ends.values() for r, _ in pairs])
    reasons = {}
    for session in sessions:
        parts = []
        for router, peer in ends[session.id]:
            table = details.get(router, {})
            info = table if "error" in table else table.get(peer)
            parts.append(describe_neighbor(router, info))
        reasons[session.id] = "; ".join(parts)
    return reasons


def explain_sessions(backend: Backend, state: LabState, plan: LabPlan,
                     down: list[SessionState]) -> list[SessionState]:
    """``down`` with what the daemons at their ends say of each (state, last reset, why)."""
    if not down:
        return down
    by_id = {s.id: s for s in plan.sessions}
    reasons = session_reasons(backend, state, plan, [by_id[st.session] for st in down])
    return [dataclasses.replace(st, why=reasons.get(st.session, "")) for st in down]


def _frr_ends(plan: LabPlan, session: SessionPlan) -> list[tuple[str, str]]:
    """(router, peer address) for each end of ``session`` that runs bgpd; the end that
    reports the session's state first."""
    first = frr_end(plan, session)
    other = (session.b, str(session.a_address)) if first[0] == session.a else \
        (session.a, str(session.b_address))
    ends = [first]
    if "bgpd" in frr_daemons(plan.node(other[0])):
        ends.append(other)
    return ends


# ------------------------------------------------------------------ keeping it


def keep_evidence(backend: Backend, state: LabState, plan: LabPlan | None, folder: Path,
                  why: str, status: Callable[[], dict[str, Any]] | None = None,
                  kernel: dict[str, str] | None = None) -> Path:
    """Copy the lab's files into ``folder`` and add what the running lab says of itself;
    ``why`` (what failed, in words) heads the README; ``kernel``: the backend's view of each
    node's kernel networking (links, addresses, routes, neighbours). Returns ``folder``."""
    notes: list[str] = []
    _copy_state_directory(state.lab, folder / "lab", notes)
    if plan is not None:
        _save(folder / "sessions.json", lambda: _sessions_document(backend, state, plan), notes)
        _save_text_per(folder / "frr", _frr_routers(plan),
                       lambda r: _router_view(backend, state, plan, r), notes)
    for name, text in (kernel or {}).items():
        _write(folder / "kernel" / f"{name}.txt", text)
    if status is not None:
        _save(folder / "status.json", status, notes)
    _write_readme(folder, state, why, notes)
    return folder


def _copy_state_directory(lab: str, target: Path, notes: list[str]) -> None:
    """Everything but sockets, pipes and devices (daemons' vty and API sockets)."""

    def special(directory: str, names: list[str]) -> list[str]:
        skipped = []
        for name in names:
            try:
                mode = (Path(directory) / name).lstat().st_mode
            except OSError:
                skipped.append(name)  # gone meanwhile
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                skipped.append(name)
        return skipped

    source = lab_dir(lab)
    if not source.is_dir():
        notes.append(f"no state directory {source} to copy")
        return
    try:
        shutil.copytree(source, target, ignore=special, dirs_exist_ok=True)
    except shutil.Error as exc:  # files that vanished while copying: keep the rest
        notes.append(f"some files could not be copied: {len(exc.args[0])}")
    except OSError as exc:
        notes.append(f"cannot copy {source}: {exc}")


def _sessions_document(backend: Backend, state: LabState,
                       plan: LabPlan) -> list[dict[str, Any]]:
    from lab.backend.inspect import session_states

    states = {s.session: s.state for s in session_states(backend, state, plan)}
    sessions = list(plan.sessions)
    reasons = session_reasons(backend, state, plan, sessions)
    return [{"session": s.id, "a": s.a, "b": s.b, "state": states.get(s.id),
             "why": reasons.get(s.id)} for s in sessions]


def _frr_routers(plan: LabPlan) -> list[str]:
    return [n.name for n in plan.nodes if frr_daemons(n)]


def _router_view(backend: Backend, state: LabState, plan: LabPlan, router: str) -> str:
    files = backend.router_files(state, router)
    out = []
    for daemon in frr_daemons(plan.node(router)):
        for command in ROUTER_QUERIES.get(daemon, []):
            try:
                text = vty_commands(files.vty_socket(daemon), ["enable", command],
                                    QUERY_TIMEOUT_S)[1]
            except LabError as exc:
                text = f"(no answer: {exc})\n"
            out.append(f"### {daemon}: {command}\n{text}")
    return "\n".join(out)


def _save(path: Path, produce: Callable[[], Any], notes: list[str]) -> None:
    try:
        data = produce()
    except Exception as exc:  # evidence is best effort: note the part, keep the rest
        notes.append(f"{path.name}: {type(exc).__name__}: {exc}")
        return
    _write(path, json.dumps(data, indent=1, default=str) + "\n")


def within_time(names: Sequence[str], produce: Callable[[str], str],
                budget_s: float = PART_TIME_S) -> dict[str, str]:
    """``produce(name)`` for each name, four at a time, until ``budget_s`` has passed; the
    names left then say so in place of their text."""
    deadline = time.monotonic() + budget_s

    def one(name: str) -> str:
        if time.monotonic() > deadline:
            return f"(not read: this part of the evidence had {budget_s:.0f} s)\n"
        return produce(name)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def _save_text_per(folder: Path, names: list[str], produce: Callable[[str], str],
                   notes: list[str]) -> None:
    def one(name: str) -> str:
        try:
            return produce(name)
        except Exception as exc:  # as above
            notes.append(f"{folder.name}/{name}.txt: {type(exc).__name__}: {exc}")
            return f"(no answer: {type(exc).__name__}: {exc})\n"

    for name, text in within_time(names, one).items():
        _write(folder / f"{name}.txt", text)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def _write_readme(folder: Path, state: LabState, why: str, notes: list[str]) -> None:
    lines = [f"Evidence of lab {state.lab!r} (topology {state.topology}), kept "
             f"{datetime.now(UTC).isoformat(timespec='seconds')}", "", why.rstrip(), "",
             "lab/           the lab's state directory: state.json, topology.yaml, and per node",
             "               its configuration files and daemon logs (nodes/NODE/)",
             "sessions.json  every BGP session: state and why, from the daemons of its ends",
             "frr/ROUTER.txt what each FRR router says: interfaces, routes, BGP, BFD",
             "kernel/NS.txt  each node's links, addresses, routes, neighbour entries",
             "status.json    `anylab status --json` at the time"]
    if notes:
        lines += ["", "Not collected:", *(f"- {note}" for note in notes)]
    _write(folder / README, "\n".join(lines) + "\n")
