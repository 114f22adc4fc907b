from __future__ import annotations

import optuna
import pytest
import torch

from autoprune.cli import main
from autoprune.config import Budget, SearchSettings, apply_overrides, config_from_dict
from autoprune.costmodel import ChannelCostModel, FineCostModel
from autoprune.metrics import count_macs, count_params
from autoprune.models import ModelSpec, build_model
from autoprune.objective import ProxyScorer
from autoprune.prune import channel_prune
from autoprune.search import PruneSearch, pareto_mask
from autoprune.space import Limits, SearchSpace


def tiny_raw(root, **sections) -> dict:
    raw = {
        "model": {"name": "cnn", "width": 0.5},
        "data": {"name": "fashion-mnist", "root": str(root), "val_size": 200, "pad_to": 0,
                 "augment": "none"},
        "baseline": {"epochs": 2, "lr": 0.05, "batch_size": 64},
        "search": {"mode": "fine", "trials": 8, "prior": "lamp", "sampler": "tpe"},
        "budget": {"size": 0.3},
        "proxy": {"steps": 3, "val_limit": 100, "recalibrate": 64, "confirm_top": 2,
                  "confirm_seeds": 2, "confirm_val": 100},
        "scan": {"ratios": [0.0, 0.5, 0.9], "val_limit": 100},
        "latency": {"min_run_time": 0.01},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- projection


@pytest.mark.parametrize("target", [0.1, 0.3, 0.6])
def test_fine_projection_hits_target_within_half_percent(target):
    model = build_model(ModelSpec("cnn", 1.0, 1, 10))
    x = torch.zeros(1, 1, 28, 28)
    total = count_params(model)
    limits = Limits.from_budget(Budget(size=target), total, count_macs(model, (1, 28, 28)))
    for space_kind in ("centred", "wide"):
        space = SearchSpace(model, x, SearchSettings(mode="fine", space=space_kind), limits)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(5):
            policy = space.sample(study.ask())
            params = space.fine_cost.params(policy.sparsity)
            assert params <= target * total
            assert params >= (1 - 0.005) * target * total


def test_channel_projection_hits_macs_target_and_cost_model_is_exact():
    model = build_model(ModelSpec("vgg", 1.0, 3, 10))
    x = torch.zeros(1, 3, 32, 32)
    dense_macs = count_macs(model, (3, 32, 32))
    limits = Limits.from_budget(Budget(macs=0.4), count_params(model), dense_macs)
    space = SearchSpace(model, x, SearchSettings(mode="channel", prior="uniform"), limits)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        policy = space.sample(study.ask())
        macs = space.channel_cost.macs(policy.keep)
        assert 0.995 * 0.4 * dense_macs <= macs <= 0.4 * dense_macs
    pruned = channel_prune(model, policy.keep, x)
    assert count_macs(pruned, (3, 32, 32)) == macs
    assert count_params(pruned) == space.channel_cost.params(policy.keep)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "cnn"])
def test_channel_cost_model_matches_real_pruning(name):
    model = build_model(ModelSpec(name, 0.5, 1, 10))
    x = torch.zeros(1, 1, 32, 32)
    cost = ChannelCostModel(model, x)
    gen = torch.Generator().manual_seed(0)
    keep = {g: float(0.2 + 0.8 * torch.rand(1, generator=gen)) for g in cost.ids}
    pruned = channel_prune(model, keep, x)
    assert cost.params(keep) == count_params(pruned)
    assert cost.macs(keep) == count_macs(pruned, (1, 32, 32))


def test_fine_cost_model_matches_real_counts():
    from autoprune.metrics import count_nonzero
    from autoprune.prune import FineGrainedPruner

    model = build_model(ModelSpec("vgg", 0.25, 1, 10))
    cost = FineCostModel(model, (1, 32, 32))
    sparsity = {n: 0.9 - 0.08 * i for i, n in enumerate(cost.names)}
    FineGrainedPruner(model, sparsity)
    assert cost.params(sparsity) == count_nonzero(model)
    assert cost.macs(sparsity) == count_macs(model, (1, 32, 32))


def test_impossible_budget_reported_before_training(synthetic_idx_root, in_tmp, capsys,
                                                    monkeypatch):
    import importlib

    train_mod = importlib.import_module("autoprune.train")

    def no_training(*a, **k):
        raise AssertionError("training started before the budget check")

    monkeypatch.setattr(train_mod, "train", no_training)
    cfg = config_from_dict(tiny_raw(synthetic_idx_root, budget={"size": 0.001}), "imp")
    with pytest.raises(ValueError, match="budget is impossible"):
        PruneSearch(cfg, progress=False).run()


def test_pareto_mask():
    v = torch.tensor([[90.0, 1.0], [91.0, 2.0], [89.0, 2.0], [91.0, 1.0]]).numpy()
    assert pareto_mask(v, [True, False]).tolist() == [False, False, False, True]


# ---------------------------------------------------------------- the study


def test_search_end_to_end_constraints_and_front(synthetic_idx_root, in_tmp):
    raw = tiny_raw(synthetic_idx_root)
    cfg = config_from_dict(raw, "tiny")
    search = PruneSearch(cfg, progress=False).run()
    res = search.results_
    assert len(res) == 8
    assert set(res["baseline"]) >= {"uniform", "global_magnitude", "lamp", "erk", "sensitivity"}
    for t in search.study_.trials:
        assert t.constraints, "every trial sets its constraints"
    assert res["feasible"].all()  # the space meets the budget by construction
    assert (res["size_ratio"] <= 0.3 + 1e-9).all()
    front = search.pareto_
    assert len(front) >= 1 and front["confirmed_acc"].notna().all()
    assert (in_tmp / "studies" / "tiny" / "pareto.csv").is_file()
    policy = search.best()
    assert policy.mode == "fine" and set(policy.sparsity) == {
        "features.0.weight", "features.3.weight", "features.6.weight", "fc1.weight",
        "fc2.weight"}
    for key in search.study_.user_attrs:
        if key.startswith("confirm:"):
            conf = search.study_.user_attrs[key]
            assert conf["val_images"] == [100, 200] and len(conf["accs"]) == 2


def test_infeasible_trials_never_on_the_front(synthetic_idx_root, in_tmp):
    # a latency cap nothing can meet, checked by measurement only (projection uses size)
    raw = tiny_raw(synthetic_idx_root, search={"mode": "channel", "prior": "uniform",
                                                "trials": 5})
    raw["budget"] = {"size": 0.5, "latency_ms": 1e-6}
    cfg = config_from_dict(raw, "infeasible")
    search = PruneSearch(cfg, progress=False)
    search.check_budget = lambda: None  # let the trials run to exercise the constraint
    search.run()
    assert len(search.results_) == 5 and not search.results_["feasible"].any()
    for t in search.study_.trials:
        assert t.constraints["latency_ms"] > 0
    assert search.pareto_.empty
    with pytest.raises(ValueError, match="no confirmed feasible"):
        search.best()


def test_interrupted_search_resumes_without_losing_trials(synthetic_idx_root, in_tmp,
                                                          monkeypatch):
    cfg = config_from_dict(tiny_raw(synthetic_idx_root, search={"trials": 7}), "resume")
    real_score = ProxyScorer.score
    calls = {"n": 0}

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_score(self, *a, **k)

    monkeypatch.setattr(ProxyScorer, "score", flaky)
    with pytest.raises(KeyboardInterrupt):
        PruneSearch(cfg, progress=False).run()
    study = optuna.load_study(study_name="resume", storage=cfg.storage_url)
    first = {t.number: t.values for t in study.trials
             if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(first) == 3
    monkeypatch.setattr(ProxyScorer, "score", real_score)
    search = PruneSearch(cfg, progress=False).run()
    done = [t for t in search.study_.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.number: t.values for t in done if t.number in first} == first
    finished = [t for t in search.study_.trials if t.state.is_finished()]
    assert len(finished) == 7
    names = [t.user_attrs.get("baseline") for t in done if t.user_attrs.get("baseline")]
    assert len(names) == len(set(names)) == 5  # no baseline enqueued twice


def test_same_seed_same_proposals(synthetic_idx_root, in_tmp):
    proposals = []
    for name in ("seedA", "seedB"):
        raw = tiny_raw(synthetic_idx_root, search={"trials": 7, "warm_start": False,
                                                    "sampler": "random"})
        raw["name"] = name
        search = PruneSearch(config_from_dict(raw, name), progress=False).run()
        proposals.append([t.params for t in search.study_.trials])
    assert proposals[0] == proposals[1] and proposals[0][0]


def test_changed_settings_refuse_to_mix_with_existing_study(synthetic_idx_root, in_tmp):
    raw = tiny_raw(synthetic_idx_root, search={"trials": 5})
    PruneSearch(config_from_dict(raw, "mix"), progress=False).run()
    raw["proxy"]["steps"] = 4
    with pytest.raises(ValueError, match="other settings.*proxy"):
        PruneSearch(config_from_dict(raw, "mix"), progress=False).run()
    study = optuna.load_study(study_name="mix", storage="sqlite:///studies/mix/study.db")
    assert len(study.trials) == 5


def test_config_errors_name_the_value(synthetic_idx_root):
    with pytest.raises(ValueError, match="'bogus'"):
        config_from_dict(tiny_raw(synthetic_idx_root, search={"sampler": "bogus"}), "x")
    with pytest.raises(ValueError, match="size=1.5"):
        config_from_dict(tiny_raw(synthetic_idx_root, budget={"size": 1.5}), "x")
    raw = tiny_raw(synthetic_idx_root)
    raw["budget"] = {}
    with pytest.raises(ValueError, match="no budget"):
        config_from_dict(raw, "x")
    with pytest.raises(ValueError, match="latency"):
        config_from_dict(tiny_raw(synthetic_idx_root, budget={"latency": 0.5}), "x")
    with pytest.raises(ValueError, match="Unknown key"):
        config_from_dict(tiny_raw(synthetic_idx_root, proxy={"stepz": 3}), "x")
    raw = apply_overrides(tiny_raw(synthetic_idx_root), ["budget.size=", "budget.macs=0.5"])
    assert raw["budget"] == {"macs": 0.5}


def test_cli_bad_budget_exit_2(capsys):
    assert main(["search", "studies/demo.toml", "--budget", "size=1.7", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "size=1.7" in err and len(err.strip().splitlines()) == 1
    assert main(["search", "studies/nope.toml", "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_hybrid_search_and_sensitivity_prior(synthetic_idx_root, in_tmp):
    raw = tiny_raw(synthetic_idx_root, search={"mode": "hybrid", "prior": "uniform",
                                                "trials": 5, "sweep": True})
    search = PruneSearch(config_from_dict(raw, "hybrid"), progress=False).run()
    assert search.results_["feasible"].all()
    assert (search.results_["size_ratio"] <= 0.3 + 1e-9).all()
    policy = search.best()
    assert policy.mode == "hybrid" and policy.keep and policy.sparsity
    raw = tiny_raw(synthetic_idx_root, search={"mode": "channel", "prior": "sensitivity",
                                                "trials": 4})
    search = PruneSearch(config_from_dict(raw, "chsens"), progress=False).run()
    assert "sensitivity" in set(search.results_["baseline"])
    assert search.results_["feasible"].all()


def test_locked_database_one_sentence_and_trials_kept(synthetic_idx_root, in_tmp, capsys):
    import sqlite3

    raw = tiny_raw(synthetic_idx_root, search={"trials": 5})
    raw["name"] = "locked"
    study_file = in_tmp / "studies" / "locked.toml"
    study_file.parent.mkdir(exist_ok=True)
    PruneSearch(config_from_dict(raw, "locked"), progress=False).run()
    study_file.write_text(_to_toml(raw))
    db = in_tmp / "studies" / "locked" / "study.db"
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = main(["search", str(study_file), "--trials", "7", "--quiet"])
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert code == 2 and "locked" in err and len(err.strip().splitlines()) == 1
    study = optuna.load_study(study_name="locked", storage=f"sqlite:///{db}")
    assert len([t for t in study.trials if t.state.is_finished()]) == 5


def _to_toml(raw: dict) -> str:
    lines = [f"name = {raw['name']!r}"] if "name" in raw else []
    for section, values in raw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            for k, v in values.items():
                if isinstance(v, bool):
                    v = str(v).lower()
                elif isinstance(v, str):
                    v = f'"{v}"'
                lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def test_postgresql_storage_runs_and_resumes(synthetic_idx_root, in_tmp, postgres_url):
    raw = tiny_raw(synthetic_idx_root, search={"trials": 5, "storage": postgres_url})
    first = PruneSearch(config_from_dict(raw, "pg"), progress=False).run()
    assert first.cfg.storage_url.startswith("postgresql://")
    before = {t.number: t.values for t in first.study_.trials}
    assert len(before) == 5
    raw["search"]["trials"] = 7
    second = PruneSearch(config_from_dict(raw, "pg"), progress=False).run()
    numbers = [t.number for t in second.study_.trials if t.state.is_finished()]
    assert numbers == list(range(7))
    assert before == {t.number: t.values for t in second.study_.trials if t.number < 5}


def test_journal_storage_runs_and_resumes(synthetic_idx_root, in_tmp):
    url = f"journal:{in_tmp / 'studies' / 'journal.log'}"
    raw = tiny_raw(synthetic_idx_root, search={"trials": 5, "storage": url})
    PruneSearch(config_from_dict(raw, "journal"), progress=False).run()
    raw["search"]["trials"] = 6
    search = PruneSearch(config_from_dict(raw, "journal"), progress=False).run()
    assert [t.number for t in search.study_.trials if t.state.is_finished()] == list(range(6))
    assert (in_tmp / "studies" / "journal.log").stat().st_size > 0


def test_prefilter_skips_hopeless_trials(synthetic_idx_root, in_tmp, monkeypatch):
    from autoprune.sensitivity import AdditiveEstimator

    monkeypatch.setattr(AdditiveEstimator, "predict", lambda self, ratios: -100.0)
    raw = tiny_raw(synthetic_idx_root, search={"trials": 7, "prefilter": 1.0})
    search = PruneSearch(config_from_dict(raw, "prefilter"), progress=False).run()
    pruned = [t for t in search.study_.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == 2  # the 5 baselines are always scored, the searched 2 are skipped
    assert all(t.user_attrs["estimate"] == -100.0 and t.constraints for t in pruned)
    assert set(search.results_["trial"]) == set(range(5))


def test_latency_budget_becomes_a_calibrated_macs_cap(synthetic_idx_root, in_tmp):
    raw = tiny_raw(synthetic_idx_root, search={"mode": "channel", "prior": "uniform"},
                   model={"name": "vgg", "width": 0.25}, latency={"min_run_time": 0.1})
    raw["budget"] = {"latency": 0.6}
    cfg = config_from_dict(raw, "calib")
    cap = PruneSearch(cfg, progress=False).check_budget()
    dense = count_macs(build_model(ModelSpec("vgg", 0.25, 1, 10)), (1, 28, 28))
    assert cap is not None and 0 < cap < 0.95 * dense
    limits = Limits.from_budget(cfg.budget, 1, dense, latency_macs=cap)
    assert limits.structural_macs == cap and limits.fits(1, dense, cap)
    assert not limits.fits(1, dense, 1.01 * cap)
    assert Limits.from_budget(cfg.budget, 1, dense).structural_macs == 0.6 * dense


def test_killed_process_resumes_and_fails_its_stale_trial(synthetic_idx_root, in_tmp):
    """SIGKILL mid-study (no cleanup at all), then re-run: finished trials are all kept."""
    import signal
    import subprocess
    import sys
    import time

    import sqlalchemy

    raw = tiny_raw(synthetic_idx_root, search={"trials": 40, "warm_start": False,
                                                "sampler": "random"},
                   proxy={"steps": 30})
    raw["name"] = "killed"
    path = in_tmp / "killed.toml"
    path.write_text(_to_toml(raw))
    storage = f"sqlite:///{in_tmp / 'studies' / 'killed' / 'study.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "autoprune.cli", "search", str(path),
                             "--quiet"], cwd=in_tmp)
    deadline = time.time() + 240
    complete = []
    while time.time() < deadline and proc.poll() is None:
        time.sleep(1)
        if not (in_tmp / "studies" / "killed" / "study.db").is_file():
            continue
        try:
            study = optuna.load_study(study_name="killed", storage=storage)
        except (KeyError, sqlalchemy.exc.OperationalError):
            continue  # not created yet, or the writer holds the SQLite lock right now
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(complete) >= 3:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(complete) >= 3
    study = optuna.load_study(study_name="killed", storage=storage)
    kept = {t.number: t.values for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE}
    raw["search"]["trials"] = len(study.trials) + 1
    raw["proxy"]["steps"] = 30
    search = PruneSearch(config_from_dict(raw, "killed"), progress=False).run()
    after = {t.number: t.values for t in search.study_.trials
             if t.state == optuna.trial.TrialState.COMPLETE}
    assert {n: after[n] for n in kept} == kept
    assert not [t for t in search.study_.trials
                if t.state == optuna.trial.TrialState.RUNNING]
