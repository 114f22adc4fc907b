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

import optuna

from autoprune.search.space import SearchSpace

__all__ = ["screen"]


def screen(space: SearchSpace, levels: tuple[float, ...], draws: int, *, seed: int,
           sweep: bool) -> list[tuple[float, dict[str, float], float]]:
    """``(level, params, estimate)`` of the best of ``draws`` random policies at each level
    (a fraction of the budget; with ``sweep`` off only 1.0 can be rebuilt from the params).

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
                best = (dict(trial.params), est)
        params, est = best
        if sweep:
            params["target"] = level
        out.append((level, params, est))
    return out
