"""The figures of a run (summary.json and analysis alike): event windows, per-flow probe
figures, detection, control-plane convergence, aggregation over trials."""
