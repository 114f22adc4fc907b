"""Rank correlations without SciPy: Kendall's tau-b and Spearman's rho (average ranks).

Example:
    >>> kendall_tau([1, 2, 3, 4], [10, 20, 40, 30])
    0.6666666666666666
    >>> spearman_rho([1, 2, 3], [3, 2, 1])
    -1.0
    >>> round(tau_ceiling(1 / 3), 3)  # a finalize that re-ranks itself at tau 1/3
    0.5
    >>> round(tau_ceiling(1 / 3, seeds=2), 3)  # against the mean of the two seeds
    0.608
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["kendall_tau", "spearman_rho", "tau_ceiling"]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties counted as in SciPy's default); NaN when undefined."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"x and y differ in length ({n} vs {len(y)}).")
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom else math.nan


def _ranks(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and a[order[j + 1]] == a[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of average ranks; NaN when undefined."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)}).")
    rx, ry = _ranks(x), _ranks(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return math.nan
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def tau_ceiling(retest_tau: float, seeds: int = 1) -> float:
    """The Kendall τ a perfect proxy is expected to reach against one noisy measurement
    (``seeds = k``: against the mean of ``k`` seeds' measurements).

    Model: each finalized accuracy is the policy's true quality plus independent seed noise,
    jointly Gaussian. Two seeds of it correlate at Pearson ``r = sin(π τ / 2)`` (Greiner's
    relation), so one seed correlates with the true quality at ``√r``, the mean of ``k`` at
    ``√(k r / (1 + (k - 1) r))`` (Spearman-Brown), and a proxy that knew the true quality
    would reach ``τ = 2/π · arcsin`` of that. A proxy's τ against one seed is read against
    this, not against 1. NaN when the re-test does not correlate (``τ ≤ 0``).
    """
    if not retest_tau > 0:
        return math.nan
    r = math.sin(math.pi * min(retest_tau, 1.0) / 2)
    return 2 / math.pi * math.asin(math.sqrt(seeds * r / (1 + (seeds - 1) * r)))
