"""anycast-lab: a testbed for multi-site anycast.

Pipeline: topology file -> Topology (validated) -> LabPlan (deterministic) -> RenderedLab
(daemon configs) -> a running lab (backends) -> runs measured on one clock.
"""

from lab.errors import (
    BackendError,
    CommandError,
    InputIssue,
    LabError,
    ScenarioError,
    TopologyError,
)

__all__ = [
    "BackendError",
    "CommandError",
    "InputIssue",
    "LabError",
    "ScenarioError",
    "TopologyError",
    "__version__",
]

__version__ = "0.1.0"
