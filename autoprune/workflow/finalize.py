"""Finalize: the full fine-tune of chosen front points (and the baselines), scored on the TEST
split, with the real latency of each pruned model. The only stage that touches the test split.

Results live in the study (:class:`~autoprune.search.record.FinalPoint`) and the fine-tuned
models in ``studies/<name>/final/trial_<n>.pt``; re-running skips points already finalized.
"""

from __future__ import annotations

import statistics

import pandas as pd
from tqdm.auto import tqdm

from autoprune.engine.checkpoint import save_checkpoint
from autoprune.search import PruneSearch
from autoprune.search.record import FinalDense, FinalPoint
from autoprune.search.scoring import final_finetune

__all__ = ["default_points", "final_checkpoint", "finalize", "finalized_frame"]


def final_checkpoint(search: PruneSearch, trial: int):
    """Where the finalized model of ``trial`` is stored."""
    return search.cfg.run_dir / "final" / f"trial_{trial}.pt"


def default_points(search: PruneSearch, baselines: bool = True) -> list[int]:
    """Best confirmed accuracy on the front, the front's knee, and (optionally) the best
    feasible trial of every warm-start baseline."""
    points = []
    if not search.pareto_.empty:
        for pick in ("best", "knee"):
            n = search.pick_trial(pick)
            if n not in points:
                points.append(n)
    if baselines:
        res = search.results_
        feas = res[(res["baseline"] != "") & res["feasible"]]
        for _name, grp in feas.groupby("baseline", sort=False):
            n = int(grp.sort_values("proxy_acc", ascending=False)["trial"].iloc[0])
            if n not in points:
                points.append(n)
    return points


def finalize(search: PruneSearch, trials: list[int] | None = None, *, baselines: bool = True,
             force: bool = False) -> pd.DataFrame:
    """Fine-tune each chosen trial's policy with the study's finalize recipe and evaluate it on
    the test split; returns :func:`finalized_frame`."""
    cfg, record, ws = search.cfg, search.record_, search.ws_
    points = list(trials) if trials else default_points(search, baselines)
    views = {n: record.trial(n) for n in points}  # unknown trials fail before any work
    dense_lat = ws.measure_latency(ws.baseline.model,
                                   min_run_time=3 * cfg.latency.min_run_time)
    dense = record.dense
    record.set_final_dense(FinalDense(
        ws.baseline.test_acc, ws.baseline.val_acc, dense.size_mib, dense.macs,
        dense_lat.median_ms, dense_lat.iqr_ms,
        f"batch {dense_lat.batch_size}, {dense_lat.threads} threads, {dense_lat.device}"))
    finals = record.finals()
    todo = [n for n in points
            if force or n not in finals or not final_checkpoint(search, n).is_file()]
    for n in tqdm(todo, desc="finalize", unit="point", disable=not search.progress):
        score, model, lat = final_finetune(ws, views[n].policy)
        # the speedup to trust: dense and this model timed alternately in one run
        inter = ws.measure_speedup(model, repeats=3)
        path = final_checkpoint(search, n)
        save_checkpoint(model, path, ws.model_spec, ws.input_size,
                        meta={"study": cfg.name, "trial": n, "test_acc": score.accuracy})
        record.set_final(FinalPoint(
            n, views[n].baseline, score.accuracy_before_ft, score.accuracy, score.size_mib,
            score.params, score.macs, statistics.median(inter.model_ms), lat.iqr_ms,
            inter.speedup, cfg.finalize.epochs, score.seconds, str(path)))
    return finalized_frame(search)


def finalized_frame(search: PruneSearch) -> pd.DataFrame:
    """One row per finalized trial, sorted by size; ``speedup`` over dense was measured with
    dense and the point timed alternately in one run (the median of 3)."""
    record = search.record_
    df = pd.DataFrame([p.to_dict() for p in record.finals().values()])
    dense = record.final_dense
    if df.empty or dense is None:
        return pd.DataFrame()
    df["x_smaller"] = dense.size_mib / df["size_mib"]
    res = search.results_.set_index("trial")
    df["proxy_acc"] = [res.loc[t, "proxy_acc"] for t in df["trial"]]
    df["confirmed_acc"] = [res.loc[t, "confirmed_acc"] for t in df["trial"]]
    return df.sort_values("size_mib").reset_index(drop=True)
