"""Figures over runs (matplotlib, no pyplot): each function returns a Figure."""

from analysis.figures.catchment import catchment
from analysis.figures.compare import compare_outages, comparison_data
from analysis.figures.control import changes_table, control_plane
from analysis.figures.rtt import rtt_cdf, rtt_timeline
from analysis.figures.timeline import timeline, timeline_zooms

__all__ = ["catchment", "changes_table", "compare_outages", "comparison_data", "control_plane",
           "rtt_cdf", "rtt_timeline", "timeline", "timeline_zooms"]
