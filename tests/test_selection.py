from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from autoprune.errors import StudyStateError
from autoprune.search.selection import front, knee, pareto_mask, pick, spread


def test_pareto_mask():
    v = np.array([[90.0, 1.0], [91.0, 2.0], [89.0, 2.0], [91.0, 1.0]])
    assert pareto_mask(v, [True, False]).tolist() == [False, False, False, True]
    # equal points do not dominate each other
    assert pareto_mask(np.array([[1.0, 1.0], [1.0, 1.0]]), [True, False]).tolist() == [True,
                                                                                       True]


def _results(rows):
    return pd.DataFrame(rows, columns=["trial", "feasible", "proxy_acc", "confirmed_acc",
                                       "size_mib", "latency_ms"])


def test_front_keeps_feasible_confirmed_non_dominated_sorted_by_size():
    res = _results([
        [0, True, 90.0, 90.0, 1.0, 1.0],
        [1, True, 91.0, 91.5, 2.0, 1.0],
        [2, True, 92.0, 89.0, 2.0, 1.0],   # dominated by 1 on confirmed accuracy
        [3, False, 99.0, 99.0, 0.5, 1.0],  # infeasible
        [4, True, 95.0, np.nan, 0.1, 1.0],  # never confirmed
    ])
    f = front(res, ["accuracy", "size"])
    assert f["trial"].tolist() == [0, 1]
    assert front(res, ["accuracy", "size"], column="proxy_acc")["trial"].tolist() == [4]
    assert front(res.iloc[:0], ["accuracy", "size"]).empty


def test_spread_starts_with_the_most_accurate_then_covers_sizes():
    pts = _results([[t, True, acc, np.nan, size, 1.0] for t, acc, size in
                    [(0, 90.0, 0.2), (1, 91.0, 0.4), (2, 92.0, 0.6), (3, 93.0, 0.8),
                     (4, 94.0, 1.0)]])
    assert spread(pts, 3) == [4, 0, 2]
    assert spread(pts, 1) == [4]
    assert spread(pts, 0) == [] and spread(pts.iloc[:0], 3) == []


def test_knee_is_the_point_farthest_from_the_chord():
    pts = _results([[0, True, 0, 80.0, 0.1, 1], [1, True, 0, 92.0, 0.3, 1],
                    [2, True, 0, 92.5, 0.6, 1], [3, True, 0, 93.0, 1.0, 1]])
    assert knee(pts) == 1
    assert knee(pts.iloc[:2]) == 1  # two points: the more accurate


def test_pick_filters_and_errors():
    pts = _results([[5, True, 0, 90.0, 0.1, 2.0], [6, True, 0, 92.0, 0.5, 1.0],
                    [7, True, 0, 93.0, 1.0, 3.0]])
    assert pick(pts, "best", dense_acc=93.5) == 7
    assert pick(pts, "smallest", dense_acc=93.5, max_drop=2.0) == 6
    assert pick(pts, "best", dense_acc=93.5, max_latency_ms=2.5) == 6
    assert pick(pts, "best", dense_acc=93.5, max_size_mib=0.2) == 5
    with pytest.raises(ValueError, match="'middle'"):
        pick(pts, "middle", dense_acc=93.5)
    with pytest.raises(ValueError, match="max_drop=0.1"):
        pick(pts, "best", dense_acc=99.0, max_drop=0.1)
    with pytest.raises(StudyStateError, match="no confirmed feasible"):
        pick(pts.iloc[:0], "best", dense_acc=93.5)
