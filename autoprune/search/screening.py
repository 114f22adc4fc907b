"""Screening: spend the scan, not fine-tunes, on the first searched trials.

Before the first searched trial, ``search.screen = N`` draws ``N`` policies from the study's
space at each of its levels (the ladder's levels with the sweep on; the budget alone without
it), ranks them by the sensitivity scan's additive accuracy estimate, which costs no training,
and queues the best one of each level as an ordinary searched trial (its parameters fixed), so
the proxy scores it, the sampler learns from it and confirmation weighs it against the
heuristics like any other trial.

Why: on the committed benchmarks of channel studies, the estimate picked the best of 17 random
draws from the space at the full budget better than the 15-step proxy or the confirmed score
did; the draws themselves are on average below the best heuristic, so a trial spent on an
unscreened draw is mostly wasted. In fine-grained and hybrid studies it did not (README,
"Where the search has room").

Example:
    >>> for level, params, est in screen(space, (1.0, 0.7, 0.4), 64, seed=0,
    ...                                  sweep=True):                        # doctest: +SKIP
    ...     record.enqueue_screened(params, est, 64)
"""

from __future__ import annotations

import numpy as np
import optuna

from autoprune.search.space import SearchSpace

__all__ = ["screen", "climb_estimate"]


def screen(space: SearchSpace, levels: tuple[float, ...], draws: int, *, seed: int,
           sweep: bool, climb: int = 0) -> list[tuple[float, dict[str, float], float]]:
    """``(level, params, estimate)`` of the best of ``draws`` random policies at each level
    (a fraction of the budget; with ``sweep`` off only 1.0 can be rebuilt from the params),
    then improved by ``climb`` steps of :func:`climb_estimate` from it.

    ``params`` are the trial parameters that rebuild the policy (``target`` included with the
    sweep); the same ``seed`` gives the same draws. Needs the space bound to a scan.
    """
    if space.scan is None:
        raise ValueError("screening needs a space bound to a sensitivity scan")
    sampler = optuna.samplers.RandomSampler(seed=seed)
    scratch = optuna.create_study(sampler=sampler)  # in memory: a source of random draws
    out = []
    for level in levels:
        best = None
        for _ in range(draws):
            trial = scratch.ask()
            est = space.estimate(space.sample(trial, factor=level))
            if best is None or est > best[1]:
                best = (dict(trial.params), est, trial.distributions)
        params, est, dists = best
        if climb:
            params, est = climb_estimate(space, level, params, est, dists, climb,
                                         rng=np.random.default_rng([seed or 0, round(level * 1e6)]))
        if sweep:
            params["target"] = level
        out.append((level, params, est))
    return out


def climb_estimate(space: SearchSpace, level: float, params: dict[str, float], est: float,
                   dists: dict, steps: int, *, rng: np.random.Generator
                   ) -> tuple[dict[str, float], float]:
    """A (1+1) hill climb on the scan's estimate: ``steps`` times, move about a third of the
    float parameters (at least one) by a Gaussian step of a quarter of their range, clipped to
    the range their distribution in ``dists`` allows (so the result is a point of the space
    the study can enqueue), rebuild the policy at ``level`` and keep the move when its
    estimate is higher. Returns the best ``(params, estimate)``; ``est`` is ``params``'.

    Random draws cover the space thinly: on the demo (8 coupling groups) the best of 1,024
    draws estimated 0.1-0.6 points above the best of 64, and 448 climbing steps from the best
    of 64 another 0.3-1.9 (README, "Where the search has room").
    """
    names = [n for n, d in dists.items()
             if isinstance(d, optuna.distributions.FloatDistribution) and d.high > d.low]
    if not names:
        return params, est
    share = max(1 / len(names), 1 / 3)
    for _ in range(steps):
        moved = [n for n in names if rng.random() < share] or [names[rng.integers(len(names))]]
        cand = dict(params)
        for n in moved:
            d = dists[n]
            cand[n] = float(np.clip(cand[n] + rng.normal(0.0, 0.25 * (d.high - d.low)),
                                    d.low, d.high))
        e = space.estimate(space.sample(optuna.trial.FixedTrial(cand), factor=level))
        if e > est:
            params, est = cand, e
    return params, est
