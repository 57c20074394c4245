"""Reading anycast-lab run directories (docs/run-format.md): tables, figures and reports.

    from analysis import load_run, client_table, timeline
    run = load_run("runs/20261127-004500-node-crash-bfd")
    client_table(run)                       # outage, sites, flip, RTT, TCP per client
    timeline(run).savefig("timeline.png")   # who answered, over time

Everything here reads the run directory only, never a lab.
"""

from analysis.actions import FaultEvent, Phase
from analysis.catchment import catchment_table, phases
from analysis.figures import (
    catchment,
    changes_table,
    compare_outages,
    control_plane,
    rtt_cdf,
    rtt_timeline,
    timeline,
    timeline_zooms,
)
from analysis.metrics import (
    aggregate_table,
    client_table,
    event_table,
    flow_table,
    instrument_table,
    labelled_client_table,
    run_labels,
)
from analysis.report import render_report, write_report
from analysis.run import Run, RunError, load_run, load_runs
from analysis.style import node_colors, save_figure, site_colors
from analysis.tables import (
    compact_client_table,
    compact_event_table,
    families_side_by_side,
    format_table,
    meta_rows,
    steps_table,
    timers_table,
    to_html,
)

__all__ = [
    "FaultEvent", "Phase", "Run", "RunError", "aggregate_table", "catchment", "catchment_table",
    "changes_table", "client_table", "compact_client_table", "compact_event_table",
    "compare_outages", "control_plane", "event_table", "families_side_by_side", "flow_table",
    "format_table", "instrument_table",
    "labelled_client_table", "load_run", "load_runs", "meta_rows", "node_colors", "phases",
    "render_report", "rtt_cdf", "rtt_timeline", "run_labels", "save_figure", "site_colors",
    "steps_table", "timeline", "timeline_zooms", "timers_table", "to_html", "write_report",
]
