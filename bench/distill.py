"""Does distillation from the dense model raise finalized accuracy at equal fine-tune?

    .venv/bin/python bench/distill.py [--study studies/demo.toml] [--levels 0.4,1]
        [--weight 0.5] [--temperature 4] [--finalize-steps 100] [--seeds 2000,2001,2002]

Every heuristic of the study's mode at each level is fine-tuned with the study's finalize
recipe (exactly ``--finalize-steps`` steps) with and without distillation, with the same seeds
(same batches), and scored on the TEST split. The runs without distillation are the ones
``autoprune bench`` caches, so they are reused when that benchmark ran with the same steps.
Reported per point: mean ± std over seeds of each, and the paired difference (same seed).
"""

from __future__ import annotations

import argparse
import time

from _common import mean_std, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/demo.toml")
    ap.add_argument("--levels", default="0.4,1")
    ap.add_argument("--weight", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--finalize-steps", type=int, default=100)
    ap.add_argument("--seeds", default="2000,2001,2002")
    args = ap.parse_args()
    from autoprune.search import PruneSearch
    from autoprune.search.config import load_config
    from autoprune.workflow.bench.evaluate import Evaluator

    levels = [float(v) for v in args.levels.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    base = [f"finalize.steps={args.finalize_steps}"]
    kd = [*base, f"finalize.distill={args.weight}", f"finalize.temperature={args.temperature}"]
    searches = {name: PruneSearch(load_config(args.study, o), progress=False).run()
                for name, o in (("labels", base), ("distill", kd))}
    evs = {name: Evaluator(s) for name, s in searches.items()}
    space = searches["labels"].space_
    rows = []
    start = time.perf_counter()
    for level in levels:
        for name in space.baseline_names():
            policy = space.baseline_policy(name, level)
            accs = {k: [ev.finetuned(policy, s)["test_acc"] for s in seeds]
                    for k, ev in evs.items()}
            diffs = [b - a for a, b in zip(accs["labels"], accs["distill"])]
            rows.append({"level": level, "heuristic": name, **accs, "diffs": diffs})
            print(rows[-1], flush=True)
    seconds = time.perf_counter() - start
    cfg = searches["labels"].cfg

    all_diffs = [d for r in rows for d in r["diffs"]]
    md = [f"# Distillation from the dense model in finalize ({cfg.name})", "",
          f"Command: `.venv/bin/python bench/distill.py --study {args.study} --levels "
          f"{args.levels} --weight {args.weight} --temperature {args.temperature} "
          f"--finalize-steps {args.finalize_steps} --seeds {args.seeds}`. Each point: the "
          f"heuristic's policy at level x the study's budget, fine-tuned {args.finalize_steps} "
          f"steps (lr {cfg.finalize.lr}, cosine) with labels only and with distillation "
          f"(weight {args.weight}, T {args.temperature}; teacher: the dense baseline), same "
          f"seeds, TEST split ({len(seeds)} seeds, mean ± std). {seconds / 60:.1f} min of "
          f"fine-tunes not already cached.", "",
          "| level (x budget) | heuristic | labels only (test %) | distilled (test %) | "
          "paired difference (pp) |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['level']:g} | {r['heuristic']} | {mean_std(r['labels'])} | "
                  f"{mean_std(r['distill'])} | {mean_std(r['diffs'])} |")
    md += ["", f"Over all {len(all_diffs)} paired runs: distilled − labels only = "
               f"{mean_std(all_diffs)} pp; {sum(d > 0 for d in all_diffs)} of {len(all_diffs)} "
               f"positive."]
    write(f"distill_{cfg.name}", {"study": args.study, "weight": args.weight,
                                  "temperature": args.temperature,
                                  "finalize_steps": args.finalize_steps, "seeds": seeds,
                                  "rows": rows, "seconds": seconds}, "\n".join(md))


if __name__ == "__main__":
    main()
