"""The pipeline, step by step: file -> Topology -> LabPlan -> RenderedLab.

Each step is a pure function; errors in a step stop the pipeline with every issue of that step.
"""

from __future__ import annotations

from pathlib import Path

from lab.plan.model import LabPlan
from lab.plan.planner import build_plan
from lab.render.configs import RenderedLab, render_lab
from lab.topology.model import Topology
from lab.topology.validate import load_topology


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
