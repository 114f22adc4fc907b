"""How well does a latency model predict a channel policy's measured latency?

    .venv/bin/python bench/latency_model.py [--study studies/demo.toml] [--policies 20]
        [--set latency.backend=onnxruntime --set search.round_to=16 ...]

Two models, both measured on the study's latency settings (device, batch, threads) on the
untrained structure (latency does not depend on the weights):

* the calibration line the search uses today: latency = a + b x structural MACs, fitted on
  uniformly pruned copies;
* the per-group lookup table (:class:`autoprune.search.calibration.LatencyTable`).

Each is asked to predict ``--policies`` random policies drawn from the study's channel
wide space (independent per-group keep ratios, projected onto random targets between the
sweep's floor and the budget) and scored against the
latency measured alternately with the dense model in the same run. Reported: the error of
each model (median and 90th percentile of |error| / measured), and, under the study's latency
budget, how often a policy the model says meets it misses it on measurement. The dense
model's latency, measured before every candidate across the run, gives the reference's
spread.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
from _common import write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/demo.toml")
    ap.add_argument("--policies", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="override a study key, as autoprune --set")
    args = ap.parse_args()
    import optuna

    from autoprune.engine.metrics import alternate, count_macs, count_params
    from autoprune.engine.prune import channel_prune
    from autoprune.search.budget import Limits
    from autoprune.search.calibration import macs_line, measure_latency_table
    from autoprune.search.config import load_config
    from autoprune.search.space import make_space
    from autoprune.search.workspace import Workspace

    cfg = load_config(args.study, args.overrides)
    ws = Workspace(cfg, progress=False)
    lat = cfg.latency
    model, x = ws.structure(), ws.example_input()
    params, macs = count_params(model), count_macs(model, ws.input_size)
    # the wide space: independent per-group keep ratios, projected onto random targets
    wide = dataclasses.replace(cfg.search, space="wide", prior="uniform")
    space = make_space(model, x, wide, Limits.from_budget(cfg.budget, params, macs),
                       model_dict=ws.model_spec.to_dict())
    cost = space.channel_cost
    dense_timer = ws.timer(model)  # the untrained structure, prepared (exported) once
    dense_runs = []

    def measure(m):
        return ws.measure_latency(m).median_ms

    def ratio(m):  # dense, then ``m``, in the same run
        r = alternate(dense_timer, ws.timer(m), repeats=1, min_run_time=lat.min_run_time)
        dense_runs.append(r.reference_ms[0])
        return 1.0 / r.speedup

    min_keep = cfg.search.min_density
    start = time.perf_counter()
    a, b = macs_line(model, x, cost, min_keep=min_keep, measure=measure, snap=space.snap)
    line_s = time.perf_counter() - start
    start = time.perf_counter()
    table = measure_latency_table(model, x, cost, ratio=ratio, measure=measure,
                                  min_keep=min_keep, seed=args.seed)
    table_s = time.perf_counter() - start
    print(f"line a={a:.4f} b={b:.3e} ({line_s:.0f} s); table scale {table.scale:.3f} over "
          f"{len(table.savings)} groups x {len(table.keeps)} levels ({table_s:.0f} s)",
          flush=True)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed + 1))
    cap_ratio = cfg.budget.latency
    rows = []
    for i in range(args.policies):
        trial = study.ask()
        policy = space.sample(trial, trial.suggest_float("level", cfg.search.floor, 1.0))
        keep = policy.keep
        pruned = channel_prune(model, keep, x)
        r = ratio(pruned)
        measured = r * dense_runs[-1]
        rows.append({"policy": i, "structural_macs": cost.macs(keep), "measured_ratio": r,
                     "line_ratio": (a + b * cost.macs(keep)) / (a + b * macs),
                     "table_ratio": table.predict(keep) / table.dense_ms,
                     "measured_ms": measured})
        print(rows[-1], flush=True)
    errors = {}
    for name in ("line", "table"):
        e = [abs(r[f"{name}_ratio"] - r["measured_ratio"]) / r["measured_ratio"] for r in rows]
        errors[name] = {"median": statistics.median(e), "p90": float(np.quantile(e, 0.9)),
                        "max": max(e)}
    misses = {}
    if cap_ratio is not None:
        for name in ("line", "table"):
            said = [r for r in rows if r[f"{name}_ratio"] <= cap_ratio]
            missed = [r for r in said if r["measured_ratio"] > cap_ratio]
            misses[name] = {"predicted_meet": len(said), "missed": len(missed)}
    spread = {"median_ms": statistics.median(dense_runs), "min_ms": min(dense_runs),
              "max_ms": max(dense_runs), "n": len(dense_runs),
              "iqr_ms": float(np.subtract(*np.percentile(dense_runs, [75, 25])))}
    md = [f"# Latency model: predicted vs measured latency of {args.policies} random policies "
          f"({cfg.name})", "",
          f"Command: `.venv/bin/python bench/latency_model.py --study {args.study} --policies "
          f"{args.policies} --seed {args.seed}"
          + "".join(f" --set {o}" for o in args.overrides) + "`. "
          + (f"Channel counts rounded to multiples of {cfg.search.round_to} (the line's cuts "
             f"and the policies; the table's single-group cuts are not). "
             if cfg.search.round_to else "") + f"Latency settings: {lat.device}, batch "
          f"{lat.batch_size}, {lat.threads} thread(s), backend {lat.backend}, min run time "
          f"{lat.min_run_time} s. Every latency is a ratio to the dense model measured just "
          f"before it in the same run.", "",
          f"- Calibration line (today's projection): latency = {a:.4f} ms + {b:.3e} ms/MAC x "
          f"structural MACs; fitted on 5 uniform cuts in {line_s:.0f} s.",
          f"- Lookup table: {len(table.savings)} coupling groups x {len(table.keeps)} keep "
          f"levels {list(table.keeps)}, each group pruned alone and timed against dense, plus "
          f"6 random policies to fit the scale of the summed savings ({table.scale:.3f}); "
          f"{table_s:.0f} s.", "",
          "| model | median abs error | 90th percentile | max |", "|---|---|---|---|"]
    for name, e in errors.items():
        md.append(f"| {name} | {100 * e['median']:.1f} % | {100 * e['p90']:.1f} % | "
                  f"{100 * e['max']:.1f} % |")
    if misses:
        md += ["", f"Under the study's budget (latency ≤ {cap_ratio} x dense):", "",
               "| model | policies predicted to meet it | of those, measured above it |",
               "|---|---|---|"]
        for name, m in misses.items():
            md.append(f"| {name} | {m['predicted_meet']} | {m['missed']} |")
    mid = table.keeps[len(table.keeps) // 2]
    halves = [row[table.keeps.index(mid)] for row in table.savings.values()]
    better = min(errors, key=lambda n: errors[n]["median"])
    md += ["", f"Lower median error: **{better}**. One group pruned alone to keep {mid} saves "
               f"a median {statistics.median(halves):.3f} ms (range {min(halves):.3f} to "
               f"{max(halves):.3f} ms); the dense reference's interquartile range over the "
               f"run is {spread['iqr_ms']:.3f} ms. Where a group's saving is of the order of "
               f"the measurement noise, the table's entries are mostly noise and their sum "
               f"(over {len(table.savings)} groups) more so."]
    md += ["", f"Dense reference over the run ({spread['n']} measurements): median "
               f"{spread['median_ms']:.3f} ms, IQR {spread['iqr_ms']:.3f} ms, range "
               f"{spread['min_ms']:.3f}–{spread['max_ms']:.3f} ms.", "",
           "| policy | structural MACs | measured ratio | line | table |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['policy']} | {r['structural_macs']:,.0f} | {r['measured_ratio']:.3f} | "
                  f"{r['line_ratio']:.3f} | {r['table_ratio']:.3f} |")
    write(f"latency_model_{cfg.name}", {"study": args.study, "line": {"a": a, "b": b},
                                        "table": table.to_dict(), "errors": errors,
                                        "misses": misses, "dense": spread, "policies": rows},
          "\n".join(md))


if __name__ == "__main__":
    main()
