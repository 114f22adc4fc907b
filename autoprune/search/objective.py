"""The Optuna objective: a trial -> a budget-meeting policy -> its proxy score and constraints.

Warm-start baselines arrive as enqueued trials carrying their heuristic's name; every other
trial samples the search space. Constraints are set in every trial, the skipped ones too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

import optuna

from autoprune.engine.policy import Policy
from autoprune.search.budget import AXES, Budget
from autoprune.search.calibration import LatencyRefit
from autoprune.search.record import DenseReference, StudyRecord, TrialView
from autoprune.search.scoring import ProxyScorer
from autoprune.search.space import SearchSpace

__all__ = ["Objective"]


class Objective:
    """Callable Optuna objective.

    Args:
        space: The study's search space (bound to the trained model).
        scorer: The proxy scorer.
        budget: The study's budget.
        dense: The study's dense reference.
        objectives: Objective names, in the study's order.
        prefilter: Skip the fine-tune of a searched trial whose additive scan estimate is this
            many points below the best feasible proxy accuracy so far (0: never).
        refit: ``(tries, margin, grow)`` of a :class:`LatencyRefit` of each channel structure
            onto the latency budget before fine-tuning (``None``: off; ``grow > 0``: onto its
            level's share of it, grown as well as shrunk).
    """

    def __init__(self, space: SearchSpace, scorer: ProxyScorer, budget: Budget,
                 dense: DenseReference, objectives: Sequence[str], prefilter: float = 0.0,
                 refit: tuple[int, float, float] | None = None) -> None:
        self.space = space
        self.scorer = scorer
        self.budget = budget
        self.dense = dense.to_dict()
        self.objectives = tuple(objectives)
        self.prefilter = prefilter
        self.refit = refit

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        view = TrialView(trial)
        view.set_worker(socket.gethostname(), os.getpid())
        name = view.baseline
        policy, steps, passed, refit_ms = self.build(name, view.level, trial)
        if steps:
            view.set_refit(steps, passed)
        view.set_policy(policy)
        est = self.space.estimate(policy)
        if est is not None:  # milliseconds; the study's picks can rank by it
            view.set_estimate(est)
        if self.prefilter > 0 and not name and est is not None:
            self._maybe_skip(trial, policy, est)
        # the refit timed this very structure; fine-tuning changes weights, not shapes
        score = self.scorer.score(policy, latency_ms=refit_ms)
        view.set_score({**score.to_dict(), "size_ratio": score.size_mib / self.dense["size_mib"]})
        measured = {"size_mib": score.size_mib, "macs": score.macs,
                    "latency_ms": score.latency_ms}
        self._constrain(trial, measured)
        return tuple(score.accuracy if o == "accuracy" else float(measured[AXES[o].key])
                     for o in self.objectives)

    def build(self, name: str, level: float, trial: optuna.Trial | None = None
              ) -> tuple[Policy, list[dict[str, float]], bool, float | None]:
        """``(policy, steps, passed, ms)``: heuristic ``name``'s policy at ``level`` x the
        budget (``name = ""``: sampled from ``trial``, at its own sampled level), re-projected
        by the latency refit when it is on (see :class:`LatencyRefit`); ``steps``: its
        measurements (empty when none ran), ``passed``: whether the returned structure met the
        refit's target, ``ms``: its measured latency (``None`` without the refit)."""

        def make(scale: float) -> Policy:
            space = self.space.tightened(scale)
            return space.baseline_policy(name, level) if name else space.sample(trial)

        policy = make(1.0)
        if self.refit is None or not policy.keep:
            return policy, [], False, None
        tries, margin, grow = self.refit
        level = float(policy.meta.get("target", level))  # a sampled trial's sweep target
        cap = self.budget.caps(self.dense)["latency_ms"] * (level if grow else 1.0)
        fit = LatencyRefit(cap, self.scorer.structure_latency, tries, margin,
                           self.space.min_structural_scale(level), grow=grow)
        policy, steps, ms = fit.fit(make)
        return policy, steps, ms <= fit.target_ms, ms

    def _constrain(self, trial: optuna.Trial, measured: dict[str, float]) -> None:
        for k, v in self.budget.constraints(self.dense, measured).items():
            trial.set_constraint(k, v)

    def _maybe_skip(self, trial: optuna.Trial, policy, est: float) -> None:
        best = StudyRecord(trial.study).best_feasible_accuracy()
        if best is not None and est < best - self.prefilter:
            # only size is known without pruning; MACs and latency count as met
            self._constrain(trial, {"size_mib": self.space.size_mib(policy), "macs": 0,
                                    "latency_ms": 0.0})
            raise optuna.TrialPruned(f"additive estimate {est:.2f} < best {best:.2f} - "
                                     f"{self.prefilter}")
