"""The optimisation loop: Optuna's ``optimize`` with a progress bar and a trial cap shared by
every process on the study.

Optuna's ``MaxTrialsCallback`` checks the cap only after a trial ends, so two workers that
finish together both start one more trial (optuna/optuna#3518). Here every trial also checks
the cap when it starts, counting only trials numbered before it (numbers are handed out by the
storage, atomically): the later of two racing trials gives way, ends PRUNED and marked
surplus, and is counted nowhere.
"""

from __future__ import annotations

import optuna
from tqdm.auto import tqdm

from autoprune.cache import release_heap
from autoprune.search.config import StudyConfig
from autoprune.search.objective import Objective
from autoprune.search.record import StudyRecord

__all__ = ["optimize", "counted_trials", "SURPLUS"]

SURPLUS = "surplus"  # user attribute of a trial that started after the cap was reached


def counted_trials(study: optuna.Study, *, running: bool = False,
                   below: int | None = None) -> int:
    """Trials that count towards ``search.trials``: complete or pruned (surplus ones left
    out), and running ones with ``running``; only those numbered below ``below`` if given."""
    ts = optuna.trial.TrialState
    states = (ts.COMPLETE, ts.PRUNED, *((ts.RUNNING,) if running else ()))
    return sum(1 for t in study.get_trials(deepcopy=False, states=states)
               if not t.user_attrs.get(SURPLUS) and (below is None or t.number < below))


def optimize(study: optuna.Study, objective: Objective, cfg: StudyConfig, *,
             progress: bool = True) -> None:
    """Run trials until the study has ``search.trials`` completed ones (or the timeout)."""
    cap = cfg.search.trials
    remaining = cap - counted_trials(study)
    if remaining <= 0:
        return
    bar = tqdm(total=remaining, desc=f"search {cfg.name}", unit="trial",
               disable=not progress)

    def capped(trial: optuna.Trial) -> tuple[float, ...]:
        # failed trials are retried, so they do not count; running ones of every process do
        if counted_trials(study, running=True, below=trial.number) >= cap:
            trial.set_user_attr(SURPLUS, True)
            study.stop()
            raise optuna.TrialPruned(f"surplus: the study reached search.trials = {cap} "
                                     f"while this trial started")
        return objective(trial)

    def report(st: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        release_heap()  # the trial's freed memory back to the OS: RSS stays flat
        if trial.user_attrs.get(SURPLUS):
            return
        bar.update(1)
        best = StudyRecord(st).best_feasible_accuracy()
        if best is not None:
            bar.set_postfix(best_feasible_acc=f"{best:.2f}")
        if counted_trials(st, running=True) >= cap:
            st.stop()  # workers sharing a storage stop together at search.trials

    try:
        study.optimize(capped, n_trials=remaining, timeout=cfg.search.timeout,
                       callbacks=[report], catch=())
    finally:
        bar.close()
