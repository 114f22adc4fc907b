from __future__ import annotations

import math

import optuna
import pytest

from autoprune.engine.policy import Policy
from autoprune.search.record import (
    Confirmation,
    DenseReference,
    FinalDense,
    FinalPoint,
    StudyRecord,
    TrialView,
)


def _study(tmp_path):
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="r",
                               directions=["maximize", "minimize"])


def test_study_state_round_trips_through_storage(tmp_path):
    study = _study(tmp_path)
    rec = StudyRecord(study)
    assert rec.dense is None and rec.fingerprint is None and rec.final_dense is None
    dense = DenseReference(2.2, 37_900_000, 1.6, 0.05, 93.7, 93.6)
    conf = Confirmation([92.1, 92.5], [1000, 1001], (2000, 5000), seconds=12.5)
    fin = FinalPoint(3, "uniform", 88.0, 93.2, 1.1, 280_000, 18_000_000, 1.0, 0.01, 1.6, 1,
                     55.0, "studies/x/final/trial_3.pt")
    fdense = FinalDense(93.6, 93.7, 2.2, 37_900_000, 1.65, 0.02, "batch 1, 1 threads, cpu")
    rec.set_dense(dense)
    rec.set_fingerprint({"mode": "channel"})
    rec.set_confirmation(7, conf)
    rec.set_final(fin)
    rec.set_final_dense(fdense)
    again = StudyRecord(optuna.load_study(study_name="r",
                                          storage=f"sqlite:///{tmp_path / 's.db'}"))
    assert again.dense == dense and again.fingerprint == {"mode": "channel"}
    assert again.confirmations() == {7: conf}
    assert again.confirmations()[7].mean == pytest.approx(92.3)
    assert again.confirmations()[7].std == pytest.approx(0.2828, abs=1e-4)
    assert again.finals() == {3: fin} and again.final_dense == fdense


def test_trials_views_results_and_baselines(tmp_path):
    study = _study(tmp_path)
    rec = StudyRecord(study)
    rec.set_dense(DenseReference(2.0, 1000, 1.0, 0.0, 90.0, 90.0))
    rec.enqueue_baseline("uniform")
    assert rec.baselines_present() == {("uniform", 1.0)}
    policy = Policy("fine", sparsity={"fc.weight": 0.5})
    for feasible in (True, False):
        trial = study.ask()
        view = TrialView(trial)
        view.set_policy(policy)
        view.set_score({"accuracy": 80.0 + feasible, "size_mib": 1.0, "params": 10,
                        "macs": 500, "latency_ms": 1.0, "seconds": 0.1})
        trial.set_constraint("size", -0.1 if feasible else 0.2)
        study.tell(trial, [80.0 + feasible, 1.0])
    res = rec.results()
    assert res["trial"].tolist() == [0, 1] and res["baseline"].tolist() == ["uniform", ""]
    assert res["level"].tolist() == [1.0, 1.0]
    assert res["feasible"].tolist() == [True, False]
    assert res["size_ratio"].tolist() == [0.5, 0.5] and res["confirmed_acc"].isna().all()
    assert rec.best_feasible_accuracy() == 81.0
    assert rec.trial(1).policy == policy
    with pytest.raises(ValueError, match="Trial 9 has no policy.*\\[0, 1\\]"):
        rec.trial(9)
    assert math.isnan(res["confirmed_std"].iloc[0])


def test_baselines_queued_per_level_and_retried_with_their_level(tmp_path):
    study = _study(tmp_path)
    rec = StudyRecord(study)
    rec.enqueue_baseline("lamp", 0.7)
    rec.enqueue_baseline("lamp")
    assert rec.baselines_present() == {("lamp", 0.7), ("lamp", 1.0)}
    first = TrialView(study.ask())
    assert (first.baseline, first.level) == ("lamp", 0.7)
    rec.retry(first)
    queued = [TrialView(t) for t in study.get_trials(
        states=(optuna.trial.TrialState.WAITING,))]
    assert sorted((v.baseline, v.level) for v in queued) == [("lamp", 0.7), ("lamp", 1.0)]
    searched = optuna.create_study(directions=["maximize", "minimize"]).ask()
    searched.suggest_float("target", 0.4, 1.0)
    assert TrialView(searched).baseline == ""
    assert TrialView(searched).level == searched.params["target"]
