"""The whole flow of anycast-lab, step by step: the table of contents of the code.

    load       topology file -> Topology        validated, every problem at once   lab.topology
    plan       Topology -> LabPlan              deterministic expansion            lab.plan
    render     LabPlan -> RenderedLab           every daemon's configuration       lab.render
    deploy     RenderedLab -> a running lab     through the chosen backend         lab.backend
    ready      wait until it is ready           sessions, routes, clients answered lab.backend
    run        scenario -> run directory        faults on a timeline, measured     lab.run
    collect    recordings -> run files          events, probes, routes             lab.run
    summarize  run files -> summary.json        the figures (one definition)       lab.measure

load, plan, render and summarize are pure functions; deploy, ready and run act on the
machine. Errors stop a step with every issue of that step. ``lab.backend.labs`` strings
render, deploy and ready into `up`; ``lab.run.runner`` strings run, collect and summarize.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.plan.model import LabPlan
from lab.plan.planner import build_plan
from lab.render.configs import RenderedLab, render_lab
from lab.topology.model import Topology
from lab.topology.validate import load_topology

if TYPE_CHECKING:
    import pandas as pd

    from lab.backend.protocol import Backend
    from lab.backend.ready import ReadyReport
    from lab.backend.state import LabState
    from lab.run.runner import Recording, RunOptions, RunResult
    from lab.scenario.load import LoadedScenario

Progress = Callable[[str], None]


def load(path: Path) -> Topology:
    """Parse and validate (raises TopologyError with every problem)."""
    topology, _ = load_topology(path)
    return topology


def plan(path: Path) -> LabPlan:
    """Validate, then expand into nodes, addresses, ASNs, links and sessions."""
    return build_plan(load(path))


def render(path: Path) -> tuple[LabPlan, RenderedLab]:
    """Validate, plan, then render every daemon's configuration."""
    lab_plan = plan(path)
    return lab_plan, render_lab(lab_plan)


def deploy(backend: Backend, lab: str, lab_plan: LabPlan, rendered: RenderedLab,
           topology_file: Path, progress: Progress,
           driver_kind: str | None = None) -> LabState:
    """Build the lab with ``backend`` (on failure: removed, evidence kept, error raised)."""
    return backend.deploy(lab, lab_plan, rendered, topology_file, progress, driver_kind)


def ready(backend: Backend, state: LabState, lab_plan: LabPlan, timeout_s: float,
          progress: Progress, when_answered: Callable[[], None] | None = None) -> ReadyReport:
    """Wait until every session is up, routing settled and every client answered
    (``when_answered`` runs once, beside the waiting, as soon as every client is answered
    after routing went quiet; the lab is ready once it has returned)."""
    return backend.wait_ready(state, lab_plan, timeout_s, progress, when_answered)


def run(options: RunOptions, progress: Progress, **kwargs: Any) -> RunResult:
    """Play a scenario against its lab and write the run directory."""
    from lab.run.runner import run_scenario

    return run_scenario(options, progress, **kwargs)


def collect(loaded: LoadedScenario, state: LabState, recording: Recording,
            complete: bool) -> dict[str, Any]:
    """Turn a run's recordings into its files (events, probes, routes, summary)."""
    from lab.run.collect import collect_results

    return collect_results(loaded, state, recording, complete)


def summarize(*, scenario: str, complete: bool, probes: pd.DataFrame, routes: pd.DataFrame,
              events: Sequence[dict[str, Any]], interval_ms: float,
              trial_bounds: Sequence[tuple[int, int, int]]) -> dict[str, Any]:
    """summary.json's figures from a run's records (lab.measure.metrics)."""
    from lab.measure.metrics.summary import summarize_run

    return summarize_run(scenario=scenario, complete=complete, probes=probes, routes=routes,
                         events=events, interval_ms=interval_ms, trial_bounds=trial_bounds)
