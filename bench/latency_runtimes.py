"""How closely measured speedup follows the MAC reduction, runtime by runtime (issue 11's goal:
speedup >= 0.9 of the MAC reduction at batch 1 on CPU).

Every heuristic of the study's ladder at each level is pruned from the study's dense model
and timed alternately with the dense model in the same run, under four runtimes:

- ``eager``: eager PyTorch, what the studies time (``latency.backend = "torch"``);
- ``bn_fused``: eager PyTorch with each batch norm folded into its convolution
  (``torch.fx.experimental.optimization.fuse``), as every deployment runtime does;
- ``torchscript``: that model traced and frozen (``torch.jit.freeze``), one graph with
  constants folded, run by the TorchScript interpreter;
- ``onnxruntime``: the model exported to ONNX and run by ONNX Runtime
  (``latency.backend = "onnxruntime"``, which fuses batch norms itself).

At batch 1 a network this small spends a fixed time per operator whatever its width, which
pruning does not remove; a larger batch shows how much of the gap that is. Dense and pruned
models go through the same transformation, so each speedup compares like with like.

    .venv/bin/python bench/latency_runtimes.py [--study studies/demo.toml]
        [--levels 0.4,0.7,1] [--batches 1,16] [--repeats 3] [--round-to 8]

``--round-to N`` builds the policies with ``search.round_to = N`` (channel counts in multiples
of N, re-fitted to the same budget; see bench/round_to.py).

Needs the study searched (``make demo`` or ``autoprune search STUDY``).
"""

from __future__ import annotations

import argparse
import statistics

from _common import write

RUNTIMES = ("eager", "bn_fused", "torchscript", "onnxruntime")


def _prepare(model, runtime: str, input_size: tuple[int, ...], batch: int):
    """The model as ``runtime`` runs it, and the latency backend that times it."""
    import torch
    from torch.fx.experimental.optimization import fuse

    model = model.eval()
    if runtime in ("eager", "onnxruntime"):
        return model, "torch" if runtime == "eager" else "onnxruntime"
    fused = fuse(model)
    if runtime == "bn_fused":
        return fused, "torch"
    with torch.no_grad():
        traced = torch.jit.trace(fused, torch.randn(batch, *input_size))
    return torch.jit.freeze(traced), "torch"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/demo.toml")
    ap.add_argument("--levels", default="0.4,0.7,1")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-run-time", type=float, default=0.3)
    ap.add_argument("--round-to", type=int, default=0)
    args = ap.parse_args()
    from tqdm.auto import tqdm

    from autoprune.engine.metrics import alternate, count_macs, latency_timer
    from autoprune.search import PruneSearch

    search = PruneSearch.load(args.study, progress=False, overrides=[
        f"search.round_to={args.round_to}"] if args.round_to else [])
    ws = search.ws_
    space = search.search_space()  # with the study's own latency calibration
    dense = ws.baseline.model.eval()
    dense_macs = count_macs(dense, ws.input_size, sparse=False)
    levels = [float(v) for v in args.levels.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    rows = []

    def timer(model, runtime, batch):
        prepared, backend = _prepare(model, runtime, ws.input_size, batch)
        return latency_timer(prepared, ws.input_size, batch_size=batch, threads=1,
                             device="cpu", backend=backend)
    # the dense model, as each runtime runs it, prepared (traced, exported) once
    dense_timers = {(r, b): timer(dense, r, b) for b in batches for r in RUNTIMES}
    todo = [(h, lv) for h in space.baseline_names() for lv in levels]
    for name, level in tqdm(todo, desc="latency runtimes", unit="point"):
        model, _ = space.baseline_policy(name, level).apply(dense, ws.example_input())
        macs = count_macs(model, ws.input_size, sparse=False)
        row = {"heuristic": name, "level": level, "macs_reduction": dense_macs / macs}
        for batch in batches:
            for runtime in RUNTIMES:
                s = alternate(dense_timers[runtime, batch], timer(model, runtime, batch),
                              repeats=args.repeats, min_run_time=args.min_run_time)
                row[f"{runtime}_b{batch}"] = {
                    "speedup": s.speedup, "speedups": s.speedups,
                    "dense_ms": statistics.median(s.reference_ms),
                    "point_ms": statistics.median(s.model_ms),
                    "per_mac": s.speedup / row["macs_reduction"]}
        rows.append(row)

    keys = [f"{r}_b{b}" for b in batches for r in RUNTIMES]
    med = {k: statistics.median(r[k]["per_mac"] for r in rows) for k in keys}
    dense_ms = {k: statistics.median(r[k]["dense_ms"] for r in rows) for k in keys}
    md = ["# Speedup against MAC reduction, runtime by runtime", "",
          f"Study `{args.study}`: each of its heuristics at {levels} x its budget "
          f"({search.cfg.budget.items()}), pruned from its dense model, "
          + (f"built with `search.round_to = {args.round_to}`, " if args.round_to else "")
          + "timed alternately "
          f"with it {args.repeats} times (median speedup), 1 thread, CPU. ÷ MACs = speedup / "
          "MAC reduction (1: latency falls as fast as MACs). Dense and pruned models go "
          "through the same transformation.", "",
          "| runtime | batch | dense ms (median) | median speedup ÷ MACs | range |",
          "|---|---|---|---|---|"]
    for k in keys:
        runtime, b = k.rsplit("_b", 1)
        vals = [r[k]["per_mac"] for r in rows]
        md.append(f"| {runtime} | {b} | {dense_ms[k]:.3f} | {med[k]:.2f} | "
                  f"{min(vals):.2f}–{max(vals):.2f} |")
    md += ["", "| heuristic | level | MAC reduction | "
           + " | ".join(f"{k.replace('_b', ' b')}" for k in keys) + " |",
           "|---|---|---|" + "---|" * len(keys)]
    for r in rows:
        md.append(f"| {r['heuristic']} | {r['level']:.2f} | {r['macs_reduction']:.2f} | "
                  + " | ".join(f"{r[k]['speedup']:.2f} ({r[k]['per_mac']:.2f})" for k in keys)
                  + " |")
    md += ["", "Cells: speedup (÷ MACs).", "",
           f"Command: `.venv/bin/python bench/latency_runtimes.py --study {args.study} "
           f"--levels {args.levels} --batches {args.batches} --repeats {args.repeats}"
           + (f" --round-to {args.round_to}" if args.round_to else "") + "`"]
    suffix = f"_r{args.round_to}" if args.round_to else ""
    write(f"latency_runtimes_{search.cfg.name}{suffix}", {"args": vars(args), "rows": rows,
                                                  "median_speedup_per_mac": med},
          "\n".join(md))


if __name__ == "__main__":
    main()
