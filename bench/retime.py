"""Re-time a benchmark's points with more interleaved repeats: is a latency verdict noise?

`autoprune bench` times each point 3 times alternately with dense and calls a point over the
latency budget when the median ratio exceeds it. On the slow shared VM single ratios of one
structure spread by ±25 %, so a 3-repeat median can flip. This script re-times chosen trials
of a benchmarked study (their policies applied to the study's trained baseline, as the
benchmark does) with N repeats each, alternately with dense, and reports the median ratio,
its range and the benchmark's own verdict beside it.

    .venv/bin/python bench/retime.py --repeats 9 demo_climb:0:9,10,2 demo_climb_s1:1:9,10,2 \
        demo_climb_s2:2:9,10,2

Each argument is ``NAME:SAMPLER_SEED:TRIALS`` of a study benchmarked from studies/demo.toml
with the climbed screening settings (``--set search.screen_levels=5 --set
search.screen_climb=448 --set search.trials=20``); the study must be here (studies/NAME).
"""

from __future__ import annotations

import argparse
import json
import statistics

from _common import OUT, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", help="NAME:SAMPLER_SEED:TRIAL,TRIAL,...")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()

    import optuna

    from autoprune import PruneSearch
    from autoprune.engine.policy import Policy
    from autoprune.workflow.bench import _latency_label

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for spec in args.studies:
        name, seed, trials = spec.split(":")
        search = PruneSearch.load("studies/demo.toml", progress=False, overrides=[
            f"name={name}", "search.screen_levels=5", "search.screen_climb=448",
            "search.trials=20", f"search.sampler_seed={seed}"])
        ws, record = search.ws_, search.record_
        budget = search.cfg.budget.latency
        bench = json.loads((OUT / name / "results.json").read_text())["latency"]["rows"]
        for n in (int(t) for t in trials.split(",")):
            view = record.trial(n)
            pol = view.policy
            model, _ = Policy(pol.mode, pol.sparsity, pol.keep).apply(ws.baseline.model,
                                                                       ws.example_input())
            r = ws.measure_speedup(model.eval(), repeats=args.repeats)
            ratios = sorted(p / d for d, p in zip(r.reference_ms, r.model_ms))
            label = _latency_label({"baseline": view.baseline, "level": view.level,
                                    "trial": n})
            b = next(row for row in bench if row["point"] == label)
            rows.append({"study": name, "trial": n, "point": label,
                         "median": statistics.median(ratios), "min": ratios[0],
                         "max": ratios[-1], "bench_median": 1.0 / b["b1"]["speedup"],
                         "bench_meets": b.get("meets_latency_budget"),
                         "meets": statistics.median(ratios) <= budget})
            print(rows[-1], flush=True)
    md = [f"# Latency verdicts re-timed with {args.repeats} interleaved repeats",
          "",
          f"Command: `.venv/bin/python bench/retime.py --repeats {args.repeats} "
          + " ".join(args.studies) + "`. Latency as a fraction of dense (batch 1, 1 thread, "
          "CPU, eager PyTorch), each repeat timed alternately with dense; the benchmark's "
          "own median over its 3 repeats beside it. Budget: latency "
          f"{search.cfg.budget.latency} x dense.",
          "",
          "| study | point | median (this run) | min–max | meets budget | benchmark's median "
          "(3 repeats) | benchmark: meets |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['study']} | {r['point']} | {r['median']:.3f} | {r['min']:.3f}–"
                  f"{r['max']:.3f} | {'yes' if r['meets'] else 'no'} | "
                  f"{r['bench_median']:.3f} | {'yes' if r['bench_meets'] else 'no'} |")
    write("retime_climb", {"repeats": args.repeats, "studies": args.studies, "rows": rows},
          "\n".join(md))


if __name__ == "__main__":
    main()
