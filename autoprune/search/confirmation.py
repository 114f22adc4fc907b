"""Confirmation: re-score the front's candidates with fresh fine-tune seeds on validation images
the search did not select on.

Selecting the best of many noisy scores overstates it (the winner's curse); the reported front
and every pick use the confirmed scores. At every ladder level the best heuristic and the best
searched trial are confirmed alike, so the two can be compared level by level
(:func:`level_pairs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd
from tqdm.auto import tqdm

from autoprune.search.config import ProxySettings
from autoprune.search.promotion import top_rung
from autoprune.search.record import Confirmation, StudyRecord
from autoprune.search.scoring import ProxyScorer
from autoprune.search.selection import front, spread

__all__ = ["CONFIRM_SEED0", "ConfirmScoring", "candidates", "confirm", "confirm_scoring",
           "level_pairs"]

CONFIRM_SEED0 = 1000


class ConfirmScoring(NamedTuple):
    """How a confirmation scores a policy (the arguments of ``ProxyScorer.score``)."""

    seeds: tuple[int, ...]
    images: tuple[int, int]  # (skip, count) of the validation split
    steps: int | None  # None: the proxy's own steps


def confirm_scoring(settings: ProxySettings) -> ConfirmScoring:
    """The one rule for how a trial is confirmed, read by :func:`confirm` and by the
    benchmark's rank check (whose "confirmed" column must be the score the study picks by):
    ``confirm_seeds`` fresh fine-tune seeds, the ``confirm_val`` validation images after the
    search's ``val_limit``, and with ``rungs`` the top rung's fine-tune steps."""
    return ConfirmScoring(tuple(CONFIRM_SEED0 + j for j in range(settings.confirm_seeds)),
                          (settings.val_limit, settings.confirm_val),
                          settings.rungs[-1] if settings.rungs else None)


def candidates(record: StudyRecord, objectives: Sequence[str], top: int,
               levels: Sequence[float] = (1.0,), rungs: Sequence[int] = (),
               heuristics: str = "all") -> list[int]:
    """Trial numbers to confirm: up to ``top`` proxy-front points spread over size, the best
    searched trial, and at each ladder level the best heuristic there and the best searched
    trial that fits the level (see :func:`level_pairs`; under a latency budget with the
    MACs its calibration allows, ``StudyRecord.latency_macs``, as the study's report and the
    benchmark judge the level); with ``heuristics="all"`` every
    heuristic built for a level too, so that the study's pick among them rests on confirmed
    scores rather than on the search-time proxy; and every screened trial (``search.screen``:
    one per screened level, the searched trials the scan's estimate chose, which the proxy
    alone can leave out when a level's costs exclude them or the front's spread passes them
    by). With ``rungs``, among the trials that
    reached the top rung, by their score there."""
    res = top_rung(record.results(), rungs)
    feas = res[res["feasible"].astype(bool)]
    if feas.empty:
        return []
    chosen = spread(front(feas, objectives, column="proxy_acc"), top)
    searched = feas[feas["baseline"] == ""]
    if len(searched):
        chosen.append(int(searched.loc[searched["proxy_acc"].idxmax(), "trial"]))
    for pair in level_pairs(feas, levels, "proxy_acc",
                            macs_cap=record.latency_macs):
        chosen += [n for n in (pair["heuristic_trial"], pair["searched_trial"]) if n is not None]
    if heuristics == "all":
        for level in levels:
            chosen += _heuristics_at(feas, level)["trial"].astype(int).sort_values().tolist()
    screened = record.screened_trials()
    chosen += sorted(int(n) for n in feas["trial"] if int(n) in screened)
    return list(dict.fromkeys(chosen))


def _heuristics_at(results: pd.DataFrame, level: float) -> pd.DataFrame:
    """The heuristic trials built for ``level`` (x the budget)."""
    return results[(results["baseline"] != "") & ((results["level"] - level).abs() < 1e-6)]


def level_pairs(results: pd.DataFrame, levels: Sequence[float], acc: str = "confirmed_acc",
                macs_cap: float | None = None) -> list[dict]:
    """At each ladder level: the feasible heuristic trial built for it with the highest
    ``acc``, and the feasible searched trial with the highest ``acc`` among those that fit
    the level. ``None`` where there is none. With ``acc="confirmed_acc"`` and a
    ``pick_score`` column (:func:`autoprune.search.selection.pick_scores`), both are chosen
    by that score, and ``*_score`` says which of the two the study picks. Every feasible
    trial fits the full budget (its constraints are the budget's), whether or not a heuristic
    built for it is feasible (under a measured latency budget, heuristics projected onto the
    budget land on either side of it). Below it a searched trial fits if it costs no more
    than the costliest feasible heuristic built for the level (size and MACs, within 0.5 %:
    the costs a policy is built to; measured latency is too noisy to rank by): equal budget,
    as the benchmark compares; with no heuristic to say what the level allows, none fits.
    ``macs_cap``: the MACs a latency budget allows at the full budget (the study's latency
    calibration, ``StudyRecord.latency_macs``); a level then allows ``level`` x that where it
    is more than its costliest heuristic's, as the benchmark's levels do."""
    by = "pick_score" if acc == "confirmed_acc" and "pick_score" in results else acc
    feas = results[results["feasible"].astype(bool) & results[acc].notna()
                   & results[by].notna()]
    out = []
    for level in levels:
        heur = _heuristics_at(feas, level)
        h = heur.loc[heur[by].idxmax()] if len(heur) else None
        srch = feas[feas["baseline"] == ""]
        full = level >= 1.0 - 1e-9
        if h is not None and not full:
            macs = max(heur["macs"].max(), level * macs_cap if macs_cap else 0.0)
            srch = srch[(srch["size_mib"] <= heur["size_mib"].max() * 1.005)
                        & (srch["macs"] <= macs * 1.005)]
        compared = h is not None or full
        t = srch.loc[srch[by].idxmax()] if compared and len(srch) else None
        out.append({
            "level": level,
            "heuristic": h["baseline"] if h is not None else None,
            "heuristic_trial": int(h["trial"]) if h is not None else None,
            "heuristic_acc": float(h[acc]) if h is not None else math.nan,
            "heuristic_std": _std(h, acc),
            "heuristic_score": float(h[by]) if h is not None else math.nan,
            "searched_trial": int(t["trial"]) if t is not None else None,
            "searched_acc": float(t[acc]) if t is not None else math.nan,
            "searched_std": _std(t, acc),
            "searched_score": float(t[by]) if t is not None else math.nan,
        })
    return out


def _std(row, acc: str) -> float:
    if row is None or acc != "confirmed_acc":
        return math.nan
    return float(row["confirmed_std"])


def confirm(record: StudyRecord, scorer: ProxyScorer, settings: ProxySettings,
            objectives: Sequence[str], levels: Sequence[float] = (1.0,), *,
            progress: bool = True) -> dict[int, Confirmation]:
    """Confirm the candidates not confirmed yet, with the top rung's fine-tune steps when
    there are rungs; returns every confirmation of the study."""
    if settings.confirm_seeds == 0 or settings.confirm_val == 0:
        return record.confirmations()
    done = record.confirmations()
    todo = [n for n in candidates(record, objectives, settings.confirm_top, levels,
                                  settings.rungs, settings.confirm_heuristics)
            if n not in done]
    how = confirm_scoring(settings)
    images = how.images
    for n in tqdm(todo, desc="confirm", unit="trial", disable=not progress):
        start = time.perf_counter()
        policy = record.trial(n).policy
        accs = [scorer.score(policy, seed=s, images=images, steps=how.steps,
                             latency=False).accuracy
                for s in how.seeds]
        record.set_confirmation(n, Confirmation(accs, list(how.seeds),
                                                (images[0], sum(images)),
                                                time.perf_counter() - start))
    return record.confirmations()
