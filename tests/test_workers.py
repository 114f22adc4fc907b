"""Several workers on one study, and a worker killed with SIGKILL mid-trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from autoprune.search.config import load_config
from autoprune.search.optimize import SURPLUS, counted_trials, optimize
from autoprune.search.record import StudyRecord, TrialView
from autoprune.search.selection import front
from autoprune.search.storage import open_storage
from autoprune.search.workers import pid_alive, recover_dead_trials
from tests.helpers import tiny_raw, to_toml


def _study_file(in_tmp, root, name, trials=10):
    raw = tiny_raw(root, search={"trials": trials, "sampler": "random"}, proxy={"steps": 40})
    raw["name"] = name
    path = in_tmp / f"{name}.toml"
    path.write_text(to_toml(raw))
    return path


def _load(url, name):
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_kill_one_of_two_workers_mid_trial(backend, synthetic_idx_root, in_tmp, request):
    name = f"crash_{backend}"
    url = (f"journal:{in_tmp / 'studies' / name / 'journal.log'}" if backend == "journal"
           else request.getfixturevalue("postgres_url"))
    path = _study_file(in_tmp, synthetic_idx_root, name)
    coordinator = subprocess.Popen([sys.executable, "-m", "autoprune", "search", str(path),
                                    "--workers", "2", "--storage", url, "--quiet"], cwd=in_tmp)
    seen = killed_pid = None
    deadline = time.time() + 300
    while seen is None and time.time() < deadline and coordinator.poll() is None:
        time.sleep(0.5)
        try:
            study = _load(url, name)
        except (KeyError, Exception):  # noqa: BLE001 - not created yet
            continue
        for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            w = TrialView(t).worker
            if w and w["pid"] != coordinator.pid and pid_alive(w["pid"]):
                os.kill(w["pid"], signal.SIGKILL)
                seen, killed_pid = t.number, w["pid"]
                break
    assert seen is not None, "no worker trial was seen running"
    assert coordinator.wait(timeout=400) == 0
    study = _load(url, name)
    trials = study.get_trials()
    states = pd.Series([t.state.name for t in trials])
    assert (states == "COMPLETE").sum() == 10
    assert "RUNNING" not in set(states) and "WAITING" not in set(states)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    # the trial the killed worker was running: the one seen RUNNING, unless the worker had
    # finished it and started its next between that read and the kill (a race of the test)
    assert len(failed) == 1 and TrialView(failed[0]).worker["pid"] == killed_pid
    killed = failed[0].number
    assert killed >= seen
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == study.trials[killed].params
    names = [TrialView(t).baseline for t in trials if t.state.name == "COMPLETE"]
    assert sorted(n for n in names if n) == sorted({n for n in names if n})  # each once
    # the front written by the coordinator is the one the stored trials give
    cfg = load_config(path, [f"search.storage={url!r}"])
    expected = front(StudyRecord(study).results(), cfg.search.objectives)
    written = pd.read_csv(in_tmp / "studies" / name / "pareto.csv")
    assert written["trial"].tolist() == expected["trial"].tolist()
    assert len(StudyRecord(study).confirmations()) >= 1


def _capped_study(complete: int) -> optuna.Study:
    study = optuna.create_study()
    for _ in range(complete):
        study.add_trial(optuna.trial.create_trial(value=1.0))
    return study


def test_a_trial_started_once_the_cap_is_reached_gives_way():
    """The race of optuna#3518: another process's trial (number 2) is running when this
    process starts trial 3 with the cap at 3. Trial 3 must not run; it ends PRUNED, marked
    surplus, and counts nowhere, so the cap still holds once trial 2 completes."""
    cfg = SimpleNamespace(name="cap", search=SimpleNamespace(trials=3, timeout=None))
    study = _capped_study(2)
    other = study.ask()
    ran = []
    optimize(study, lambda t: ran.append(t.number) or 1.0, cfg, progress=False)
    assert ran == []
    surplus = study.trials[3]
    assert surplus.state == optuna.trial.TrialState.PRUNED and surplus.user_attrs[SURPLUS]
    assert counted_trials(study) == 2 and counted_trials(study, running=True) == 3
    study.tell(other, 1.0)
    assert counted_trials(study) == 3
    optimize(study, lambda t: ran.append(t.number) or 1.0, cfg, progress=False)
    assert ran == []  # the cap is reached: nothing more runs
    # without the other process's trial, the missing trial runs, and only that one
    study = _capped_study(2)
    optimize(study, lambda t: ran.append(t.number) or 1.0, cfg, progress=False)
    assert ran == [2] and counted_trials(study) == 3


def test_a_live_process_trial_is_never_failed(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="live")
    trial = study.ask()
    TrialView(trial).set_worker(__import__("socket").gethostname(), os.getppid())
    with pytest.raises(Exception, match="being searched by process"):
        recover_dead_trials(study, one_process=True)
    assert recover_dead_trials(study, one_process=False) == []
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    TrialView(trial).set_worker(__import__("socket").gethostname(), dead.pid)
    assert recover_dead_trials(study, one_process=False) == [0]
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert study.trials[1].state == optuna.trial.TrialState.WAITING
    assert study.trials[1].user_attrs["retry_of"] == 0


def test_a_worker_elsewhere_downloads_baseline_and_scan(synthetic_idx_root, in_tmp,
                                                        monkeypatch, tmp_path_factory):
    import importlib

    from autoprune.search import PruneSearch
    from autoprune.search.config import config_from_dict

    url = f"journal:{in_tmp / 'shared' / 'journal.log'}"
    raw = tiny_raw(synthetic_idx_root, search={"trials": 6, "storage": url,
                                                "artifacts": str(in_tmp / "shared" / "art")})
    cfg = config_from_dict(raw, "remote")
    raw["search"]["trials"] = 8
    PruneSearch(cfg, progress=False).run()
    # another machine: an empty cache, and neither training nor scanning allowed
    monkeypatch.setenv("AUTOPRUNE_CACHE", str(tmp_path_factory.mktemp("other-machine")))

    def refuse(*_a, **_k):
        raise AssertionError("the worker recomputed what it should have downloaded")

    monkeypatch.setattr(importlib.import_module("autoprune.train"), "train", refuse)
    monkeypatch.setattr(importlib.import_module("autoprune.search.sensitivity"),
                        "_scan_chunk", refuse)
    worker = PruneSearch(config_from_dict(raw, "remote"), progress=False)
    worker.work()
    study = _load(url, "remote")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 8


def test_a_retrained_baseline_does_not_mix_with_old_trials(synthetic_idx_root, in_tmp):
    from autoprune.search import PruneSearch
    from autoprune.search.config import config_from_dict

    raw = tiny_raw(synthetic_idx_root, search={"trials": 5})
    search = PruneSearch(config_from_dict(raw, "retrained"), progress=False).run()
    attrs = dict(search.study_.user_attrs["artifacts"])
    attrs["baseline"] = {**attrs["baseline"], "hash": "0123456789abcdef"}
    search.study_.set_user_attr("artifacts", attrs)  # as if trained with other weights
    with pytest.raises(Exception, match="differ from the ones study 'retrained'"):
        PruneSearch(config_from_dict(raw, "retrained"), progress=False).run()
