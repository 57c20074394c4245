"""Catchment: which site answered each client, per phase of a trial (before the first action,
then the window of each action), as shares of the probes sent."""

from __future__ import annotations

import pandas as pd

from analysis.actions import Phase, trial_phases
from analysis.run import NS_PER_S, Run

LOST = "lost"


def phases(run: Run, trial: int = 0) -> list[Phase]:
    start, end = run.trial_bounds(trial)
    return trial_phases(run.actions, trial, start, end)


def catchment_table(run: Run, trial: int = 0) -> pd.DataFrame:
    """One row per phase, client, service and family: probes sent and the share answered by
    each site (one column per site) and lost, each between 0 and 1."""
    origin = run.origin_ns(trial)
    frames = []
    for phase in phases(run, trial):
        probes = run.trial_probes(trial, phase.start_ns, phase.end_ns)
        if probes.empty:
            continue
        answer = probes["site"].astype("object").where(~probes["lost"], LOST)
        counts = pd.crosstab([probes["client"], probes["service"], probes["family"]], answer)
        counts = counts.reindex(columns=[*run.sites, LOST], fill_value=0)
        sent = counts.sum(axis=1)
        shares = counts.div(sent, axis=0)
        shares.insert(0, "probes", sent)
        shares = shares.reset_index()
        shares.insert(0, "end_s", (phase.end_ns - origin) / NS_PER_S)
        shares.insert(0, "start_s", (phase.start_ns - origin) / NS_PER_S)
        shares.insert(0, "phase", phase.name)
        frames.append(shares[shares["probes"] > 0])
    if not frames:
        return pd.DataFrame(columns=["phase", "start_s", "end_s", "client", "service", "family",
                                     "probes", *run.sites, LOST])
    table = pd.concat(frames, ignore_index=True)
    table.columns.name = None
    return table.astype({"client": "object", "service": "object", "family": "object"})


__all__ = ["LOST", "catchment_table", "phases"]
