"""Choosing points: the Pareto front, the candidates spread over it, its knee, and a pick.

Example:
    >>> import numpy as np
    >>> pareto_mask(np.array([[90.0, 1.0], [91.0, 1.0]]), [True, False]).tolist()
    [False, True]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from autoprune.errors import ConfigError, StudyStateError
from autoprune.search.budget import AXES

__all__ = ["pareto_mask", "front", "spread", "knee", "pick", "pick_scores", "fuses",
           "standardised_sum", "PICKS"]

PICKS = ("best", "knee", "smallest")


def pareto_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Non-dominated rows of ``values`` (n x k); ``maximize`` says which columns grow."""
    v = np.where(np.array(maximize)[None, :], -values, values)  # all minimised
    keep = np.ones(len(v), dtype=bool)
    for i in range(len(v)):
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def front(results: pd.DataFrame, objectives: Sequence[str],
          column: str = "confirmed_acc") -> pd.DataFrame:
    """The feasible rows of ``results`` not dominated in ``objectives`` (accuracy read from
    ``column``), sorted by size."""
    if results.empty or column not in results:
        return pd.DataFrame(columns=list(results.columns))
    cand = results[results["feasible"].astype(bool) & results[column].notna()]
    cand = cand.reset_index(drop=True)
    if cand.empty:
        return cand
    cols = [column if o == "accuracy" else AXES[o].key for o in objectives]
    mask = pareto_mask(cand[cols].to_numpy(float), [o == "accuracy" for o in objectives])
    return cand[mask].sort_values("size_mib").reset_index(drop=True)


def spread(points: pd.DataFrame, k: int, acc: str = "proxy_acc") -> list[int]:
    """Up to ``k`` rows' ``trial`` numbers: the most accurate, then evenly spread over size, so
    a confirmed front covers the whole sweep rather than one corner of it."""
    if k <= 0 or points.empty:
        return []
    by_size = points.sort_values("size_mib", kind="stable")["trial"].astype(int).tolist()
    picks = [int(points.loc[points[acc].idxmax(), "trial"])]
    for i in np.linspace(0, len(by_size) - 1, num=min(k, len(by_size))):
        t = by_size[int(round(i))]
        if len(picks) < k and t not in picks:
            picks.append(t)
    return picks


def pick_scores(results: pd.DataFrame, fuse: bool) -> pd.Series:
    """What the study's picks rank its confirmed feasible trials by (NaN for the others):
    the confirmed accuracy, or with ``fuse`` the sum of the confirmed accuracy and the scan's
    additive estimate, each standardised over those trials (mean 0, std 1).

    Why: two noisy views of a policy's quality, one from fine-tuning on held-out images and
    one from the sensitivity scan, fail on different policies; their sum ranked the
    benchmarks' rank-fidelity policies better than either (README, "Where the search has
    room"). A score that is the same for every trial adds nothing (0). Falls back to the
    confirmed accuracy where a trial has no estimate (studies scored before trials kept it,
    until a search backfills them): see :func:`fuses`."""
    out = pd.Series(math.nan, index=results.index, dtype=float)
    if results.empty:
        return out
    ok = results["feasible"].astype(bool) & results["confirmed_acc"].notna()
    conf = results.loc[ok, "confirmed_acc"].astype(float)
    out[ok] = conf
    if not (fuse and fuses(results)):
        return out
    out[ok] = standardised_sum(results.loc[ok, ["confirmed_acc", "estimate"]])
    return out


def fuses(results: pd.DataFrame) -> bool:
    """Can :func:`pick_scores` fuse the estimate: does every confirmed feasible trial have
    one?"""
    ok = results["feasible"].astype(bool) & results["confirmed_acc"].notna()
    return bool(ok.any()) and bool(results.loc[ok, "estimate"].notna().all())


def standardised_sum(columns: pd.DataFrame) -> pd.Series:
    """Row-wise sum of the columns, each standardised over the rows (mean 0, population std
    1); a constant column adds 0. The one definition of estimate+confirmed: the study's picks
    and the benchmark's rank check both use it."""
    cols = columns.astype(float)
    sd = cols.std(ddof=0)
    z = (cols - cols.mean()) / sd.where(sd > 0)
    return z.fillna(0.0).sum(axis=1)


def knee(points: pd.DataFrame, acc: str = "confirmed_acc"):
    """Index of the point farthest from the line joining the extremes (accuracy vs log size)."""
    if len(points) <= 2:
        return points[acc].idxmax()
    x = np.log(points["size_mib"].to_numpy(float))
    y = points[acc].to_numpy(float)
    xn = (x - x.min()) / max(np.ptp(x), 1e-12)
    yn = (y - y.min()) / max(np.ptp(y), 1e-12)
    i, j = int(np.argmin(xn)), int(np.argmax(xn))
    dx, dy = xn[j] - xn[i], yn[j] - yn[i]
    dist = np.abs(dy * (xn - xn[i]) - dx * (yn - yn[i])) / max(math.hypot(dx, dy), 1e-12)
    return points.index[int(np.argmax(dist))]


def pick(points: pd.DataFrame, how: str = "best", *, dense_acc: float,
         max_drop: float | None = None, max_size_mib: float | None = None,
         max_latency_ms: float | None = None) -> int:
    """The trial number of one front point.

    Args:
        points: A confirmed front (:func:`front`); for ``best`` any confirmed rows.
        how: ``best`` (highest ``pick_score`` where the rows have one, see
            :func:`pick_scores`; else the highest confirmed accuracy), ``knee``
            (:func:`knee`) or ``smallest``.
        dense_acc: The dense validation accuracy ``max_drop`` is measured from.
        max_drop, max_size_mib, max_latency_ms: Filters applied first.
    """
    if how not in PICKS:
        raise ConfigError(f"pick must be one of {PICKS}, got {how!r}.")
    if points.empty:
        raise StudyStateError("The study has no confirmed feasible trial yet; run more "
                              "trials or loosen the budget.")
    if max_size_mib is not None:
        points = points[points["size_mib"] <= max_size_mib]
    if max_latency_ms is not None:
        points = points[points["latency_ms"] <= max_latency_ms]
    if max_drop is not None:
        points = points[points["confirmed_acc"] >= dense_acc - max_drop]
    if points.empty:
        raise ConfigError(f"No confirmed front point meets the filters (max_drop={max_drop}, "
                          f"max_size_mib={max_size_mib}, max_latency_ms={max_latency_ms}).")
    if how == "best":
        by = "pick_score" if "pick_score" in points and points["pick_score"].notna().all() \
            else "confirmed_acc"
        row = points.loc[points[by].idxmax()]
    elif how == "smallest":
        row = points.loc[points["size_mib"].idxmin()]
    else:
        row = points.loc[knee(points)]
    return int(row["trial"])
