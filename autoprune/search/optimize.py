"""The optimisation loop: Optuna's ``optimize`` with a progress bar and a trial cap shared by
every process on the study."""

from __future__ import annotations

import optuna
from tqdm.auto import tqdm

from autoprune.cache import release_heap
from autoprune.search.config import StudyConfig
from autoprune.search.objective import Objective
from autoprune.search.record import StudyRecord

__all__ = ["optimize"]


def optimize(study: optuna.Study, objective: Objective, cfg: StudyConfig, *,
             progress: bool = True) -> None:
    """Run trials until the study has ``search.trials`` completed ones (or the timeout)."""
    ts = optuna.trial.TrialState
    counted = (ts.COMPLETE, ts.PRUNED)
    remaining = cfg.search.trials - len(study.get_trials(deepcopy=False, states=counted))
    if remaining <= 0:
        return
    bar = tqdm(total=remaining, desc=f"search {cfg.name}", unit="trial",
               disable=not progress)

    def report(st: optuna.Study, _trial) -> None:
        release_heap()  # the trial's freed memory back to the OS: RSS stays flat
        bar.update(1)
        best = StudyRecord(st).best_feasible_accuracy()
        if best is not None:
            bar.set_postfix(best_feasible_acc=f"{best:.2f}")

    # the cap counts every process's trials (failed ones are retried, so they do not
    # count), so workers sharing a storage stop together at search.trials
    cap = optuna.study.MaxTrialsCallback(cfg.search.trials, states=(*counted, ts.RUNNING))
    try:
        study.optimize(objective, n_trials=remaining, timeout=cfg.search.timeout,
                       callbacks=[report, cap], catch=())
    finally:
        bar.close()
