"""``autoprune bench STUDY``: does the search earn its keep on this study?

Every heuristic of the study's mode on a ladder of budget levels and the searched front, all
given the same fine-tune (the study's finalize, sizeable with ``finalize.steps``) and scored on
the TEST split with several seeds; fronts compared with fronts; the proxy's rank fidelity at
one budget; measured speedups against dense in the same run; what each stage cost. Every
evaluation is cached, so a killed run continues where it stopped, and a finalized point is
shared by every study that differs only in settings its fine-tune does not read (the proxy's
steps, confirmation, rungs, picks, the search itself): comparing such variants re-runs only
their searched points.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from autoprune.engine.metrics import alternate
from autoprune.engine.policy import Policy, get_mode
from autoprune.errors import ConfigError
from autoprune.search import PruneSearch
from autoprune.search.budget import Budget
from autoprune.search.confirmation import CONFIRM_SEED0, confirm_scoring
from autoprune.search.record import TrialView
from autoprune.search.selection import standardised_sum
from autoprune.workflow.bench import fronts
from autoprune.workflow.bench.evaluate import Evaluator
from autoprune.workflow.bench.ranks import kendall_tau, spearman_rho, tau_ceiling

__all__ = ["BenchSettings", "run_bench", "rewrite_bench", "level_axes", "level_limits",
           "latency_macs_cap", "QUICK", "RANK_OPTIONS", "MIN_RANK_POLICIES"]

# the rank-fidelity variants: BenchSettings field (its option: --rank-steps ...) -> its unit
RANK_OPTIONS = {"rank_steps": "fine-tune steps", "rank_images": "validation images",
                "rank_proxy_seeds": "seeds"}

# the issue's levels, and deeper ones for tight budgets where no front reaches dense -2 pp
ACC_DROPS = (0.5, 1.0, 2.0, 3.0, 5.0)

# the issue's floor for a rank-fidelity check worth reading (default number of policies)
MIN_RANK_POLICIES = 20


@dataclass(frozen=True)
class BenchSettings:
    """How much to evaluate.

    Args:
        levels: Budget levels as fractions of the study's budget (default: 5 levels spanning
            the search's sweep, from ``search.floor`` to 1).
        seeds: Fine-tune seeds of every finalized point.
        rank_policies: Policies of the rank-fidelity check (heuristics + space draws).
        rank_seed: Sampler seed of the rank-fidelity draws.
        latency_repeats: Interleaved dense / point latency measurements per batch size.
        latency_batches: Batch sizes of the latency check.
        min_run_time: Seconds per latency measurement.
        rank_steps: Further proxy fine-tune lengths (steps) scored on the rank-fidelity
            policies, each with its own τ: does a longer (or shorter) proxy rank better?
        rank_images: Further numbers of validation images (the first N) scored likewise.
        rank_proxy_seeds: Further fine-tune seeds the proxy and every variant are scored
            with again, each with its own τ: does a τ survive a fresh seed?
    """

    levels: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = (2000, 2001, 2002)
    rank_policies: int = MIN_RANK_POLICIES
    rank_seed: int = 0
    latency_repeats: int = 3
    latency_batches: tuple[int, ...] = (1, 64)
    min_run_time: float = 0.3
    rank_steps: tuple[int, ...] = ()
    rank_images: tuple[int, ...] = ()
    rank_proxy_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.levels is not None and (not self.levels
                                        or any(not 0 < v <= 1 for v in self.levels)):
            raise ConfigError(f"bench levels must be fractions of the budget in (0, 1], got "
                              f"{list(self.levels)}.")
        if len(self.seeds) < 2:
            raise ConfigError(f"bench needs at least 2 seeds for a mean ± std, got "
                              f"{list(self.seeds)}.")
        if self.rank_policies < 4 or self.latency_repeats < 1 or not self.latency_batches:
            raise ConfigError(f"bench needs rank_policies >= 4, latency_repeats >= 1 and a "
                              f"batch size, got {self.rank_policies}, {self.latency_repeats}, "
                              f"{list(self.latency_batches)}.")
        if self.rank_seed < 0:
            raise ConfigError(f"bench rank seed must be a whole number >= 0, got "
                              f"{self.rank_seed}.")
        for name, of, least in (("rank_steps", " of fine-tune steps", 0),
                                ("rank_proxy_seeds", "", 0),
                                ("rank_images", " of validation images", 1)):
            values = getattr(self, name)
            if any(not isinstance(n, int) or isinstance(n, bool) or n < least
                   for n in values):
                raise ConfigError(f"bench {name.replace('_', ' ')} must be whole numbers{of} "
                                  f">= {least}, got {list(values)}.")


QUICK = BenchSettings(levels=(0.5, 0.75, 1.0), seeds=(2000, 2001), rank_policies=6,
                      latency_repeats=1, latency_batches=(1, 8), min_run_time=0.02)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _finalized(ev: Evaluator, policy: Policy, seeds, dense: dict) -> dict:
    runs = [ev.finetuned(policy, s) for s in seeds]
    mean, std = _mean_std([r["test_acc"] for r in runs])
    first = runs[0]
    return {"test_mean": mean, "test_std": std, "test_accs": [r["test_acc"] for r in runs],
            "size_mib": first["size_mib"], "size_ratio": first["size_mib"] / dense["size_mib"],
            "macs": first["macs"], "macs_ratio": first["macs"] / dense["macs"],
            "finetune_seconds": statistics.median(r["seconds"] for r in runs),
            "policy": {"sparsity": policy.sparsity, "keep": policy.keep}}


def run_bench(search: PruneSearch, settings: BenchSettings, out_dir: Path, *,
              progress: bool = True) -> dict:
    """Run the benchmark on a study (the search is run or continued first) and write
    ``out_dir`` (``report.md``, ``results.json``, front plots). Returns the results."""
    from autoprune.workflow.bench.render import write_bench

    too_many = [m for m in settings.rank_images if m > search.cfg.data.val_size]
    if too_many:
        raise ConfigError(f"bench rank images {too_many} exceed the validation split "
                          f"(data.val_size = {search.cfg.data.val_size}).")
    t0 = time.perf_counter()
    search.run()
    search_seconds = time.perf_counter() - t0
    cfg, ws, space = search.cfg, search.ws_, search.space_
    ev = Evaluator(search)
    dense_ref = search.record_.dense
    dense = {"size_mib": dense_ref.size_mib, "macs": dense_ref.macs,
             "test_acc": ws.baseline.test_acc, "val_acc": ws.baseline.val_acc}
    floor = cfg.search.floor if cfg.search.sweep else 0.5
    levels = settings.levels or tuple(float(v) for v in np.linspace(floor, 1.0, 5))
    names = space.baseline_names()
    bar = tqdm(total=len(names) * len(levels), desc="bench: heuristic ladders", unit="point",
               disable=not progress)
    heuristics: dict[str, list[dict]] = {}
    for name in names:
        heuristics[name] = []
        for level in levels:
            policy = search.heuristic_policy(name, level)  # latency refit included
            heuristics[name].append({"level": level, **_finalized(ev, policy, settings.seeds,
                                                                   dense)})
            bar.update(1)
    bar.close()

    def finalized_trials(heuristics: bool, fields, desc: str) -> list[dict]:
        rows = list(_confirmed(search.results_, heuristics=heuristics).iterrows())
        return [{"trial": int(r["trial"]), **fields(r),
                 "confirmed_acc": float(r["confirmed_acc"]),
                 "pick_score": float(r["pick_score"]),
                 **_finalized(ev, search.record_.trial(int(r["trial"])).policy,
                              settings.seeds, dense)}
                for _, r in tqdm(rows, desc=desc, unit="point", disable=not progress)]

    searched = finalized_trials(False, lambda r: {"proxy_acc": float(r["proxy_acc"])},
                                "bench: searched points")
    # the study's own front also holds the heuristics it enqueued: what it reports at a level
    # is the best confirmed trial there, heuristic or searched (see _compare's pick); the
    # same policies as the ladder's, so their fine-tunes come from the cache
    confirmed_heuristics = finalized_trials(
        True, lambda r: {"baseline": r["baseline"], "level": float(r["level"])},
        "bench: the study's heuristic trials")

    cap = latency_macs_cap(search.record_, dense)
    rank = _rank_fidelity(search, ev, settings, dense, progress)
    latency = _latency(search, heuristics, searched, settings, progress) \
        if get_mode(cfg.search.mode).channels else None
    results = {
        "study": cfg.name, "source": cfg.source, "overrides": list(cfg.overrides),
        "mode": cfg.search.mode,
        "budget": cfg.budget.items(), "levels": list(levels), "seeds": list(settings.seeds),
        "finetune": {"epochs": cfg.finalize.epochs, "steps": cfg.finalize.steps,
                     "lr": cfg.finalize.lr},
        "dense": dense, "heuristics": heuristics, "searched": searched,
        "confirmed_heuristics": confirmed_heuristics, "latency_macs_cap": cap,
        "fingerprint": cfg.fingerprint(), "study_levels": list(cfg.search.levels),
        "comparison": _compare(heuristics, searched, dense, latency, cfg.budget.items(), cap,
                               confirmed_heuristics, list(cfg.search.levels)),
        "rank_fidelity": rank, "latency": latency,
        "cost": _cost(search, search_seconds, heuristics, searched),
        "settings": asdict(settings), "evaluations_computed": ev.computed,
        "bench_seconds": time.perf_counter() - t0,
    }
    write_bench(results, Path(out_dir))
    return results


def latency_macs_cap(record, dense: dict) -> float | None:
    """The MACs a study's latency budget allows (its calibration, measured once per study) as a
    fraction of dense MACs; ``None`` without a latency budget, or where the calibration found
    no cap (latency did not grow with MACs on the device)."""
    cap = record.latency_macs
    return cap / dense["macs"] if cap is not None else None


def rewrite_bench(out_dir: Path, record=None, study_levels: list[float] | None = None,
                  pick_scores: dict[int, float] | None = None) -> dict:
    """Recompute the comparisons of ``out_dir/results.json`` from the points it holds and
    rewrite its report (and the headline table): nothing is evaluated or measured again.
    For when the comparison itself changes, so every committed benchmark follows it.
    ``record``: the study's, to read a latency cap that results written before it was stored
    lack, and which heuristic trials it has confirmed now (confirming more of them after the
    benchmark changes the study's pick; they are the ladder's policies, already finalized).
    ``study_levels``: the study's ladder levels, for results written before they were
    stored. ``pick_scores``: trial -> the study's pick score now (its
    ``results_["pick_score"]``), read with ``record``."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise ConfigError(f"no benchmark results at {path}: run `autoprune bench STUDY` first.")
    from autoprune.workflow.bench.render import write_bench  # render imports this module

    r = json.loads(path.read_text())
    if record is not None and not _same_study(r, record):
        record = None  # the study's name now holds another study: read nothing from it
    if r.get("latency_macs_cap") is None and record is not None:
        r["latency_macs_cap"] = latency_macs_cap(record, r["dense"])
    if record is not None:
        r["confirmed_heuristics"] = confirmed_heuristics_from_ladder(record, r["heuristics"])
        if pick_scores is not None:
            for p in r["searched"] + r["confirmed_heuristics"]:
                score = pick_scores.get(p["trial"])
                p["pick_score"] = None if score is None or math.isnan(score) else score
    if study_levels is not None and r.get("study_levels") is None:
        r["study_levels"] = list(study_levels)
    rf = r.get("rank_fidelity")
    if rf and rf.get("rows"):
        variants = [k for k in rf.get("labels", {}) if k != "proxy"]
        rf["scores"] = rank_scores(rf["rows"], variants)
    r["comparison"] = _compare(r["heuristics"], r["searched"], r["dense"], r.get("latency"),
                               r["budget"], r.get("latency_macs_cap"),
                               r.get("confirmed_heuristics"), r.get("study_levels"))
    write_bench(r, Path(out_dir))
    return r


def _same_study(r: dict, record) -> bool:
    """Is ``record`` the study the benchmark results ``r`` were written from? By the study's
    fingerprint, which results store since commit 3ea9cca. Older results trust a record only
    for what they lack, their confirmed heuristic trials: the study file may have changed
    since, so that its name now holds another study (the demo's, after its proxy steps
    changed). A fingerprint of ``None`` marks results whose study is gone: a later study of
    the same name and settings is another search, so nothing is read from it."""
    if "fingerprint" in r:
        return record.fingerprint == r["fingerprint"]
    return not r.get("confirmed_heuristics")


def confirmed_heuristics_from_ladder(record, heuristics: dict) -> list[dict]:
    """The study's confirmed heuristic trials, each with the finalized numbers of the ladder
    point that is the same policy (for ``rewrite_bench``: the study may have confirmed more
    since the benchmark ran; a trial with no such point is left out: nothing is evaluated
    here)."""
    out = []
    for _, r in _confirmed(record.results(), heuristics=True).iterrows():
        policy = record.trial(int(r["trial"])).policy
        for p in heuristics.get(r["baseline"], []):
            if (_same(p["policy"].get("keep", {}), policy.keep)
                    and _same(p["policy"].get("sparsity", {}), policy.sparsity)):
                out.append({**p, "trial": int(r["trial"]), "baseline": r["baseline"],
                            "level": float(r["level"]),
                            "confirmed_acc": float(r["confirmed_acc"])})
                break
    return out


def _confirmed(res, *, heuristics: bool):
    """The feasible confirmed trials of a study's results: its enqueued heuristics' or its
    searched ones."""
    kind = res["baseline"] != "" if heuristics else res["baseline"] == ""
    return res[res["confirmed_acc"].notna() & kind & res["feasible"].astype(bool)]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def _axis_points(points: list[dict], axis: str) -> list[tuple[float, float]]:
    return [(p[f"{axis}_ratio"], p["test_mean"]) for p in points
            if p.get(f"{axis}_ratio") is not None]


def level_axes(budget: dict) -> list[str]:
    """The axes a budget caps, on which a searched point must fit a ladder level to be
    compared with the heuristics there (a latency budget caps MACs through its calibration,
    and MACs are what the ladder scales)."""
    axes = Budget(**budget).axes()
    return ["size"] * ("size" in axes) + ["macs"] * bool({"macs", "latency"} & axes) or ["size"]


def level_limits(budget: dict, dense: dict, level: float, at_level: list[dict],
                 latency_macs_cap: float | None = None) -> dict:
    """Axis -> the largest cost ratio a point may have at ``level`` x the budget: the level's
    cap where the budget states it or the study's latency calibration gave it
    (``latency_macs_cap``, a fraction of dense MACs), else the costliest heuristic at the
    level, which met the cap. Never below a heuristic at the level, so every heuristic fits:
    "equal budget", not "no larger than the one heuristic that won"."""
    b = Budget(**budget)
    # latency is capped through MACs, not measured here: its absolute cap is not needed
    caps = b.caps({"size_mib": dense["size_mib"], "macs": dense["macs"],
                   "latency_ms": math.inf})
    ratios = {"size": caps.get("size_mib", math.inf) / dense["size_mib"],
              "macs": caps.get("macs", math.inf) / dense["macs"]}
    if "latency" in b.axes():
        # a latency budget with no known cap leaves MACs to the heuristics that met it
        ratios["macs"] = (min(ratios["macs"], latency_macs_cap) if latency_macs_cap is not None
                          else math.inf)
    limits = {}
    for axis in level_axes(budget):
        worst = max((p[f"{axis}_ratio"] for p in at_level), default=0.0)
        limits[axis] = max(worst, level * ratios[axis]) if ratios[axis] < math.inf else worst
    return limits


def fits_level(point: dict, limits: dict) -> bool:
    """Does a finalized point fit a ladder level's ``limits`` (axis -> cap as a fraction of
    dense, from :func:`level_limits`)?"""
    return all(point[f"{a}_ratio"] <= cap * (1 + 1e-9) for a, cap in limits.items())


def within_std(point: dict, best: dict) -> bool:
    """Is ``point``'s TEST mean at least ``best``'s minus one standard deviation of their
    difference, ``sqrt(sd_point^2 + sd_best^2)`` (the seed-to-seed spread of a difference
    of two single fine-tunes)?"""
    return bool(point["test_mean"] - best["test_mean"]
                >= -math.hypot(point["test_std"], best["test_std"]) - 1e-9)


def _compare(heuristics: dict, searched: list[dict], dense: dict, latency: dict | None,
             budget: dict, latency_macs_cap: float | None = None,
             confirmed_heuristics: list[dict] | None = None,
             study_levels: list[float] | None = None) -> dict:
    """Fronts against fronts: iso-accuracy costs, hypervolumes and, per ladder level, the
    best heuristic there against (a) the best searched point within the level's budget and
    (b) the study's pick: the trial with the best confirmed (validation) score among its
    searched and enqueued heuristic trials within that budget, the point the study itself
    reports there (``None`` without ``confirmed_heuristics``). Each level also says whether
    it is one of the study's own ladder levels (``study_levels``: where the study enqueued
    every heuristic; ``None`` when unknown) and whether the pick is within one standard
    deviation of the best heuristic: ``pick - heuristic >= -sqrt(sd_pick^2 + sd_heur^2)``,
    the seed-to-seed spread of a difference of two single fine-tunes.

    A searched point the benchmark's re-measurement (interleaved with dense) found over the
    latency budget is not an answer to the budget: it leaves the searched front and the
    levels' candidates (``over_latency`` lists it), and a pick among them is flagged
    (``pick_meets_latency``). Heuristic points are compared as built (conservative against
    the search; the latency table says which of them miss)."""
    axes = ["size", "macs"] + (["latency"] if latency else [])
    meets = _latency_verdicts(latency)
    searched_all = searched
    missed = sorted(p["trial"] for p in searched if meets.get(_latency_label(p)) is False)
    searched = [p for p in searched if p["trial"] not in missed]
    all_fronts = {**heuristics, "searched": searched}
    iso = []
    for drop in ACC_DROPS:
        target = dense["test_acc"] - drop
        row = {"drop": drop, "target": target}
        for axis in axes:
            costs = {n: fronts.cost_at_accuracy(_axis_points(p, axis), target)
                     for n, p in all_fronts.items()}
            heur = {n: c for n, c in costs.items() if n != "searched" and c is not None}
            best_name = min(heur, key=heur.get) if heur else None
            s = costs["searched"]
            row[axis] = {"costs": costs, "best_heuristic": best_name,
                         "ratio": s / heur[best_name] if s is not None and best_name else None}
        iso.append(row)
    per_level = []
    levels = [p["level"] for p in next(iter(heuristics.values()))] if heuristics else []
    for i, level in enumerate(levels):
        best_name = max(heuristics, key=lambda n: heuristics[n][i]["test_mean"])
        h = heuristics[best_name][i]
        limits = level_limits(budget, dense, level, [pts[i] for pts in heuristics.values()],
                              latency_macs_cap)
        cands = [p for p in searched if fits_level(p, limits)]
        s = max(cands, key=lambda p: p["test_mean"]) if cands else None
        n = len(h["test_accs"])
        # the study's pick may be a point the re-measurement found over the budget: it is
        # still what the study reports, so it stays in the pool (and is flagged)
        pool = [p for p in searched_all if fits_level(p, limits)] \
            + [p for p in confirmed_heuristics or [] if fits_level(p, limits)]
        # by the study's pick score (results written before it: the confirmed accuracy)
        fused = bool(pool) and all(p.get("pick_score") is not None for p in pool)
        pick = (_pick(pool, "pick_score" if fused else "confirmed_acc")
                if pool and confirmed_heuristics is not None else None)
        # what proxy.pick_by = "confirmed" would have picked (it changes no trial)
        alt = _pick(pool, "confirmed_acc") if fused and confirmed_heuristics is not None \
            else None
        per_level.append({
            "level": level, "size_ratio": h["size_ratio"], "macs_ratio": h["macs_ratio"],
            "limits": limits, "best_heuristic": best_name,
            "heuristic_mean": h["test_mean"], "heuristic_std": h["test_std"],
            "searched_trial": s["trial"] if s else None,
            "searched_mean": s["test_mean"] if s else None,
            "diff": s["test_mean"] - h["test_mean"] if s else None,
            "diff_se": float(np.sqrt((s["test_std"] ** 2 + h["test_std"] ** 2) / n)) if s
            else None,
            "pick": _label(pick), "pick_mean": pick["test_mean"] if pick else None,
            "pick_diff": pick["test_mean"] - h["test_mean"] if pick else None,
            "pick_diff_se": float(np.sqrt((pick["test_std"] ** 2 + h["test_std"] ** 2) / n))
            if pick else None,
            "pick_within_std": within_std(pick, h) if pick else None,
            "pick_meets_latency": meets.get(_latency_label(pick)) if pick else None,
            "pick_confirmed": _label(alt),
            "pick_confirmed_diff": alt["test_mean"] - h["test_mean"] if alt else None,
            "pick_confirmed_within_std": within_std(alt, h) if alt else None,
            "study_level": any(abs(level - v) < 1e-6 for v in study_levels)
            if study_levels is not None else None})
    ref_acc = dense["test_acc"] - 5.0
    hv = {axis: {n: fronts.hypervolume(_axis_points(p, axis), 1.0, ref_acc)
                 for n, p in all_fronts.items()} for axis in axes}
    return {"iso_accuracy": iso, "per_level": per_level, "level_axes": level_axes(budget),
            "over_latency": missed,
            "hypervolume": hv,
            "hypervolume_ref": {"cost_ratio": 1.0, "test_acc": ref_acc}}


def _pick(pool: list[dict], by: str) -> dict:
    """The point of ``pool`` with the highest ``by``; a tie goes to the heuristic, as in the
    study's own report (``workflow.report._pick``)."""
    return max(pool, key=lambda p: (p[by], bool(p.get("baseline"))))


def _latency_verdicts(latency: dict | None) -> dict[str, bool]:
    """Label -> whether the latency table's re-measurement of that point met the latency
    budget (points without a verdict, or no table: absent)."""
    return {row["point"]: row["meets_latency_budget"]
            for row in (latency or {}).get("rows", []) if "meets_latency_budget" in row}


def _latency_label(p: dict) -> str:
    """``p``'s label in the latency table (``baseline`` and ``level`` for a heuristic point,
    ``trial`` for a searched one)."""
    return _label(p) if p.get("baseline") else f"searched trial {p['trial']}"


def _label(p: dict | None) -> str | None:
    if p is None:
        return None
    return f"{p['baseline']} @ {p['level']:.2f}" if p.get("baseline") else f"trial {p['trial']}"


def _rank_fidelity(search: PruneSearch, ev: Evaluator, settings: BenchSettings, dense: dict,
                   progress: bool) -> dict:
    """At the full budget: heuristics and draws from the study's space, each with every score
    the search could rank by, against its finalized TEST accuracy."""
    cfg, space = search.cfg, search.space_
    p = cfg.proxy
    policies = [(n, space.baseline_policy(n, 1.0), False) for n in space.baseline_names()]
    sampler = optuna.samplers.RandomSampler(seed=settings.rank_seed)
    study = optuna.create_study(sampler=sampler)
    while len(policies) < settings.rank_policies:
        policies.append((f"draw {len(policies)}", space.sample(study.ask(), factor=1.0), True))
    # scored as the study confirms (with rungs: the top rung's steps), one seed at least
    how = confirm_scoring(p)
    conf_seeds = how.seeds or (CONFIRM_SEED0,)
    variants = _rank_variants(p, settings)
    # the same finalize re-run with the next seed: how well the ground truth ranks itself,
    # which bounds what any proxy can be shown to reach against one seed (tau_ceiling)
    retest_seed = settings.seeds[1] if len(settings.seeds) > 1 else None
    rows, seconds = [], {"proxy": [], **{k: [] for k in variants}}
    for label, policy, is_draw in tqdm(policies, desc="bench: rank fidelity", unit="policy",
                              disable=not progress):
        fin = ev.finetuned(policy, settings.seeds[0])
        proxy = ev.proxy(policy)
        seconds["proxy"].append(proxy["seconds"])
        at = {}
        for key, (_, kwargs) in variants.items():
            r = ev.proxy(policy, **kwargs)
            at[key] = r["accuracy"]
            seconds[key].append(r["seconds"])
        rows.append({
            "policy": label, "draw": is_draw, "size_ratio": fin["size_mib"] / dense["size_mib"],
            "estimate": space.estimate(policy),
            "recal_only": ev.proxy(policy, steps=0)["accuracy"],
            "proxy": proxy["accuracy"],
            "confirmed": statistics.fmean(ev.proxy(policy, seed=s, images=how.images,
                                                   steps=how.steps)["accuracy"]
                                          for s in conf_seeds),
            **at, "test": fin["test_acc"],
            **({"test_retest": ev.finetuned(policy, retest_seed)["test_acc"]}
               if retest_seed is not None else {})})
    test = [r["test"] for r in rows]
    draws = [r for r in rows if r["draw"]]
    scores = rank_scores(rows, variants)
    return {"rows": rows, "scores": scores, "test_seed": settings.seeds[0],
            "retest_seed": retest_seed, "draw_seed": settings.rank_seed,
            "labels": {"proxy": f"proxy ({p.steps} steps, {p.val_limit} images)",
                       **{k: lab for k, (lab, _) in variants.items()}},
            "proxy_seconds": {k: statistics.median(v) for k, v in seconds.items() if v},
            "test_spread": _spread(test),
            "draws_test_spread": _spread([r["test"] for r in draws])}


def rank_scores(rows: list[dict], variants=()) -> dict:
    """Each score's Kendall τ and Spearman ρ against the finalized TEST accuracy of the
    rank-fidelity ``rows`` (and τ over the draws alone, and, with the re-test, τ against the
    mean of both seeds), the re-test's with its ceilings.
    Adds to every row ``estimate+confirmed``: the sum of the scan estimate and the confirmed
    score, each standardised over the rows (no TEST number enters it), which ranks by both
    evidences at once where each alone is noisy."""
    _add_zsum(rows, "estimate+confirmed", ("estimate", "confirmed"))
    test = [r["test"] for r in rows]
    mean = ([(r["test"] + r["test_retest"]) / 2 for r in rows]
            if rows and all(r.get("test_retest") is not None for r in rows) else None)
    # results written before rows were marked name their draws "draw N"
    draws = [r for r in rows if r.get("draw", str(r["policy"]).startswith("draw "))]
    scores = {}
    for key in ("estimate", "recal_only", "proxy", *variants, "confirmed",
                "estimate+confirmed", "test_retest"):
        vals = [r.get(key) for r in rows]
        if any(v is None for v in vals):
            continue
        # the heuristics can be far apart (a collapsed one inflates τ): the draws alone are
        # the search's own question, near-equal policies told apart
        scores[key] = {"kendall_tau": kendall_tau(vals, test),
                       "spearman_rho": spearman_rho(vals, test),
                       "kendall_tau_draws": kendall_tau([r[key] for r in draws],
                                                        [r["test"] for r in draws])
                       if len(draws) >= 3 else None}
        if key != "test_retest" and mean is not None:
            # the finalized accuracy less one seed's noise: the mean of both seeds
            scores[key]["kendall_tau_mean"] = kendall_tau(vals, mean)
    if "test_retest" in scores:
        retest = scores["test_retest"]
        retest["ceiling"] = tau_ceiling(retest["kendall_tau"])
        retest["ceiling_draws"] = (tau_ceiling(retest["kendall_tau_draws"])
                                   if retest["kendall_tau_draws"] is not None else None)
        retest["ceiling_mean"] = tau_ceiling(retest["kendall_tau"], seeds=2)
    return scores


def _add_zsum(rows: list[dict], name: str, keys: tuple[str, ...]) -> None:
    """``row[name]`` = :func:`~autoprune.search.selection.standardised_sum` of ``keys`` over
    ``rows``; left out (and a stale value removed) where a key is missing or constant."""
    for r in rows:
        r.pop(name, None)
    cols = pd.DataFrame([{k: r.get(k) for k in keys} for r in rows], columns=list(keys))
    if len(rows) < 2 or cols.isna().any().any() or (cols.nunique() < 2).any():
        return
    for r, v in zip(rows, standardised_sum(cols)):
        r[name] = float(v)


def _spread(values: list[float]) -> dict:
    """``n``, ``min``, ``max`` and ``std`` of finalized accuracies (``None`` where undefined:
    no values, or one value's std)."""
    return {"n": len(values), "min": min(values, default=None),
            "max": max(values, default=None),
            "std": statistics.stdev(values) if len(values) > 1 else None}


def _rank_variants(p, settings: BenchSettings) -> dict[str, tuple[str, dict]]:
    """The further proxies of the rank-fidelity check: key -> (label, ``Evaluator.proxy``
    arguments); the study's own proxy is never scored twice. With ``rank_proxy_seeds`` the
    proxy and every variant are scored again with each of those fine-tune seeds (does a τ
    survive a fresh seed?)."""
    base = {"proxy": ("proxy", {})}
    base.update({f"proxy@{n}": (f"proxy, {n} steps", {"steps": n})
                 for n in dict.fromkeys(settings.rank_steps) if n != p.steps})
    base.update({f"proxy/{m}": (f"proxy, {m} images", {"images": (0, m)})
                 for m in dict.fromkeys(settings.rank_images) if m != p.val_limit})
    out = {k: v for k, v in base.items() if k != "proxy"}
    for seed in dict.fromkeys(settings.rank_proxy_seeds):
        if seed == p.seed:
            continue
        out.update({f"{k}#{seed}": (f"{label}, seed {seed}", {**kwargs, "seed": seed})
                    for k, (label, kwargs) in base.items()})
    return out


def _latency(search: PruneSearch, heuristics: dict, searched: list[dict],
             settings: BenchSettings, progress: bool) -> dict:
    """Speedup over dense of every finalized point, measured alternately with dense."""
    cfg, ws = search.cfg, search.ws_
    lat = cfg.latency
    dense_model = ws.baseline.model
    points = [(_latency_label({**p, "baseline": n}), p)
              for n, ps in heuristics.items() for p in ps]
    points += [(_latency_label(p), p) for p in searched]
    budget = cfg.budget.items()
    dense_timers = {}  # one per batch size, prepared (exported) once
    rows = []
    for label, p in tqdm(points, desc="bench: latency", unit="point", disable=not progress):
        policy = Policy(cfg.search.mode, p["policy"]["sparsity"], p["policy"]["keep"])
        model, _ = policy.apply(dense_model, ws.example_input())
        row = {"point": label, "macs_reduction": 1.0 / p["macs_ratio"]}
        for batch in settings.latency_batches:
            if batch not in dense_timers:
                dense_timers[batch] = ws.timer(dense_model, batch)
            r = alternate(dense_timers[batch], ws.timer(model, batch),
                          repeats=settings.latency_repeats, min_run_time=settings.min_run_time)
            row[f"b{batch}"] = {"speedup": r.speedup, "speedups": r.speedups,
                                "dense_ms": r.reference_ms, "point_ms": r.model_ms,
                                "speedup_per_mac_reduction": r.speedup / row["macs_reduction"]}
        # the study's batch size when measured, else the first one
        b = lat.batch_size if lat.batch_size in settings.latency_batches \
            else settings.latency_batches[0]
        p["latency_ratio"] = 1.0 / row[f"b{b}"]["speedup"]
        if "latency" in Budget(**budget).axes():
            ms = statistics.median(row[f"b{b}"]["point_ms"])
            row["meets_latency_budget"] = (
                p["latency_ratio"] <= budget.get("latency", math.inf)
                and (ms <= budget["latency_ms"] if "latency_ms" in budget else True))
        rows.append(row)
    return {"threads": lat.threads, "device": lat.device, "batches":
            list(settings.latency_batches), "repeats": settings.latency_repeats, "rows": rows}


def _cost(search: PruneSearch, search_seconds: float, heuristics: dict,
          searched: list[dict]) -> dict:
    ws, cfg, record = search.ws_, search.cfg, search.record_
    trials = [t for t in search.study_.trials if t.state == optuna.trial.TrialState.COMPLETE]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    confirm = [c.seconds for c in record.confirmations().values() if c.seconds == c.seconds]
    finetunes = [p["finetune_seconds"] for ps in heuristics.values() for p in ps] + \
        [p["finetune_seconds"] for p in searched]
    return {
        "baseline_train_seconds": ws.baseline.train_seconds,
        "scan_seconds": ws.scan(get_mode(cfg.search.mode).scan).compute_seconds,
        "trial_median_seconds": statistics.median(durations) if durations else None,
        "trials": len(trials),
        "baseline_trials": sum(1 for t in trials if TrialView(t).baseline),
        "trials_per_minute": 60.0 * len(durations) / sum(durations) if durations else None,
        "confirmation_seconds_per_trial": statistics.median(confirm) if confirm else None,
        "finetune_median_seconds": statistics.median(finetunes) if finetunes else None,
        "search_call_seconds": search_seconds,
    }
