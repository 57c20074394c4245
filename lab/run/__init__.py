"""Playing a scenario against a lab: the runner (timeline, faults, measurement processes),
the run directory it writes atomically, and the collection of results into it."""
