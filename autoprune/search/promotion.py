"""Multi-fidelity scoring: successive halving over fine-tune steps, inside each budget level.

Every trial is scored with the short fine-tune (``proxy.steps``). Optuna's pruners refuse
multi-objective studies, and within one budget level accuracy is the only thing left to
compare (every trial meets its level by construction), so promotion happens here, after the
trials, level by level: the best ``proxy.promote`` fraction of each level's feasible trials
(and always its best heuristic, so the level-by-level comparison stays possible, or with
``proxy.confirm_heuristics = "all"`` every heuristic, which confirmation then weighs on
scores from the same fine-tune; and every screened trial, which the scan's estimate chose
and confirmation always weighs) is re-scored with ``proxy.rungs[0]`` steps, the best fraction
of those with ``rungs[1]``, and so on. Re-scoring uses the search's seed and validation
images (common random numbers), so a rung's scores compare with each other; the sampler
keeps learning from the cheap score.
Confirmation then takes its candidates from the trials that reached the top rung and
re-scores them with the top rung's steps.

A trial belongs to the lowest ladder level at or above the target it was built for
(heuristics: exactly their level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from tqdm.auto import tqdm

from autoprune.search.record import StudyRecord
from autoprune.search.scoring import ProxyScorer

__all__ = ["level_of", "promote", "top_rung"]


def level_of(target: float, levels: Sequence[float]) -> float:
    """The lowest ladder level at or above ``target`` (the highest when none is)."""
    above = [lv for lv in levels if lv >= target - 1e-6]
    return min(above) if above else max(levels)


def top_rung(results: pd.DataFrame, rungs: Sequence[int]) -> pd.DataFrame:
    """The rows that reached the last rung, with ``proxy_acc`` replaced by their accuracy
    there (all rows unchanged without rungs)."""
    if not rungs or results.empty:
        return results
    top = results[results["rung_steps"] == rungs[-1]]
    return top.assign(proxy_acc=top["rung_acc"])


def promote(record: StudyRecord, scorer: ProxyScorer, rungs: Sequence[int], fraction: float,
            levels: Sequence[float], *, heuristics: str = "all",
            progress: bool = True) -> int:
    """Run the promotions not run yet (resumable: scores already recorded are kept);
    returns how many re-scorings ran. ``heuristics`` (as ``proxy.confirm_heuristics``):
    ``"all"`` promotes every heuristic, ``"best"`` each level's best by the previous rung's
    score."""
    ran = 0
    screened = record.screened_trials()
    for r, steps in enumerate(rungs):
        res = record.results()
        feas = res[res["feasible"].astype(bool) & res["proxy_acc"].notna()]
        if feas.empty:
            return ran
        # the score each trial reached at the previous rung
        scores = record.rungs()
        prev = feas["proxy_acc"] if r == 0 else pd.Series(
            [scores.get(int(n), {}).get(rungs[r - 1], math.nan) for n in feas["trial"]],
            index=feas.index)
        feas = feas.assign(prev=prev, bin=[level_of(t, levels) for t in feas["level"]])
        feas = feas[feas["prev"].notna()]
        chosen: list[int] = []
        for _, grp in feas.groupby("bin"):
            grp = grp.sort_values(["prev", "trial"], ascending=[False, True])
            chosen += grp["trial"].head(max(1, math.ceil(fraction * len(grp)))).tolist()
            heur = grp[grp["baseline"] != ""]
            chosen += heur["trial"].astype(int).tolist()[:None if heuristics == "all" else 1]
            chosen += [int(n) for n in grp["trial"] if int(n) in screened]
        todo = [int(n) for n in dict.fromkeys(chosen) if steps not in scores.get(int(n), {})]
        for n in tqdm(todo, desc=f"promote to {steps} steps", unit="trial",
                      disable=not progress):
            acc = scorer.score(record.trial(n).policy, steps=steps, latency=False).accuracy
            record.set_rung(n, steps, acc)
            ran += 1
    return ran
