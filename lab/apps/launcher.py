"""Start many small lab programs cheaply: import once, then fork one process per instance.

``python -m lab.apps.launcher JOBS`` reads a JSON list of jobs from file JOBS, each
``{"program": "server"|"agent", "netns": "/run/netns/NAME", "spec": PATH, "log": PATH,
"node": NAME}``, and prints ``{"pids": [...]}``. Every child is an ordinary, separate process
(its own session, namespace and log), so killing one pod's server kills only that pod; what is
shared is the start-up cost: a lab starts dozens of these, and importing Python modules dozens
of times costs seconds of CPU on a small machine. A server child reads its spec and becomes the
C pod server (``lab.apps.server.main``), built here once before the first fork.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.netns import enter_netns


def _programs(names: set[str]) -> dict[str, Callable[[Sequence[str] | None], int]]:
    programs: dict[str, Callable[[Sequence[str] | None], int]] = {}
    if "server" in names:
        from lab.apps.server import main as server
        from lab.apps.server.build import server_binary

        server_binary()
        programs["server"] = server.main
    if "agent" in names:
        from lab.apps.agent import main as agent
        from lab.render.serviceproxy import service_rules_template

        programs["agent"] = agent.main
        # compiled once here, shared by every agent forked (each would compile its own copy
        # at its first ruleset: 1.9 MB of PSS per agent, measured)
        service_rules_template()
    return programs


def _child(job: dict[str, Any], main: Callable[[Sequence[str] | None], int]) -> int:
    os.setsid()
    log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    os.environ["ANYLAB_NODE"] = job["node"]
    try:
        enter_netns(job["netns"])
        return main(["--spec", job["spec"]])
    except BaseException:  # the child must never return into the launcher's loop
        traceback.print_exc()
        return 1


def main() -> int:
    jobs: list[dict[str, Any]] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    os.umask(0o077)  # the servers' and agents' files (status, events, logs) are for root only
    programs = _programs({job["program"] for job in jobs})
    pids = []
    for job in jobs:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = _child(job, programs[job["program"]])
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        pids.append(pid)
    sys.stdout.write(json.dumps({"pids": pids}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
