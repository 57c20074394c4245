"""Probes reduced to what a figure can show: one row per lane (client, service, family, flow)
and a fixed number of time buckets, about one per screen pixel. A lane group is named by its
client and its service, IPv6 lanes as ``service (IPv6)``.

A bucket takes the site that answered most of its probes; *lost* when at least half of them
were lost; *some loss* when fewer were (so a single lost probe stays visible at any zoom without
painting scattered loss as an outage); or *no data*. Buckets narrower than the probe interval
are filled from the previous bucket. Everything is numpy bincounts: a
720k-probe table reduces in a few tens of milliseconds, whatever the loss pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.run import FAMILIES
from lab.plan.model import service_label

LANE_KEYS = ["client", "service", "family", "flow"]


@dataclass(frozen=True)
class LaneRaster:
    """``codes[row, bucket]``: an index into ``names`` (the answering sites, or nodes),
    ``lost_code``, ``nodata_code`` or ``partial_code`` (some loss). ``rows`` lists the lanes;
    ``groups`` the client/service bands."""

    codes: np.ndarray
    rows: pd.DataFrame
    groups: list[tuple[str, str, int, int]]  # client, service, first row, number of rows
    names: list[str]
    start_ns: int
    end_ns: int

    @property
    def lost_code(self) -> int:
        return len(self.names)

    @property
    def nodata_code(self) -> int:
        return len(self.names) + 1

    @property
    def partial_code(self) -> int:
        return len(self.names) + 2


def lane_index(probes: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Each probe's row number, and the rows (lanes) in client, service, family, flow order."""
    n_services = max(len(probes["service"].cat.categories), 1)
    n_families = len(FAMILIES)
    n_flows = int(probes["flow"].max()) + 1 if len(probes) else 1
    key = (((probes["client"].cat.codes.to_numpy(np.int64) * n_services
             + probes["service"].cat.codes.to_numpy(np.int64)) * n_families
            + probes["family"].cat.codes.to_numpy(np.int64)) * n_flows
           + probes["flow"].to_numpy(np.int64))
    unique, row = np.unique(key, return_inverse=True)
    clients = probes["client"].cat.categories
    services = probes["service"].cat.categories
    per_client = n_services * n_families * n_flows
    rows = pd.DataFrame({"client": [str(clients[k // per_client]) for k in unique],
                         "service": [str(services[(k // (n_families * n_flows)) % n_services])
                                     for k in unique],
                         "family": [FAMILIES[(k // n_flows) % n_families] for k in unique],
                         "flow": [int(k % n_flows) for k in unique]})
    return row, rows


def lane_groups(rows: pd.DataFrame) -> list[tuple[str, str, int, int]]:
    """(client, service label, first row, rows) per band of lanes."""
    groups: list[tuple[str, str, int, int]] = []
    labels = [service_label(s, f) for s, f in zip(rows["service"], rows["family"], strict=True)]
    for i, (client, service) in enumerate(zip(rows["client"], labels, strict=True)):
        if groups and groups[-1][:2] == (client, service):
            c, s, first, n = groups[-1]
            groups[-1] = (c, s, first, n + 1)
        else:
            groups.append((client, service, i, 1))
    return groups


def lane_raster(probes: pd.DataFrame, start_ns: int, end_ns: int, buckets: int,
                interval_ns: int, by: str = "site") -> LaneRaster:
    """Reduce the probes of one trial (all lanes) to ``buckets`` columns over
    ``[start_ns, end_ns)``, each the answering ``by`` (site or node) that answered most;
    lanes with no probe in the window still get a row."""
    sites = [str(s) for s in probes[by].cat.categories]
    row_all, rows = lane_index(probes)
    n_rows, n_sites = len(rows), len(sites)
    width = end_ns - start_ns
    buckets = max(1, min(buckets, int(width // max(interval_ns, 1)) or 1))
    send = probes["send_ns"].to_numpy()
    inside = (send >= start_ns) & (send < end_ns)
    bucket = (send[inside] - start_ns) * buckets // width
    flat = row_all[inside] * buckets + bucket
    lost = probes["lost"].to_numpy()[inside]
    site = probes[by].cat.codes.to_numpy(np.int64)[inside]
    cells = n_rows * buckets
    lost_n = np.bincount(flat[lost], minlength=cells).reshape(n_rows, buckets)
    answered = ~lost & (site >= 0)
    per_site = np.bincount(flat[answered] * max(n_sites, 1) + site[answered],
                           minlength=cells * max(n_sites, 1)).reshape(n_rows, buckets, -1)
    codes = per_site.argmax(axis=2).astype(np.int16)
    answered_n = per_site.sum(axis=2)
    codes[answered_n == 0] = n_sites + 1
    codes[lost_n > 0] = n_sites + 2
    codes[(lost_n > 0) & (lost_n >= answered_n)] = n_sites
    bucket_ns = width / buckets
    _fill_gaps(codes, n_sites + 1, int(np.ceil(1.5 * interval_ns / bucket_ns)))
    return LaneRaster(codes, rows, lane_groups(rows), sites, start_ns, end_ns)


def _fill_gaps(codes: np.ndarray, nodata: int, max_gap: int) -> None:
    """Forward-fill runs of no-data up to ``max_gap`` buckets (sub-interval buckets)."""
    if max_gap < 1 or codes.size == 0:
        return
    cols = np.arange(codes.shape[1])
    valid = codes != nodata
    last = np.where(valid, cols, -1)
    np.maximum.accumulate(last, axis=1, out=last)
    fill = ~valid & (last >= 0) & (cols - last <= max_gap)
    rows_idx, cols_idx = np.nonzero(fill)
    codes[rows_idx, cols_idx] = codes[rows_idx, last[rows_idx, cols_idx]]


def bucket_medians(probes: pd.DataFrame, start_ns: int, end_ns: int,
                   buckets: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The RTT figure's points: median RTT per client, service (IPv6 as ``service (IPv6)``),
    bucket and answering site (all flows together), and the share of probes lost per client,
    service and bucket (where any was). Both carry the bucket's middle instant as ``t_ns``."""
    sub = probes[(probes["send_ns"] >= start_ns) & (probes["send_ns"] < end_ns)]
    width = end_ns - start_ns
    bucket = (sub["send_ns"].to_numpy() - start_ns) * buckets // width
    labels = [service_label(s, f) for s, f in zip(sub["service"], sub["family"], strict=True)]
    frame = pd.DataFrame({"client": sub["client"].array, "service": labels,
                          "bucket": bucket, "site": sub["site"].array,
                          "rtt_ms": sub["rtt_ms"].to_numpy(), "lost": sub["lost"].to_numpy()})
    grouped = frame.groupby(["client", "service", "bucket", "site"], observed=True)
    medians = grouped["rtt_ms"].median().reset_index()
    keys = ["client", "service", "bucket"]
    share = frame.groupby(keys, observed=True)["lost"].mean()
    lost_rows = share[share > 0].rename("lost").reset_index()
    for table in (medians, lost_rows):
        table["t_ns"] = start_ns + (table["bucket"] + 0.5) * width / buckets
    return medians, lost_rows


__all__ = ["LANE_KEYS", "LaneRaster", "bucket_medians", "lane_groups", "lane_index", "lane_raster"]
