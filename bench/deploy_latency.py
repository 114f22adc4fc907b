"""The demo's exported model deployed: ONNX export fidelity and latency under eager PyTorch and
ONNX Runtime, each against the dense model measured interleaved in the same run.

    .venv/bin/python bench/deploy_latency.py [--study studies/demo.toml] [--repeats 3]

Needs a finalized study (``make demo``); exports ``--format onnx`` first.
"""

from __future__ import annotations

import argparse
import statistics

from _common import write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/demo.toml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-run-time", type=float, default=0.5)
    args = ap.parse_args()
    from autoprune.engine.checkpoint import load_checkpoint
    from autoprune.engine.metrics import count_macs, measure_speedup
    from autoprune.search import PruneSearch
    from autoprune.search.config import load_config
    from autoprune.workflow.export import export_study

    search = PruneSearch.load(load_config(args.study), progress=False)
    info = export_study(search, formats=("pt", "onnx", "torchscript", "pt2"))
    check = {c["fmt"]: c for c in info["checks"]}
    model = load_checkpoint(info["files"][[f.endswith("model.pt") for f in
                                           info["files"]].index(True)])
    dense = search.ws_.baseline.model
    size = search.ws_.input_size
    macs_red = count_macs(dense, size) / count_macs(model, size)
    rows = []
    for backend in ("torch", "onnxruntime"):
        for batch in (1, 64):
            r = measure_speedup(dense, model, size, repeats=args.repeats, batch_size=batch,
                                threads=1, device="cpu", min_run_time=args.min_run_time,
                                backend=backend)
            rows.append({"backend": backend, "batch": batch, "threads": 1,
                         "dense_ms": r.reference_ms, "model_ms": r.model_ms,
                         "speedup": r.speedup, "speedups": r.speedups})
            print(rows[-1], flush=True)
    md = ["# Deployment: the demo's exported model under PyTorch and ONNX Runtime", "",
          f"Study `{args.study}`, exported trial {info['trial']} (test accuracy "
          f"{info['test_acc']:.2f} %), MAC reduction {macs_red:.2f}x. Each file was loaded "
          f"back and run on 64 test images:", "",
          "| format | max abs difference from PyTorch |", "|---|---|"]
    for fmt, c in check.items():
        opset = f" (opset {c['opset']})" if c["opset"] else ""
        md.append(f"| {fmt}{opset} | {c['max_abs_diff']:.2e} |")
    md += ["", f"Latency, 1 thread, CPU; dense and pruned measured alternately "
               f"{args.repeats} times in one run (median of each `blocked_autorange` / timed "
               f"block; min run time {args.min_run_time} s):", "",
           "| backend | batch | dense (ms) | pruned (ms) | speedup (median) | speedups | "
           "speedup ÷ MAC reduction |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['backend']} | {r['batch']} | {statistics.median(r['dense_ms']):.3f} "
                  f"| {statistics.median(r['model_ms']):.3f} | {r['speedup']:.2f} | "
                  f"{', '.join(f'{v:.2f}' for v in r['speedups'])} | "
                  f"{r['speedup'] / macs_red:.2f} |")
    ort = {r["batch"]: statistics.median(r["model_ms"]) for r in rows
           if r["backend"] == "onnxruntime"}
    pt = {r["batch"]: statistics.median(r["model_ms"]) for r in rows if r["backend"] == "torch"}
    md += ["", "ONNX Runtime vs eager PyTorch on the pruned model: "
           + ", ".join(f"batch {b}: {pt[b] / ort[b]:.2f}x" for b in sorted(ort))
           + " (PyTorch time ÷ ONNX Runtime time; measured in different moments of one run, "
             "so less exact than the interleaved speedups).", "",
           f"Command: `.venv/bin/python bench/deploy_latency.py --study {args.study} "
           f"--repeats {args.repeats}`"]
    write("deploy_latency", {"study": args.study, "trial": info["trial"], "checks": check,
                             "macs_reduction": macs_red, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
