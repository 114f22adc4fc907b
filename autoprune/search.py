"""The study: an Optuna multi-objective search of per-layer pruning policies.

Example:
    >>> from autoprune import PruneSearch
    >>> search = PruneSearch("studies/demo.toml", overrides=["search.trials=10"])  # doctest: +SKIP
    >>> search.run()                                                             # doctest: +SKIP
    >>> search.pareto_                       # confirmed Pareto front, a DataFrame
    >>> policy = search.best(max_drop=1.0)   # the most accurate confirmed point
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from autoprune.config import StudyConfig, load_config
from autoprune.errors import AutopruneError
from autoprune.metrics import count_macs, count_params
from autoprune.models import build_model
from autoprune.objective import ProxyScorer
from autoprune.policy import Policy
from autoprune.sensitivity import AdditiveEstimator
from autoprune.space import Limits, SearchSpace
from autoprune.workspace import Workspace

__all__ = ["PruneSearch", "pareto_mask", "open_storage", "objective_names"]

_DIRECTIONS = {"accuracy": "maximize", "size": "minimize", "latency": "minimize",
               "macs": "minimize"}
_VALUE_KEY = {"accuracy": "accuracy", "size": "size_mib", "latency": "latency_ms",
              "macs": "macs"}
CONFIRM_SEED0 = 1000


def objective_names(cfg: StudyConfig) -> list[str]:
    return list(cfg.search.objectives)


def pareto_mask(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Non-dominated rows of ``values`` (n x k)."""
    v = np.where(np.array(maximize)[None, :], -values, values)  # all minimised
    n = len(v)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def open_storage(url: str):
    """An Optuna storage: ``sqlite:///...`` (one process), ``journal:PATH`` (several processes
    on one machine) or any RDB URL such as ``postgresql://user@host/db``."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.split(":", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as exc:  # noqa: BLE001 - every failure here is "cannot open storage"
        raise AutopruneError(f"Cannot open study storage {url!r}: "
                             f"{str(exc).splitlines()[0]}") from exc


def _engine_kwargs(url: str) -> dict:
    # fail fast on a locked SQLite file instead of hanging
    return {"connect_args": {"timeout": 5}} if url.startswith("sqlite") else {}


class PruneSearch:
    """Search per-layer pruning policies for a study.

    Args:
        config: A :class:`StudyConfig` or the path of a study TOML file.
        overrides: ``section.key=value`` overrides applied to a TOML file.
        device: ``cpu`` / ``cuda`` (default: CUDA when present).
        progress: Show progress bars.

    Attributes (after :meth:`run`):
        study_: The Optuna study.
        results_: Every finished trial, one row each.
        pareto_: The confirmed Pareto front of feasible trials.
    """

    def __init__(self, config: StudyConfig | str | Path, *, overrides: list[str] | None = None,
                 device: str | None = None, progress: bool = True) -> None:
        self.config = config
        self.overrides = overrides or []
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ setup

    @property
    def cfg(self) -> StudyConfig:
        if not isinstance(self.config, StudyConfig):
            self.config = load_config(self.config, self.overrides)
        return self.config

    def _fingerprint(self) -> dict:
        c = self.cfg
        return {"model": c.model.to_dict(), "data": repr(c.data), "recipe": c.recipe.to_dict(),
                "mode": c.search.mode, "objectives": list(c.search.objectives),
                "budget": c.budget.items(), "space": [c.search.space, c.search.prior,
                                                      c.search.perturbation, c.search.sweep,
                                                      c.search.floor, c.search.min_density],
                "proxy": [c.proxy.steps, c.proxy.lr, c.proxy.batch_size, c.proxy.val_limit,
                          c.proxy.recalibrate, c.proxy.seed],
                "latency": repr(c.latency)}

    def check_budget(self) -> float | None:
        """Structure-only feasibility check: runs before any training.

        Returns:
            For a latency budget, the structural MACs expected to meet it: latency is
            measured on uniformly channel-pruned copies (weights do not matter for speed), a
            line latency = a + b x MACs is fitted, and solved for the cap (with 3 % margin).
        """
        cfg = self.cfg
        ws = Workspace(cfg, device=self.device, progress=False)
        model = build_model(ws.model_spec)
        x = ws.example_input()
        limits = Limits.from_budget(cfg.budget, count_params(model),
                                    count_macs(model, ws.input_size))
        space = SearchSpace(model, x, cfg.search, limits)
        space.check_feasible()
        lat_cap = cfg.budget.latency_ms if cfg.budget.latency_ms else None
        if cfg.budget.latency is not None or lat_cap is not None:
            from autoprune.prune import channel_prune

            lo = cfg.search.min_density
            cost = space.channel_cost
            points = []
            for keep in (lo, 0.25, 0.5, 0.75):
                k = {g: max(lo, keep) for g in cost.ids}
                pruned = channel_prune(model, k, x)
                points.append((cost.macs(k), ws.measure_latency(pruned).median_ms))
            dense_ms = ws.measure_latency(model).median_ms
            points.append((count_macs(model, ws.input_size), dense_ms))
            fastest = points[0][1]
            if lat_cap is None:
                lat_cap = cfg.budget.latency * dense_ms
            if fastest > lat_cap:
                raise ValueError(
                    f"The latency budget is impossible: the smallest policy within the search "
                    f"bounds measures {fastest:.3f} ms (batch {cfg.latency.batch_size}, "
                    f"{cfg.latency.threads} threads, {cfg.latency.device}), above the cap of "
                    f"{lat_cap:.3f} ms.")
            macs, ms = np.array(points, dtype=float).T
            b, a = np.polyfit(macs, ms, 1)
            if b <= 0:
                return None
            return float(np.clip((0.97 * lat_cap - a) / b, macs.min(), macs.max()))
        return None

    def _open_study(self) -> optuna.Study:
        cfg = self.cfg
        storage = open_storage(cfg.storage_url)
        sampler = {
            "tpe": lambda: optuna.samplers.TPESampler(seed=cfg.seed, multivariate=True,
                                                      n_startup_trials=8),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=cfg.seed, population_size=12),
            "random": lambda: optuna.samplers.RandomSampler(seed=cfg.seed),
        }[cfg.search.sampler]()
        directions = [_DIRECTIONS[o] for o in objective_names(cfg)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=sampler,
                                        directions=directions, load_if_exists=True)
            fp = self._fingerprint()
            old = study.user_attrs.get("fingerprint")
            if old is None:
                study.set_user_attr("fingerprint", fp)
                study.set_metric_names(objective_names(cfg))
            elif old != fp:
                diff = sorted(k for k in set(fp) | set(old) if fp.get(k) != old.get(k))
                raise ValueError(
                    f"Study {cfg.name!r} in {cfg.storage_url} was created with other settings "
                    f"({', '.join(diff)} differ); its finished trials are kept. Use a new name "
                    f"(--set name=NEW) or another storage to search with these settings.")
        return study

    # ------------------------------------------------------------------ run

    def run(self) -> PruneSearch:
        """Run (or continue) the study, confirm the front, and fill the result attributes."""
        cfg = self.cfg
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        latency_macs = self.check_budget()
        ws = self.ws_ = Workspace(cfg, device=self.device, progress=self.progress)
        base = ws.baseline
        dense = ws.dense
        scan_mode = "fine" if cfg.search.mode == "fine" else "channel"
        scan = ws.scan(scan_mode)
        estimator = AdditiveEstimator(scan.table, scan.dense_acc)
        limits = Limits.from_budget(cfg.budget, count_params(base.model), dense["macs"],
                                    latency_macs=latency_macs)
        self.space_ = SearchSpace(base.model, ws.example_input(), cfg.search, limits,
                                  {scan_mode: estimator}, ws.model_spec.to_dict())
        self.space_.check_feasible()
        self.scorer_ = ProxyScorer(ws)
        study = self.study_ = self._open_study()
        study.set_user_attr("dense", dense)
        self._fail_stale_trials(study)
        if cfg.search.warm_start:
            self._enqueue_baselines(study)
        done = len([t for t in study.trials if t.state.is_finished()])
        remaining = max(0, cfg.search.trials - done)
        if remaining:
            bar = tqdm(total=remaining, desc=f"search {cfg.name}", unit="trial",
                       disable=not self.progress)

            def callback(st, _trial):
                bar.update(1)
                best = self._best_feasible_acc(st)
                if best is not None:
                    bar.set_postfix(best_feasible_acc=f"{best:.2f}")

            try:
                # the cap counts every process's trials, so workers sharing a journal or
                # PostgreSQL storage stop together at search.trials
                ts = optuna.trial.TrialState
                cap = optuna.study.MaxTrialsCallback(
                    cfg.search.trials, states=(ts.COMPLETE, ts.PRUNED, ts.FAIL, ts.RUNNING))
                study.optimize(self._objective, n_trials=remaining, timeout=cfg.search.timeout,
                               callbacks=[callback, cap], catch=())
            finally:
                bar.close()
        self.confirm()
        self._collect()
        return self

    def _fail_stale_trials(self, study: optuna.Study) -> None:
        """A killed run leaves RUNNING trials; with one-process SQLite they are dead."""
        if not self.cfg.storage_url.startswith("sqlite"):
            return
        for t in study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.RUNNING,)):
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)

    def _enqueue_baselines(self, study: optuna.Study) -> None:
        present = {t.user_attrs.get("baseline") for t in study.trials
                   if t.state in (optuna.trial.TrialState.COMPLETE,
                                  optuna.trial.TrialState.WAITING,
                                  optuna.trial.TrialState.RUNNING)}
        for name in self.space_.baseline_names():
            if name not in present:
                study.enqueue_trial({}, user_attrs={"baseline": name})

    def _constraints(self, size_mib: float, macs: int, latency_ms: float) -> dict[str, float]:
        b, dense = self.cfg.budget, self.ws_.dense
        c = {}
        if b.size is not None:
            c["size"] = size_mib / dense["size_mib"] - b.size
        if b.size_mib is not None:
            c["size_mib"] = size_mib - b.size_mib
        if b.macs is not None:
            c["macs"] = macs / dense["macs"] - b.macs
        if b.macs_abs is not None:
            c["macs_abs"] = (macs - b.macs_abs) / b.macs_abs
        if b.latency is not None:
            c["latency"] = latency_ms / dense["latency_ms"] - b.latency
        if b.latency_ms is not None:
            c["latency_ms"] = latency_ms - b.latency_ms
        return c

    def _objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        name = trial.user_attrs.get("baseline")
        policy = self.space_.baseline_policy(name) if name else self.space_.sample(trial)
        trial.set_user_attr("policy", policy.to_dict())
        prefilter = self.cfg.search.prefilter
        if prefilter > 0 and not name:
            est = self._estimate(policy)
            best = self._best_feasible_acc(trial.study)
            trial.set_user_attr("estimate", est)
            if best is not None and est < best - prefilter:
                space = self.space_
                size = space.fine_cost.size_mib(policy.sparsity) \
                    if policy.mode == "fine" else space.channel_cost.size_mib(policy.keep)
                for k, v in self._constraints(size, 0, 0.0).items():
                    trial.set_constraint(k, v)
                raise optuna.TrialPruned(f"additive estimate {est:.2f} < best {best:.2f} - "
                                         f"{prefilter}")
        score = self.scorer_.score(policy)
        for k, v in score.to_dict().items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("size_ratio", score.size_mib / self.ws_.dense["size_mib"])
        for k, v in self._constraints(score.size_mib, score.macs, score.latency_ms).items():
            trial.set_constraint(k, v)
        values = {"accuracy": score.accuracy, "size": score.size_mib,
                  "latency": score.latency_ms, "macs": float(score.macs)}
        return tuple(values[o] for o in objective_names(self.cfg))

    def _estimate(self, policy: Policy) -> float:
        est = self.space_.scans.get("fine" if policy.mode == "fine" else "channel")
        ratios = policy.sparsity if policy.mode == "fine" else {
            k: 1.0 - v for k, v in policy.keep.items()}
        return est.predict(ratios)

    @staticmethod
    def _feasible(t: optuna.trial.FrozenTrial) -> bool:
        return t.state == optuna.trial.TrialState.COMPLETE and bool(t.constraints) and all(
            v <= 0 for v in t.constraints.values())

    def _best_feasible_acc(self, study: optuna.Study) -> float | None:
        accs = [t.user_attrs["accuracy"] for t in study.get_trials(deepcopy=False)
                if self._feasible(t) and "accuracy" in t.user_attrs]
        return max(accs) if accs else None

    # ------------------------------------------------------------------ confirmation

    def _candidates(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        feas = [t for t in study.trials if self._feasible(t)]
        if not feas:
            return []
        objs = objective_names(self.cfg)
        vals = np.array([[t.user_attrs[_VALUE_KEY[o]] for o in objs] for t in feas], float)
        front = [t for t, k in zip(feas, pareto_mask(vals, [o == "accuracy" for o in objs]))
                 if k]
        chosen = _spread(front, self.cfg.proxy.confirm_top)
        searched = [t for t in feas if not t.user_attrs.get("baseline")]
        baselines = sorted((t for t in feas if t.user_attrs.get("baseline")),
                           key=lambda t: -t.user_attrs["accuracy"])
        if searched:
            chosen.append(max(searched, key=lambda t: t.user_attrs["accuracy"]))
        chosen += baselines[:2]
        seen, out = set(), []
        for t in chosen:
            if t.number not in seen:
                seen.add(t.number)
                out.append(t)
        return out

    def confirm(self) -> pd.DataFrame:
        """Re-score front candidates and the best baselines with fresh fine-tune seeds on
        validation images the search did not select on; stored in the study's user attrs."""
        p = self.cfg.proxy
        study = self.study_
        if p.confirm_seeds == 0 or p.confirm_val == 0:
            return pd.DataFrame()
        n_val = len(self.ws_.data.val)
        if p.val_limit >= n_val:
            raise ValueError(f"proxy.val_limit={p.val_limit} leaves no validation images for "
                             f"confirmation (the split has {n_val}).")
        todo = [t for t in self._candidates(study)
                if f"confirm:{t.number}" not in study.user_attrs]
        for t in tqdm(todo, desc="confirm", unit="trial", disable=not self.progress):
            policy = Policy.from_dict(t.user_attrs["policy"])
            accs = [self.scorer_.score(policy, seed=CONFIRM_SEED0 + j, val_start=p.val_limit,
                                       val_limit=p.confirm_val).accuracy
                    for j in range(p.confirm_seeds)]
            study.set_user_attr(f"confirm:{t.number}", {
                "accs": accs, "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "seeds": [CONFIRM_SEED0 + j for j in range(p.confirm_seeds)],
                "val_images": [p.val_limit, p.val_limit + p.confirm_val]})
        return self._confirmed_frame(study)

    def _confirmed_frame(self, study: optuna.Study) -> pd.DataFrame:
        rows = []
        for key, v in study.user_attrs.items():
            if key.startswith("confirm:"):
                rows.append({"trial": int(key.split(":")[1]), "confirmed_acc": v["mean"],
                             "confirmed_std": v["std"], "confirmed_n": len(v["accs"])})
        return pd.DataFrame(rows, columns=["trial", "confirmed_acc", "confirmed_std",
                                           "confirmed_n"])

    # ------------------------------------------------------------------ results

    def _collect(self) -> None:
        study = self.study_
        rows = []
        dense = study.user_attrs.get("dense", {})
        for t in study.trials:
            if t.state != optuna.trial.TrialState.COMPLETE:
                continue
            a = t.user_attrs
            pol = a["policy"]
            rows.append({
                "trial": t.number,
                "baseline": a.get("baseline") or "",
                "feasible": self._feasible(t),
                "proxy_acc": a["accuracy"],
                "size_mib": a["size_mib"],
                "size_ratio": a["size_mib"] / dense["size_mib"] if dense else math.nan,
                "params": a["params"],
                "macs": a["macs"],
                "latency_ms": a["latency_ms"],
                "seconds": a["seconds"],
                "policy": json.dumps({"sparsity": pol["sparsity"], "keep": pol["keep"]}),
            })
        res = pd.DataFrame(rows)
        conf = self._confirmed_frame(study)
        if len(res):
            res = res.merge(conf, on="trial", how="left")
        self.results_ = res
        self.pareto_ = self._front(res)
        self.proxy_pareto_ = self._front(res, column="proxy_acc")
        out = self.cfg.run_dir
        out.mkdir(parents=True, exist_ok=True)
        self.pareto_.to_csv(out / "pareto.csv", index=False)
        res.to_csv(out / "trials.csv", index=False)

    def _front(self, res: pd.DataFrame, column: str = "confirmed_acc") -> pd.DataFrame:
        if res.empty or column not in res:
            return pd.DataFrame(columns=list(res.columns))
        cand = res[res["feasible"] & res[column].notna()].reset_index(drop=True)
        if cand.empty:
            return cand
        objs = objective_names(self.cfg)
        cols = [column if o == "accuracy" else _VALUE_KEY[o] for o in objs]
        mask = pareto_mask(cand[cols].to_numpy(float), [o == "accuracy" for o in objs])
        return cand[mask].sort_values("size_mib").reset_index(drop=True)

    def best(self, pick: str = "best", *, max_drop: float | None = None,
             max_size_mib: float | None = None, max_latency_ms: float | None = None) -> Policy:
        """A policy from the confirmed front.

        Args:
            pick: ``best`` (highest confirmed accuracy), ``knee`` (largest accuracy per size
                lost, the front's knee) or ``smallest`` (smallest size within ``max_drop``
                points of the dense validation accuracy).
            max_drop, max_size_mib, max_latency_ms: Filters on the front.
        """
        return Policy.from_dict(self._pick_trial(pick, max_drop, max_size_mib,
                                                 max_latency_ms).user_attrs["policy"])

    def _pick_trial(self, pick, max_drop=None, max_size_mib=None, max_latency_ms=None):
        if not hasattr(self, "pareto_"):
            raise RuntimeError("Call run() (or load()) first.")
        front = self.pareto_
        if front.empty:
            raise ValueError("The study has no confirmed feasible trial yet; run more trials "
                             "or loosen the budget.")
        if max_size_mib is not None:
            front = front[front["size_mib"] <= max_size_mib]
        if max_latency_ms is not None:
            front = front[front["latency_ms"] <= max_latency_ms]
        dense_acc = self.study_.user_attrs["dense"]["val_acc"]
        if max_drop is not None:
            front = front[front["confirmed_acc"] >= dense_acc - max_drop]
        if front.empty:
            raise ValueError(f"No confirmed front point meets the filters (max_drop="
                             f"{max_drop}, max_size_mib={max_size_mib}, max_latency_ms="
                             f"{max_latency_ms}).")
        if pick == "best":
            row = front.loc[front["confirmed_acc"].idxmax()]
        elif pick == "smallest":
            row = front.loc[front["size_mib"].idxmin()]
        elif pick == "knee":
            row = front.loc[_knee(front)]
        else:
            raise ValueError(f"pick must be 'best', 'knee' or 'smallest', got {pick!r}.")
        return self.study_.trials[int(row["trial"])]

    @classmethod
    def load(cls, config: StudyConfig | str | Path, *, overrides: list[str] | None = None,
             device: str | None = None, progress: bool = True) -> PruneSearch:
        """Open a finished (or partial) study without running trials."""
        self = cls(config, overrides=overrides, device=device, progress=progress)
        cfg = self.cfg
        storage = open_storage(cfg.storage_url)
        try:
            self.study_ = optuna.load_study(study_name=cfg.name, storage=storage)
        except KeyError:
            raise ValueError(f"No study named {cfg.name!r} in {cfg.storage_url}; run "
                             f"'autoprune search {cfg.source or cfg.name}' first.") from None
        self.ws_ = Workspace(cfg, device=device, progress=progress)
        self.scorer_ = ProxyScorer(self.ws_)
        self._collect()
        return self


def _spread(front: list, k: int) -> list:
    """Up to ``k`` proxy-front trials: the most accurate, then evenly spread over size, so the
    confirmed front covers the whole sweep rather than one corner of it."""
    if k <= 0 or not front:
        return []
    by_size = sorted(front, key=lambda t: t.user_attrs["size_mib"])
    best = max(front, key=lambda t: t.user_attrs["accuracy"])
    picks = [best]
    for i in np.linspace(0, len(by_size) - 1, num=min(k, len(by_size))):
        t = by_size[int(round(i))]
        if len(picks) < k and t not in picks:
            picks.append(t)
    return picks


def _knee(front: pd.DataFrame):
    """The front point farthest from the line joining its extremes (accuracy vs log size)."""
    if len(front) <= 2:
        return front["confirmed_acc"].idxmax()
    x = np.log(front["size_mib"].to_numpy(float))
    y = front["confirmed_acc"].to_numpy(float)
    xn = (x - x.min()) / max(np.ptp(x), 1e-12)
    yn = (y - y.min()) / max(np.ptp(y), 1e-12)
    i, j = int(np.argmin(xn)), int(np.argmax(xn))
    dx, dy = xn[j] - xn[i], yn[j] - yn[i]
    dist = np.abs(dy * (xn - xn[i]) - dx * (yn - yn[i])) / max(math.hypot(dx, dy), 1e-12)
    return front.index[int(np.argmax(dist))]

