"""How reproducible is a latency budget's structural-MACs cap, run to run on one machine?

    .venv/bin/python bench/latency_calibration.py [--study studies/demo.toml] [--runs 8]
        [--set KEY=VALUE ...]

A latency budget becomes a structural-MACs cap by timing uniform cuts of the untrained
structure and fitting a line (:func:`autoprune.search.calibration.calibrate_latency`). The
cap decides how large every channel trial and every heuristic of a latency study may be, so a
cap that moves between two runs of one study file moves its heuristics and its trials.

Ways of timing the cuts, ``--runs`` times each, alternating which goes first:

* ``sequential`` (the calibration before this script): each cut timed once, the dense model
  last; the line latency = a + b x MACs solved for ``(1 - margin) x budget x dense ms``;
* ``interleaved x N`` (today's, N = ``CALIBRATION_REPEATS``; ``--repeats 3,5`` tries
  others): each cut timed alternately with the dense structure, N times, the line fitted to
  the median ratios cut / dense.

Reported: each way's cap as a fraction of dense MACs (mean, std, range), its seconds, and the
dense runs' spread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/demo.toml")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--repeats", default=None,
                    help="comma-separated repeats of the interleaved way, e.g. 3,5 (default: "
                         "the calibration's own)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="override a study key, as autoprune --set")
    args = ap.parse_args()

    from autoprune.engine.metrics import alternate, count_macs, count_params
    from autoprune.search.budget import Limits
    from autoprune.search.calibration import _uniform_cuts, calibrate_latency
    from autoprune.search.config import load_config
    from autoprune.search.plan import CALIBRATION_REPEATS
    from autoprune.search.space import make_space
    from autoprune.search.workspace import Workspace

    cfg = load_config(args.study, args.overrides)
    if "latency" not in cfg.budget.axes():
        raise SystemExit(f"{args.study} has no latency budget: nothing to calibrate.")
    ws = Workspace(cfg, progress=False)
    lat, margin = cfg.latency, 0.03
    model, x = ws.structure(), ws.example_input()
    dense_macs = count_macs(model, ws.input_size)
    space = make_space(model, x, cfg.search,
                       Limits.from_budget(cfg.budget, count_params(model), dense_macs),
                       model_dict=ws.model_spec.to_dict())
    cost, min_keep = space.channel_cost, cfg.search.min_density
    dense_timer = ws.timer(model)

    def sequential() -> tuple[float, list[float]]:
        cuts = _uniform_cuts(model, x, cost, min_keep, space.snap)
        ms = [ws.measure_latency(m).median_ms for _, m in cuts]  # dense last
        macs = np.array([m for m, _ in cuts], dtype=float)
        b, a = np.polyfit(macs, ms, 1)
        cap = cfg.budget.caps({"size_mib": 0.0, "macs": 0, "latency_ms": ms[-1]})["latency_ms"]
        return float(np.clip(((1 - margin) * cap - a) / b, macs.min(), macs.max())), [ms[-1]]

    def interleaved(repeats: int):
        def way() -> tuple[float, list[float]]:
            runs = []

            def speedup(m):
                r = alternate(dense_timer, ws.timer(m), repeats=repeats,
                              min_run_time=lat.min_run_time)
                runs.extend(r.reference_ms)
                return r

            cal = calibrate_latency(model, x, cost, cfg.budget, min_keep=min_keep,
                                    settings=lat, speedup=speedup, margin=margin,
                                    snap=space.snap)
            return cal["structural_macs"], runs
        return way

    repeats = ([int(r) for r in args.repeats.split(",")] if args.repeats
               else [CALIBRATION_REPEATS])
    ways = {"sequential": sequential,
            **{f"interleaved x{r}": interleaved(r) for r in repeats}}
    caps = {w: [] for w in ways}
    seconds = {w: [] for w in ways}
    dense = {w: [] for w in ways}
    for i in range(args.runs):
        for w in (list(ways) if i % 2 == 0 else list(ways)[::-1]):
            start = time.perf_counter()
            cap, runs = ways[w]()
            seconds[w].append(time.perf_counter() - start)
            caps[w].append(cap / dense_macs)
            dense[w] += runs
            print(f"run {i} {w}: cap {cap / dense_macs:.4f} of dense MACs "
                  f"({seconds[w][-1]:.1f} s)", flush=True)

    def stats(v: list[float]) -> dict:
        return {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                "min": min(v), "max": max(v)}

    summary = {w: {"cap": stats(caps[w]), "seconds": statistics.median(seconds[w]),
                   "dense_ms": stats(dense[w]), "caps": caps[w]} for w in ways}
    budget = ", ".join(f"{k} = {v}" for k, v in cfg.budget.items().items())
    md = [f"# Latency calibration: the structural-MACs cap run to run ({cfg.name})", "",
          f"Command: `.venv/bin/python bench/latency_calibration.py --study {args.study} "
          f"--runs {args.runs}" + (f" --repeats {args.repeats}" if args.repeats else "")
          + "".join(f" --set {o}" for o in args.overrides) + "`. "
          f"Budget {budget}; latency settings: {lat.device}, batch {lat.batch_size}, "
          f"{lat.threads} thread(s), backend {lat.backend}, min run time {lat.min_run_time} s; "
          f"margin {margin}. Each run calibrates the untrained structure once each way, "
          f"alternating which way goes first.", "",
          "- sequential (before): each uniform cut timed once, dense last; line in ms.",
          f"- interleaved x N (now, N = {CALIBRATION_REPEATS}): each cut timed alternately "
          f"with dense, N times; line fitted to the median ratios.", "",
          "| way | cap mean (of dense MACs) | std | min | max | seconds per calibration | "
          "dense ms (runs) |", "|---|---|---|---|---|---|---|"]
    for w, s in summary.items():
        c, d = s["cap"], s["dense_ms"]
        md.append(f"| {w} | {c['mean']:.4f} | {c['std']:.4f} | {c['min']:.4f} | "
                  f"{c['max']:.4f} | {s['seconds']:.1f} | {d['min']:.3f}–{d['max']:.3f} "
                  f"({len(dense[w])}) |")
    md += ["", "| run | " + " | ".join(ways) + " |", "|---" * (len(ways) + 1) + "|"]
    for i in range(args.runs):
        md.append(f"| {i} | " + " | ".join(f"{caps[w][i]:.4f}" for w in ways) + " |")
    write(f"latency_calibration_{cfg.name}",
          {"study": args.study, "runs": args.runs, "overrides": args.overrides,
           "margin": margin, "repeats": repeats, "summary": summary},
          "\n".join(md))


if __name__ == "__main__":
    main()
