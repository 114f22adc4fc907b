"""Finalize: the full fine-tune of chosen front points (and the baselines), scored on the TEST
split, with the real latency of each pruned model. The only stage that touches the test split.

Results live in the study (user attrs ``final:<trial>``) and the fine-tuned models in
``studies/<name>/final/trial_<n>.pt``; re-running skips points already finalized.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from autoprune.export import save_checkpoint
from autoprune.policy import Policy
from autoprune.search import PruneSearch

__all__ = ["default_points", "finalize", "finalized_frame", "final_checkpoint"]


def final_checkpoint(search: PruneSearch, trial: int) -> Path:
    return search.cfg.run_dir / "final" / f"trial_{trial}.pt"


def default_points(search: PruneSearch, baselines: bool = True) -> list[int]:
    """Best confirmed accuracy on the front, the front's knee, and (optionally) every
    warm-start baseline."""
    points = []
    if not search.pareto_.empty:
        for pick in ("best", "knee"):
            n = search._pick_trial(pick).number
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
    cfg, study = search.cfg, search.study_
    points = list(trials) if trials else default_points(search, baselines)
    known = {t.number for t in study.trials if "policy" in t.user_attrs}
    unknown = sorted(set(points) - known)
    if unknown:
        raise ValueError(f"Trials {unknown} have no policy in study {cfg.name!r} (finished "
                         f"trials: {sorted(known)}).")
    ws = search.ws_
    dense_lat = ws.measure_latency(ws.baseline.model,
                                   min_run_time=3 * cfg.latency.min_run_time)
    study.set_user_attr("final:dense", {
        "test_acc": ws.baseline.test_acc, "val_acc": ws.baseline.val_acc,
        "size_mib": ws.dense["size_mib"], "macs": ws.dense["macs"],
        "latency_ms": dense_lat.median_ms, "latency_iqr_ms": dense_lat.iqr_ms,
        "latency_setup": f"batch {dense_lat.batch_size}, {dense_lat.threads} threads, "
                         f"{dense_lat.device}"})
    todo = [n for n in points
            if force or f"final:{n}" not in study.user_attrs
            or not final_checkpoint(search, n).is_file()]
    for n in tqdm(todo, desc="finalize", unit="point", disable=not search.progress):
        t = study.trials[n]
        policy = Policy.from_dict(t.user_attrs["policy"])
        start = time.perf_counter()
        score, model = search.scorer_.score(
            policy, seed=cfg.seed, split="test", val_limit=None, epochs=cfg.finalize.epochs,
            lr=cfg.finalize.lr, before=True, return_model=True)
        lat = ws.measure_latency(model)
        path = final_checkpoint(search, n)
        save_checkpoint(model, path, ws.model_spec, ws.input_size,
                        meta={"study": cfg.name, "trial": n, "test_acc": score.accuracy})
        study.set_user_attr(f"final:{n}", {
            "trial": n, "baseline": t.user_attrs.get("baseline") or "",
            "test_acc_before_ft": score.accuracy_before_ft, "test_acc": score.accuracy,
            "size_mib": score.size_mib, "params": score.params, "macs": score.macs,
            "latency_ms": lat.median_ms, "latency_iqr_ms": lat.iqr_ms,
            "speedup": dense_lat.median_ms / lat.median_ms, "epochs": cfg.finalize.epochs,
            "seconds": time.perf_counter() - start, "checkpoint": str(path)})
    return finalized_frame(search)


def finalized_frame(search: PruneSearch) -> pd.DataFrame:
    """One row per finalized trial (plus the dense model), sorted by size."""
    attrs = search.study_.user_attrs
    rows = [dict(v, trial=v.get("trial", -1)) for k, v in attrs.items()
            if k.startswith("final:") and k != "final:dense"]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    dense = attrs["final:dense"]
    df["x_smaller"] = dense["size_mib"] / df["size_mib"]
    df["speedup"] = dense["latency_ms"] / df["latency_ms"]
    conf = search.results_.set_index("trial")
    df["proxy_acc"] = [conf.loc[t, "proxy_acc"] for t in df["trial"]]
    df["confirmed_acc"] = [conf.loc[t, "confirmed_acc"] if "confirmed_acc" in conf else None
                           for t in df["trial"]]
    return df.sort_values("size_mib").reset_index(drop=True)
