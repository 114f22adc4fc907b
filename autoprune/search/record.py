"""The study's state kept in Optuna user attributes, read and written through typed classes.

Study-level: the dense reference every ratio budget divides by, the settings fingerprint, each
confirmed trial's re-scoring (:class:`Confirmation`) and each finalized point
(:class:`FinalPoint`, plus :class:`FinalDense`). Trial-level: the policy, the proxy score, the
baseline name. No other module uses the attribute keys.

Example:
    >>> record = StudyRecord(study)                                   # doctest: +SKIP
    >>> record.set_confirmation(7, Confirmation([92.1, 92.3], [1000, 1001], (2000, 5000)))
    >>> record.confirmations()[7].mean                                # doctest: +SKIP
    92.2
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import optuna
import pandas as pd

from autoprune.engine.policy import Policy
from autoprune.errors import ConfigError
from autoprune.search.budget import KINDS

__all__ = ["DenseReference", "Confirmation", "FinalDense", "FinalPoint", "StudyRecord",
           "TrialView", "RESULT_COLUMNS"]

_DENSE = "dense"
_FINGERPRINT = "fingerprint"
_CONFIRM = "confirm:"
_RUNG = "rung:"
_FINAL = "final:"
_FINAL_DENSE = "final:dense"
_BASELINE = "baseline"
_LEVEL = "level"
_SCREEN = "screen"
_POLICY = "policy"
_ESTIMATE = "estimate"
_ESTIMATES = "estimates"  # study level: trial -> estimate, for trials scored before it was kept
_REFIT = "latency_refit"
_REFIT_PASSED = "latency_refit_passed"
_REFIT_REUSED = "latency_from_refit"
_WORKER = "worker"
_LATENCY_CAP = "latency_cap"


class _Record:
    """Dataclass <-> plain dict; unknown keys are ignored so older studies still load."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class DenseReference(_Record):
    """The dense model measured once per study: what ratio budgets divide by."""

    size_mib: float
    macs: int
    latency_ms: float
    latency_iqr_ms: float
    val_acc: float
    test_acc: float


@dataclass(frozen=True)
class Confirmation(_Record):
    """A trial re-scored with fresh fine-tune seeds on held-out validation images."""

    accs: list[float]
    seeds: list[int]
    val_images: tuple[int, int] | list[int]
    seconds: float = math.nan
    mean: float = field(default=math.nan)
    std: float = field(default=math.nan)

    def __post_init__(self) -> None:
        object.__setattr__(self, "val_images", list(self.val_images))
        object.__setattr__(self, "mean", statistics.fmean(self.accs))
        object.__setattr__(self, "std", statistics.stdev(self.accs)
                           if len(self.accs) > 1 else 0.0)


@dataclass(frozen=True)
class FinalDense(_Record):
    """The dense model as finalize measured it (TEST split, latency in the same run)."""

    test_acc: float
    val_acc: float
    size_mib: float
    macs: int
    latency_ms: float
    latency_iqr_ms: float
    latency_setup: str


@dataclass(frozen=True)
class FinalPoint(_Record):
    """One finalized trial: full fine-tune, TEST accuracy, measured latency."""

    trial: int
    baseline: str
    test_acc_before_ft: float | None
    test_acc: float
    size_mib: float
    params: int
    macs: int
    latency_ms: float
    latency_iqr_ms: float
    speedup: float
    epochs: int
    seconds: float
    checkpoint: str


RESULT_COLUMNS = ["trial", "baseline", "level", "feasible", "proxy_acc", "size_mib",
                  "size_ratio", "params", "macs", "latency_ms", "seconds", "policy",
                  "confirmed_acc", "confirmed_std", "confirmed_n", "rung_steps", "rung_acc",
                  "estimate"]


class TrialView:
    """Typed access to one trial's attributes (frozen trials) and the writes of a live one."""

    def __init__(self, trial: optuna.trial.FrozenTrial | optuna.Trial) -> None:
        self.trial = trial

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def baseline(self) -> str:
        """The warm-start heuristic's name, or ``""`` for a searched trial."""
        return self.trial.user_attrs.get(_BASELINE) or ""

    @property
    def level(self) -> float:
        """The fraction of the budget the trial was built for: a baseline's ladder level, a
        searched trial's sampled sweep target (1 without the sweep)."""
        attrs, params = self.trial.user_attrs, self.trial.params
        return float(attrs.get(_LEVEL, params.get("target", 1.0)))

    @property
    def has_policy(self) -> bool:
        return _POLICY in self.trial.user_attrs

    @property
    def policy(self) -> Policy:
        return Policy.from_dict(self.trial.user_attrs[_POLICY])

    @property
    def accuracy(self) -> float | None:
        return self.trial.user_attrs.get("accuracy")

    def value(self, key: str) -> float:
        """A measured value of the proxy score (``size_mib``, ``macs``, ``latency_ms``...)."""
        return self.trial.user_attrs[key]

    @property
    def worker(self) -> dict | None:
        """``{"host", "pid"}`` of the process that ran (or runs) the trial."""
        return self.trial.user_attrs.get(_WORKER)

    @property
    def estimate(self) -> float | None:
        return self.trial.user_attrs.get(_ESTIMATE)

    @property
    def feasible(self) -> bool:
        """Complete, with constraints set, and every constraint met."""
        t = self.trial
        return (t.state == optuna.trial.TrialState.COMPLETE and bool(t.constraints)
                and all(v <= 0 for v in t.constraints.values()))

    # live trials
    def set_worker(self, host: str, pid: int) -> None:
        self.trial.set_user_attr(_WORKER, {"host": host, "pid": pid})

    def set_policy(self, policy: Policy) -> None:
        self.trial.set_user_attr(_POLICY, policy.to_dict())

    @property
    def refit(self) -> list[dict[str, float]]:
        """The latency refit's measurements of the trial's structure before fine-tuning
        (``[{"scale", "ms"}]``, first the trial as proposed; empty when none ran)."""
        return self.trial.user_attrs.get(_REFIT, [])

    @property
    def refit_reused(self) -> bool:
        """Whether the trial's latency is the refit's last measurement (studies made before
        that change timed the trial again after fine-tuning)."""
        return bool(self.trial.user_attrs.get(_REFIT_REUSED))

    def set_refit(self, steps: list[dict[str, float]], passed: bool) -> None:
        """Record the refit's measurements, whether the structure it kept met its target,
        and that the trial's latency is that structure's measurement (the last one, unless
        ``latency.refit_grow`` grew a structure past the target and went back)."""
        self.trial.set_user_attr(_REFIT, steps)
        self.trial.set_user_attr(_REFIT_PASSED, passed)
        self.trial.set_user_attr(_REFIT_REUSED, True)

    def set_estimate(self, estimate: float) -> None:
        self.trial.set_user_attr(_ESTIMATE, estimate)

    def set_score(self, score: dict[str, Any]) -> None:
        for k, v in score.items():
            self.trial.set_user_attr(k, v)


class StudyRecord:
    """Reads and writes a study's autoprune state.

    Args:
        study: The Optuna study.
    """

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    # ------------------------------------------------------------------ study level

    @property
    def dense(self) -> DenseReference | None:
        d = self.study.user_attrs.get(_DENSE)
        return DenseReference.from_dict(d) if d else None

    def set_dense(self, ref: DenseReference) -> None:
        self.study.set_user_attr(_DENSE, ref.to_dict())

    @property
    def latency_cap(self) -> dict | None:
        """The latency calibration's result (``{"structural_macs"}``), once per study."""
        return self.study.user_attrs.get(_LATENCY_CAP)

    @property
    def latency_macs(self) -> float | None:
        """The MACs (of the channel-pruned structure) the study's latency budget allows, as its
        calibration measured them; ``None`` before or without one, or where it found no cap."""
        return (self.latency_cap or {}).get("structural_macs")

    def set_latency_cap(self, cap: dict) -> None:
        self.study.set_user_attr(_LATENCY_CAP, cap)

    @property
    def fingerprint(self) -> dict | None:
        return self.study.user_attrs.get(_FINGERPRINT)

    def set_fingerprint(self, fp: dict) -> None:
        self.study.set_user_attr(_FINGERPRINT, fp)

    def confirmations(self) -> dict[int, Confirmation]:
        return {int(k[len(_CONFIRM):]): Confirmation.from_dict(v)
                for k, v in self.study.user_attrs.items() if k.startswith(_CONFIRM)}

    def set_confirmation(self, trial: int, c: Confirmation) -> None:
        self.study.set_user_attr(f"{_CONFIRM}{trial}", c.to_dict())

    def rungs(self) -> dict[int, dict[int, float]]:
        """Trial -> {fine-tune steps: validation accuracy} of its promotions
        (:mod:`autoprune.search.promotion`)."""
        return {int(k[len(_RUNG):]): {int(s): a for s, a in v.items()}
                for k, v in self.study.user_attrs.items() if k.startswith(_RUNG)}

    def backfill_estimates(self, estimate) -> int:
        """Record the scan's additive estimate (``estimate(policy)``) of every complete trial
        that lacks one (scored before trials kept it); returns how many were added."""
        known = {int(k): v for k, v in self.study.user_attrs.get(_ESTIMATES, {}).items()}
        added = {v.number: estimate(v.policy)
                 for v in self.views((optuna.trial.TrialState.COMPLETE,))
                 if v.has_policy and v.estimate is None and v.number not in known}
        added = {n: e for n, e in added.items() if e is not None}
        if added:
            self.study.set_user_attr(_ESTIMATES, {str(n): e for n, e in
                                                  {**known, **added}.items()})
        return len(added)

    def set_rung(self, trial: int, steps: int, accuracy: float) -> None:
        done = self.study.user_attrs.get(f"{_RUNG}{trial}", {})
        self.study.set_user_attr(f"{_RUNG}{trial}", {**done, str(steps): accuracy})

    def finals(self) -> dict[int, FinalPoint]:
        return {int(k[len(_FINAL):]): FinalPoint.from_dict(v)
                for k, v in self.study.user_attrs.items()
                if k.startswith(_FINAL) and k != _FINAL_DENSE}

    def set_final(self, p: FinalPoint) -> None:
        self.study.set_user_attr(f"{_FINAL}{p.trial}", p.to_dict())

    @property
    def final_dense(self) -> FinalDense | None:
        d = self.study.user_attrs.get(_FINAL_DENSE)
        return FinalDense.from_dict(d) if d else None

    def set_final_dense(self, d: FinalDense) -> None:
        self.study.set_user_attr(_FINAL_DENSE, d.to_dict())

    # ------------------------------------------------------------------ trials

    def trial(self, number: int) -> TrialView:
        """A trial that holds a policy; ValueError naming the ones that do otherwise."""
        trials = self.study.get_trials(deepcopy=False)
        if not 0 <= number < len(trials) or not TrialView(trials[number]).has_policy:
            known = [t.number for t in trials if TrialView(t).has_policy]
            raise ConfigError(f"Trial {number} has no policy in study "
                              f"{self.study.study_name!r} (trials with one: {known}).")
        return TrialView(trials[number])

    def views(self, states: tuple[optuna.trial.TrialState, ...] | None = None
              ) -> list[TrialView]:
        return [TrialView(t) for t in self.study.get_trials(deepcopy=False, states=states)]

    def refit_summary(self) -> dict[str, int] | None:
        """What the latency refit did over the complete trials (``None``: it never ran):
        ``trials`` timed before fine-tuning, ``refitted`` projected again, ``passed`` whose
        last structure met the refit's target, ``passed_met``: of those, the ones whose
        recorded latency met every latency budget, and ``reused``: trials whose recorded
        latency is the refit's last measurement (studies made before that change timed the
        trial again after fine-tuning)."""
        ts = optuna.trial.TrialState
        views = [v for v in self.views((ts.COMPLETE,)) if v.refit]
        if not views:
            return None
        passed = [v for v in views if v.trial.user_attrs.get(_REFIT_PASSED)]
        latency = [k for k in KINDS if KINDS[k].axis == "latency"]
        met = [v for v in passed
               if all(c <= 0 for k, c in v.trial.constraints.items() if k in latency)]
        return {"trials": len(views), "refitted": sum(len(v.refit) > 1 for v in views),
                "passed": len(passed), "passed_met": len(met),
                "reused": sum(v.refit_reused for v in views)}

    def baselines_present(self) -> set[tuple[str, float]]:
        """``(name, level)`` of the baselines already complete, queued or running (never
        enqueue them twice)."""
        ts = optuna.trial.TrialState
        return {(v.baseline, round(v.level, 6))
                for v in self.views((ts.COMPLETE, ts.WAITING, ts.RUNNING)) if v.baseline}

    def enqueue_baseline(self, name: str, level: float = 1.0) -> None:
        """Queue heuristic ``name`` at ``level`` x the budget."""
        attrs = {_BASELINE: name} if level == 1.0 else {_BASELINE: name, _LEVEL: level}
        self.study.enqueue_trial({}, user_attrs=attrs)

    def screened_levels(self) -> set[float]:
        """Levels a screened trial is already complete, queued or running at."""
        ts = optuna.trial.TrialState
        return {round(v.level, 6) for v in self.views((ts.COMPLETE, ts.WAITING, ts.RUNNING))
                if _SCREEN in v.trial.user_attrs}

    def screened_trials(self) -> set[int]:
        """Numbers of the complete screened trials."""
        return {v.number for v in self.views((optuna.trial.TrialState.COMPLETE,))
                if _SCREEN in v.trial.user_attrs}

    def enqueue_screened(self, params: dict[str, float], estimate: float, draws: int,
                         climb: int = 0) -> None:
        """Queue a searched trial with fixed ``params``: the best of ``draws`` policies by the
        scan's additive ``estimate``, climbed ``climb`` steps (see
        :mod:`autoprune.search.screening`)."""
        info = {"estimate": estimate, "draws": draws, **({"climb": climb} if climb else {})}
        self.study.enqueue_trial(params, user_attrs={_SCREEN: info})

    def retry(self, view: TrialView) -> None:
        """Queue a failed trial again with the same parameters (and baseline name, level,
        screening)."""
        attrs = {_BASELINE: view.baseline} if view.baseline else {}
        for key in (_LEVEL, _SCREEN):
            if key in view.trial.user_attrs:
                attrs[key] = view.trial.user_attrs[key]
        self.study.enqueue_trial(dict(view.trial.params), user_attrs={**attrs,
                                                                      "retry_of": view.number})

    def best_feasible_accuracy(self) -> float | None:
        accs = [v.accuracy for v in self.views() if v.feasible and v.accuracy is not None]
        return max(accs) if accs else None

    def results(self) -> pd.DataFrame:
        """Every completed trial, one row each, with its confirmation where there is one."""
        dense = self.dense
        conf = self.confirmations()
        rungs = self.rungs()
        backfilled = {int(k): v for k, v in self.study.user_attrs.get(_ESTIMATES, {}).items()}
        rows = []
        for v in self.views((optuna.trial.TrialState.COMPLETE,)):
            pol = v.trial.user_attrs[_POLICY]
            c = conf.get(v.number)
            top = max(rungs.get(v.number, {}).items(), default=None)
            rows.append({
                "trial": v.number,
                "baseline": v.baseline,
                "level": v.level,
                "feasible": v.feasible,
                "proxy_acc": v.accuracy,
                "size_mib": v.value("size_mib"),
                "size_ratio": v.value("size_mib") / dense.size_mib if dense else math.nan,
                "params": v.value("params"),
                "macs": v.value("macs"),
                "latency_ms": v.value("latency_ms"),
                "seconds": v.value("seconds"),
                "policy": json.dumps({"sparsity": pol["sparsity"], "keep": pol["keep"]}),
                "confirmed_acc": c.mean if c else math.nan,
                "confirmed_std": c.std if c else math.nan,
                "confirmed_n": len(c.accs) if c else math.nan,
                "rung_steps": top[0] if top else math.nan,
                "rung_acc": top[1] if top else math.nan,
                "estimate": _or_nan(v.estimate if v.estimate is not None
                                    else backfilled.get(v.number)),
            })
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
