"""The study: an Optuna multi-objective search of per-layer pruning policies.

:class:`PruneSearch` opens the storage, runs the trials, confirms the front and loads the
results; the objective, the confirmation and the selection live in their own modules.

Example:
    >>> from autoprune import PruneSearch
    >>> search = PruneSearch("studies/demo.toml", overrides=["search.trials=10"])  # doctest: +SKIP
    >>> search.run()                                                             # doctest: +SKIP
    >>> search.pareto_                       # confirmed Pareto front, a DataFrame
    >>> policy = search.best(max_drop=1.0)   # the most accurate confirmed point
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path

import optuna
import pandas as pd
import torch

from autoprune.engine.policy import Policy, get_mode
from autoprune.errors import ConfigError, StudyStateError
from autoprune.search import artifacts, confirmation, promotion, selection
from autoprune.search.budget import objective_direction
from autoprune.search.config import StudyConfig, fuses_estimate, load_config
from autoprune.search.objective import Objective
from autoprune.search.optimize import optimize
from autoprune.search.plan import plan_space
from autoprune.search.record import StudyRecord
from autoprune.search.scoring import ProxyScorer
from autoprune.search.screening import screen
from autoprune.search.sensitivity import AdditiveEstimator
from autoprune.search.space import SearchSpace
from autoprune.search.storage import open_storage
from autoprune.search.workers import launch_workers, recover_dead_trials
from autoprune.search.workspace import Workspace

__all__ = ["PruneSearch"]

_SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                   n_startup_trials=8),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=12),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def _bind(planned: SearchSpace, ws: Workspace, scan) -> SearchSpace:
    """A planned space bound to the trained baseline, with the scan's additive estimate."""
    return planned.bind(ws.baseline.model, planned.limits,
                        AdditiveEstimator(scan.table, scan.dense_acc))


class PruneSearch:
    """Search per-layer pruning policies for a study.

    Args:
        config: A :class:`StudyConfig` or the path of a study TOML file.
        overrides: ``section.key=value`` overrides applied to a TOML file.
        device: ``cpu`` / ``cuda`` (default: CUDA when present).
        progress: Show progress bars.

    Attributes (after :meth:`run` or :meth:`load`):
        study_: The Optuna study.
        results_: Every completed trial, one row each.
        pareto_: The confirmed Pareto front of feasible trials.
    """

    def __init__(self, config: StudyConfig | str | Path, *, overrides: list[str] | None = None,
                 device: str | None = None, progress: bool = True) -> None:
        self.config = config
        self.overrides = overrides or []
        self.device = device
        self.progress = progress

    @cached_property
    def cfg(self) -> StudyConfig:
        """The validated study configuration."""
        if isinstance(self.config, StudyConfig):
            return self.config
        return load_config(self.config, self.overrides)

    def open(self) -> optuna.Study:
        """Open (or create) the study; refuse one created with other settings."""
        cfg = self.cfg
        storage = open_storage(cfg.storage_url, heartbeat=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                study_name=cfg.name, storage=storage,
                sampler=_SAMPLERS[cfg.search.sampler](cfg.sampler_seed),
                directions=[objective_direction(o) for o in cfg.search.objectives],
                load_if_exists=True)
            record, fp = StudyRecord(study), cfg.fingerprint()
            if record.fingerprint is None:
                record.set_fingerprint(fp)
                study.set_metric_names(list(cfg.search.objectives))
        if record.fingerprint != fp:
            diff = sorted(k for k in set(fp) | set(record.fingerprint)
                          if fp.get(k) != record.fingerprint.get(k))
            raise ConfigError(
                f"Study {cfg.name!r} in {cfg.storage_url} was created with other settings "
                f"({', '.join(diff)} differ); its finished trials are kept. Use a new name "
                f"(--set name=NEW) or another storage to search with these settings.")
        self.study_, self.record_ = study, record
        return study

    def plan(self, ws: Workspace) -> SearchSpace:
        """The search space on the untrained structure, every setting checked before any
        training (see :func:`autoprune.search.plan.plan_space`)."""
        return plan_space(self.cfg, ws, getattr(self, "record_", None))

    def workspace(self) -> Workspace:
        """The study's data, baseline and caches: the workspace :meth:`run` or :meth:`load`
        opened, or a new one (opening trains nothing; the baseline is trained or read from
        the cache when first asked for)."""
        if getattr(self, "ws_", None) is None:
            self.ws_ = Workspace(self.cfg, device=self.device, progress=self.progress)
        return self.ws_

    def search_space(self) -> SearchSpace:
        """The space this study searches, bound to its baseline and its scan: the one
        :meth:`run` builds; otherwise built here from the caches (a study opened with
        :meth:`load` uses its recorded latency calibration; one neither run nor loaded,
        for example to draw or screen policies, calibrates anew and trains the baseline and
        runs the scan if they are not cached)."""
        if getattr(self, "space_", None) is None:
            ws = self.workspace()
            self.space_ = _bind(self.plan(ws), ws, ws.scan(get_mode(self.cfg.search.mode).scan))
        return self.space_

    def _prepare(self, *, coordinator: bool) -> optuna.Study:
        """Open the study, recover dead workers' trials, check every setting on the untrained
        structure, then build the baseline, the dense reference, the scan, the space and the
        scorer (the coordinator also queues the warm-start baselines, once)."""
        cfg = self.cfg
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.ws_ = None  # a new one for each run
        ws = self.workspace()
        study = self.open()
        record = self.record_
        recover_dead_trials(study, one_process=cfg.storage_url.startswith("sqlite"))
        planned = self.plan(ws)
        mode = get_mode(cfg.search.mode).scan
        if not coordinator:
            artifacts.fetch(study, ws, mode)
        baseline_hash = artifacts.check_baseline(study, ws)
        if record.dense is None:
            if not coordinator:
                raise StudyStateError(f"Study {cfg.name!r} has not been started: run "
                                      f"'autoprune search {cfg.source or cfg.name}' first.")
            record.set_dense(ws.measure_dense())
        scan = ws.scan(mode)
        if coordinator:
            artifacts.publish(study, ws, mode, baseline_hash)
        self.space_ = _bind(planned, ws, scan)
        self.scorer_ = ProxyScorer(ws, record.dense.latency_ms)
        if coordinator and cfg.search.warm_start:
            present = record.baselines_present()
            for level in reversed(cfg.search.levels):  # the full budget first
                for name in self.space_.baseline_names():
                    if (name, round(level, 6)) not in present:
                        record.enqueue_baseline(name, level)
        if coordinator and cfg.search.screen:
            self._enqueue_screened()
        return study

    def _enqueue_screened(self) -> None:
        """Queue the best-estimated of ``search.screen`` draws at each level (climbed by
        ``search.screen_climb`` steps), once."""
        s, record = self.cfg.search, self.record_
        done = record.screened_levels()
        todo = tuple(lv for lv in reversed(s.screen_at)  # full budget first
                     if round(lv, 6) not in done)
        if not todo:
            return
        for _, params, est in screen(self.space_, todo, s.screen, seed=self.cfg.sampler_seed,
                                     sweep=s.sweep, climb=s.screen_climb):
            record.enqueue_screened(params, est, s.screen, s.screen_climb)

    def run(self, workers: int = 1) -> PruneSearch:
        """Run (or continue) the study, confirm the front, and fill the result attributes.

        Args:
            workers: Processes running trials on this machine (several need a journal or
                server storage; see :mod:`autoprune.search.workers`).
        """
        cfg = self.cfg
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}.")
        if workers > 1 and cfg.storage_url.startswith("sqlite"):
            raise ConfigError(f"--workers {workers} needs a storage several processes can share "
                              f"(SQLite takes one): use --storage {cfg.journal_url} or a "
                              f"PostgreSQL URL.")
        study = self._prepare(coordinator=True)
        if workers > 1:
            codes = launch_workers(cfg, workers, device=self.device)
            if any(codes):
                raise StudyStateError(f"Worker processes exited with codes {codes}; the "
                                      f"finished trials are kept, re-run to continue.")
        else:
            self._optimize(study)
        if self.space_.scan is not None:  # trials scored before trials kept their estimate
            self.record_.backfill_estimates(self.space_.estimate)
        self.confirm()
        self._collect()
        out = cfg.run_dir
        out.mkdir(parents=True, exist_ok=True)
        self.pareto_.to_csv(out / "pareto.csv", index=False)
        self.results_.to_csv(out / "trials.csv", index=False)
        return self

    def work(self, threads: int | None = None) -> None:
        """Run trials of a study a coordinator started, until it has ``search.trials``; no
        warm start, no confirmation (``autoprune worker``)."""
        if self.cfg.storage_url.startswith("sqlite"):
            raise ConfigError("A worker needs a storage several processes can share (SQLite "
                              "takes one): use journal:FILE or a PostgreSQL URL.")
        if threads:
            torch.set_num_threads(threads)
        self._optimize(self._prepare(coordinator=False))

    def _optimize(self, study: optuna.Study) -> None:
        optimize(study, self._objective(), self.cfg, progress=self.progress)

    def _objective(self) -> Objective:
        cfg, lat = self.cfg, self.cfg.latency
        refit = (lat.refit, lat.refit_margin, lat.refit_grow) if cfg.refits_latency() else None
        return Objective(self.space_, self.scorer_, cfg.budget, self.record_.dense,
                         cfg.search.objectives, cfg.search.prefilter, refit)

    def heuristic_policy(self, name: str, level: float = 1.0) -> Policy:
        """The policy a trial enqueued for heuristic ``name`` at ``level`` x the budget
        scores, latency refit included (timed here, as the trial's objective builds it)."""
        return self._objective().build(name, level)[0]

    def confirm(self) -> pd.DataFrame:
        """Promote the best trials of each level through ``proxy.rungs`` (see
        :mod:`autoprune.search.promotion`), then re-score the front's candidates with fresh
        seeds (see :mod:`autoprune.search.confirmation`); returns the confirmed rows."""
        p = self.cfg.proxy
        if p.rungs:
            promotion.promote(self.record_, self.scorer_, p.rungs, p.promote,
                              self.cfg.search.levels, heuristics=p.confirm_heuristics,
                              progress=self.progress)
        confirmation.confirm(self.record_, self.scorer_, self.cfg.proxy,
                             self.cfg.search.objectives, self.cfg.search.levels,
                             progress=self.progress)
        res = self.record_.results()
        return res[res["confirmed_acc"].notna()].reset_index(drop=True)

    def _collect(self) -> None:
        res = self.record_.results()
        self.results_ = res.assign(pick_score=selection.pick_scores(res, self.fuses_estimate))
        self.pareto_ = selection.front(self.results_, self.cfg.search.objectives)

    @property
    def fuses_estimate(self) -> bool:
        """Whether the study's picks are to rank by estimate+confirmed (``proxy.pick_by``)."""
        return fuses_estimate(self.cfg.proxy.pick_by, self.cfg.search.mode)

    @property
    def pick_rule(self) -> str:
        """What the picks rank by: ``estimate+confirmed``, or ``confirmed`` (also where the
        fusion fell back, a confirmed trial having no estimate)."""
        fused = self.fuses_estimate and selection.fuses(self.results_)
        return "estimate+confirmed" if fused else "confirmed"

    def pick_rule_text(self) -> str:
        """One phrase for reports: how the study picks among confirmed trials."""
        if self.pick_rule == "confirmed":
            why = (" (estimate+confirmed was asked for, but a confirmed trial has no scan "
                   "estimate: run the search again to record them)"
                   if self.fuses_estimate else "")
            return f"the better confirmed accuracy{why}"
        return ("the better score of confirmed accuracy plus the scan's additive estimate, "
                "each standardised over the study's confirmed trials (proxy.pick_by)")

    def pick_trial(self, pick: str = "best", *, max_drop: float | None = None,
                   max_size_mib: float | None = None, max_latency_ms: float | None = None
                   ) -> int:
        """The trial number of a confirmed front point (see :func:`selection.pick`)."""
        if not hasattr(self, "pareto_"):
            raise RuntimeError("Call run() (or load()) first.")
        # the best is the best-scored of every confirmed feasible trial, as at the full
        # budget's level; with estimate+confirmed it need not be on the accuracy front
        points = self.results_[self.results_["pick_score"].notna()] if pick == "best" \
            else self.pareto_
        return selection.pick(points, pick, dense_acc=self.record_.dense.val_acc,
                              max_drop=max_drop, max_size_mib=max_size_mib,
                              max_latency_ms=max_latency_ms)

    def best(self, pick: str = "best", *, max_drop: float | None = None,
             max_size_mib: float | None = None, max_latency_ms: float | None = None) -> Policy:
        """A policy from the confirmed trials.

        Args:
            pick: ``best`` (the best pick score of every confirmed feasible trial: the
                confirmed accuracy, or in channel mode the confirmed accuracy plus the scan's
                estimate, see ``proxy.pick_by``), ``knee`` (largest accuracy per size
                lost, the front's knee) or ``smallest`` (smallest size within ``max_drop``
                points of the dense validation accuracy).
            max_drop, max_size_mib, max_latency_ms: Filters on the front.
        """
        n = self.pick_trial(pick, max_drop=max_drop, max_size_mib=max_size_mib,
                            max_latency_ms=max_latency_ms)
        return self.record_.trial(n).policy

    @classmethod
    def load(cls, config: StudyConfig | str | Path, *, overrides: list[str] | None = None,
             device: str | None = None, progress: bool = True) -> PruneSearch:
        """Open an existing study without running trials (writes nothing)."""
        self = cls(config, overrides=overrides, device=device, progress=progress)
        cfg = self.cfg
        missing = StudyStateError(f"No study named {cfg.name!r} in {cfg.storage_url}; run "
                                 f"'autoprune search {cfg.source or cfg.name}' first.")
        url = cfg.storage_url
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
            raise missing
        try:
            self.study_ = optuna.load_study(study_name=cfg.name, storage=open_storage(url))
        except KeyError:
            raise missing from None
        self.record_ = StudyRecord(self.study_)
        if self.record_.dense is None or self.record_.results().empty:
            raise StudyStateError(f"Study {cfg.name!r} has no completed trial yet; run "
                                 f"'autoprune search {cfg.source or cfg.name}' first.")
        self.workspace()
        self._collect()
        return self
