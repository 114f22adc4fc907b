"""Confirmation: re-score the front's candidates with fresh fine-tune seeds on validation images
the search did not select on.

Selecting the best of many noisy scores overstates it (the winner's curse); the reported front
and every pick use the confirmed scores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tqdm.auto import tqdm

from autoprune.search.config import ProxySettings
from autoprune.search.record import Confirmation, StudyRecord
from autoprune.search.scoring import ProxyScorer
from autoprune.search.selection import front, spread

__all__ = ["CONFIRM_SEED0", "candidates", "confirm"]

CONFIRM_SEED0 = 1000


def candidates(record: StudyRecord, objectives: Sequence[str], top: int) -> list[int]:
    """Trial numbers to confirm: up to ``top`` proxy-front points spread over size, the best
    searched trial and the two best baselines."""
    res = record.results()
    feas = res[res["feasible"].astype(bool)]
    if feas.empty:
        return []
    chosen = spread(front(feas, objectives, column="proxy_acc"), top)
    searched = feas[feas["baseline"] == ""]
    if len(searched):
        chosen.append(int(searched.loc[searched["proxy_acc"].idxmax(), "trial"]))
    baselines = feas[feas["baseline"] != ""].sort_values("proxy_acc", ascending=False,
                                                         kind="stable")
    chosen += baselines["trial"].astype(int).tolist()[:2]
    return list(dict.fromkeys(chosen))


def confirm(record: StudyRecord, scorer: ProxyScorer, settings: ProxySettings,
            objectives: Sequence[str], *, progress: bool = True) -> dict[int, Confirmation]:
    """Confirm the candidates not confirmed yet; returns every confirmation of the study."""
    if settings.confirm_seeds == 0 or settings.confirm_val == 0:
        return record.confirmations()
    done = record.confirmations()
    todo = [n for n in candidates(record, objectives, settings.confirm_top) if n not in done]
    seeds = [CONFIRM_SEED0 + j for j in range(settings.confirm_seeds)]
    images = (settings.val_limit, settings.confirm_val)
    for n in tqdm(todo, desc="confirm", unit="trial", disable=not progress):
        start = time.perf_counter()
        policy = record.trial(n).policy
        accs = [scorer.score(policy, seed=s, images=images).accuracy for s in seeds]
        record.set_confirmation(n, Confirmation(accs, seeds, (images[0], sum(images)),
                                                time.perf_counter() - start))
    return record.confirmations()
