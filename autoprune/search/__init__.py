"""How policies are chosen: study config, budgets, heuristics, the search space, scoring,
latency calibration, the study record, selection, and :class:`PruneSearch`."""

from __future__ import annotations

from autoprune.search.study import PruneSearch

__all__ = ["PruneSearch"]
