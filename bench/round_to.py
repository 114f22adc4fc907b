"""Channel counts rounded to multiples of N (``search.round_to``), at equal budget: what they
cost in accuracy and what they gain in measured speed, under eager PyTorch and ONNX Runtime.

Every heuristic of the study's ladder is built twice at each level, with and without rounding,
both within the same budget (the rounded one re-fitted to it); each is fine-tuned as
``autoprune bench`` does (same cache) and scored on TEST over the seeds, and timed alternately
with the dense model in the same run (batch 1, 1 thread).

    .venv/bin/python bench/round_to.py [--study studies/demo.toml] [--round-to 8]
        [--finalize-steps 100] [--seeds 3]

Needs the study searched (``autoprune bench STUDY`` or ``make demo``).
"""

from __future__ import annotations

import argparse
import statistics

from _common import write


def _widths(model) -> list[int]:
    import torch

    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/demo.toml")
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument("--finalize-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--levels", default="0.4,0.55,0.7,0.85,1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-run-time", type=float, default=0.3)
    args = ap.parse_args()
    from tqdm.auto import tqdm

    from autoprune.engine.metrics import alternate, count_macs, latency_timer
    from autoprune.search import PruneSearch
    from autoprune.workflow.bench.evaluate import Evaluator

    over = [f"finalize.steps={args.finalize_steps}"]
    spaces, search = {}, None
    for n in (0, args.round_to):
        search = PruneSearch.load(args.study, overrides=over + [f"search.round_to={n}"] * bool(n),
                                  progress=False)
        spaces[n] = search.search_space()  # the study's own latency calibration, once
    ev = Evaluator(search)  # its cache key holds no search setting: both spaces share it
    ws = search.ws_
    dense = ws.baseline.model.eval()
    x = ws.example_input()
    dense_macs = count_macs(dense, ws.input_size, sparse=False)
    seeds = [2000 + i for i in range(args.seeds)]
    levels = [float(v) for v in args.levels.split(",")]
    rows = []
    backends = ("torch", "onnxruntime")

    def timer(model, backend):
        return latency_timer(model, ws.input_size, batch_size=1, threads=1, device="cpu",
                             backend=backend)
    dense_timers = {b: timer(dense, b) for b in backends}  # prepared (exported) once
    todo = [(h, lv) for h in spaces[0].baseline_names() for lv in levels]
    for name, level in tqdm(todo, desc="round_to", unit="point"):
        row = {"heuristic": name, "level": level}
        for n, space in spaces.items():
            policy = space.baseline_policy(name, level)
            accs = [ev.finetuned(policy, s)["test_acc"] for s in seeds]
            model, _ = policy.apply(dense, x)
            macs = count_macs(model, ws.input_size, sparse=False)
            r = {"macs_ratio": macs / dense_macs, "widths": _widths(model),
                 "test_mean": statistics.mean(accs), "test_std": statistics.stdev(accs),
                 "test_accs": accs}
            for backend in backends:
                s = alternate(dense_timers[backend], timer(model, backend),
                              repeats=args.repeats, min_run_time=args.min_run_time)
                r[backend] = {"speedup": s.speedup, "speedups": s.speedups,
                              "per_mac": s.speedup * macs / dense_macs}
            row[f"r{n}"] = r
        rows.append(row)
        print(row, flush=True)

    n = args.round_to
    med = {f"{b}_r{k}": statistics.median(r[f"r{k}"][b]["per_mac"] for r in rows)
           for b in ("torch", "onnxruntime") for k in (0, n)}
    diffs = [r[f"r{n}"]["test_mean"] - r["r0"]["test_mean"] for r in rows]
    md = [f"# Channel counts rounded to multiples of {n}: accuracy and speed at equal budget",
          "",
          f"Study `{args.study}` (budget {search.cfg.budget.items()}). Each heuristic of the "
          f"ladder at each level, built without rounding and with `search.round_to = {n}` "
          f"(re-fitted to the same budget); fine-tuned {args.finalize_steps} steps, TEST "
          f"accuracy over seeds {seeds} (mean ± std); speedup = dense / point at batch 1, 1 "
          f"thread, CPU, timed alternately with dense {args.repeats} times (median); "
          f"÷ MACs = speedup / MAC reduction (1: latency falls as fast as MACs).", "",
          f"- Median speedup ÷ MAC reduction, eager PyTorch: {med['torch_r0']:.2f} without "
          f"rounding, {med[f'torch_r{n}']:.2f} with it.",
          f"- Median speedup ÷ MAC reduction, ONNX Runtime: {med['onnxruntime_r0']:.2f} "
          f"without rounding, {med[f'onnxruntime_r{n}']:.2f} with it.",
          f"- TEST accuracy, rounded minus not: {statistics.mean(diffs):+.2f} pp on average "
          f"over the {len(rows)} points (range {min(diffs):+.2f} to {max(diffs):+.2f}; the "
          f"seed-to-seed std of one point is about "
          f"{statistics.median(r['r0']['test_std'] for r in rows):.2f} pp).", "",
          "| heuristic | level | MACs ratio | rounded | TEST % | rounded | speedup torch | "
          "rounded | ÷ MACs | rounded | speedup ORT | rounded | ÷ MACs | rounded |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["r0"], r[f"r{n}"]
        md.append(
            f"| {r['heuristic']} | {r['level']:.2f} | {a['macs_ratio']:.3f} | "
            f"{b['macs_ratio']:.3f} | {a['test_mean']:.2f} ± {a['test_std']:.2f} | "
            f"{b['test_mean']:.2f} ± {b['test_std']:.2f} | "
            + " | ".join(f"{x[k]['speedup']:.2f} | {y[k]['speedup']:.2f} | "
                         f"{x[k]['per_mac']:.2f} | {y[k]['per_mac']:.2f}"
                         for k in ("torch", "onnxruntime") for x, y in [(a, b)]) + " |")
    md += ["", f"Command: `.venv/bin/python bench/round_to.py --study {args.study} --round-to "
               f"{n} --finalize-steps {args.finalize_steps} --seeds {args.seeds}`"]
    write(f"round_to_{search.cfg.name}", {"args": vars(args), "rows": rows,
                                          "median_speedup_per_mac": med}, "\n".join(md))


if __name__ == "__main__":
    main()
