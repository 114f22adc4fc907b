"""The ``autoprune`` command line.

Every command turns bad input into one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

from autoprune.errors import AutopruneError, ConfigError, StudyStateError

EXIT_USAGE = 2


def _input_size(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--input-size must look like C,H,W (e.g. 3,32,32), got {text!r}") from None
    if min(c, h, w) <= 0:
        raise argparse.ArgumentTypeError(f"--input-size values must be positive, got {text!r}")
    return c, h, w


def _add_model_args(p: argparse.ArgumentParser, default_width: float = 0.25) -> None:
    p.add_argument("--model", default="vgg",
                   help="vgg | resnet20 | mobilenetv2 | cnn | torchvision:NAME | "
                        "package.module:function (default: vgg)")
    p.add_argument("--width", type=float, default=default_width,
                   help=f"channel width multiplier of built-in models (default: {default_width})")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist | mnist | cifar10 | imagefolder:PATH | "
                        "package.module:function (default: fashion-mnist)")
    p.add_argument("--data-root", default=None,
                   help="directory holding the data files (default: $AUTOPRUNE_DATA, then "
                        "/usr/share/datasets/fashion-mnist, then download when online)")
    p.add_argument("--val-size", type=int, default=5000,
                   help="validation images carved out of the training set (default: 5000)")
    p.add_argument("--pad-to", type=int, default=32,
                   help="zero-pad images to this square size; 0 keeps them (default: 32)")


def _device(text: str) -> str:
    import re

    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"--device must be cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda"):
        import torch

        n = torch.cuda.device_count()
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= n:
            raise argparse.ArgumentTypeError(
                f"--device {text}: this machine has {n} CUDA device(s)")
    return text


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=_device, default=None,
                   help="cpu | cuda | cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true",
                   help="on bad input, show the full traceback instead of one sentence")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoprune",
        description="Search per-layer pruning policies for PyTorch CNNs: Optuna proposes "
                    "per-layer sparsities or channel keep-ratios under a size, MACs or latency "
                    "budget, a fast proxy scores them, and you get the Pareto front, plots and "
                    "an exported policy with a pruned checkpoint.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("profile", help="per-layer table of params and MACs, plus totals",
                       description="Print each conv/linear layer's shape, params and MACs "
                                   "(share of total), totals, size in MiB and latency.")
    _add_model_args(p, default_width=1.0)
    p.add_argument("--input-size", type=_input_size, default=(3, 32, 32),
                   help="C,H,W of one input image (default: 3,32,32)")
    p.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default: 10)")
    p.add_argument("--latency", action="store_true",
                   help="also measure latency (batch 1, all threads)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("train", help="train (or load from cache) the dense baseline",
                       description="Train the dense baseline with the default recipe and cache "
                                   "it, keyed by model, data and recipe; a second call loads it.")
    _add_model_args(p)
    _add_data_args(p)
    _add_common(p)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--lr", type=float, default=None, help="override the recipe's peak lr")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--force", action="store_true", help="retrain even when cached")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("scan", help="per-layer / per-group sensitivity scan, cached, plotted",
                       description="Validation accuracy after pruning one layer (fine) or one "
                                   "coupling group (channel) alone at each ratio of a grid. "
                                   "Writes scan_<mode>.csv and PNG plots to reports/<study>/.")
    _add_study_args(p)
    p.add_argument("--mode", choices=["fine", "channel"], default=None,
                   help="what to scan (default: the study's mode; hybrid scans channels)")
    p.add_argument("--jobs", type=int, default=None,
                   help="1 = one process on all torch threads; N = N joblib processes; "
                        "0 = one per core on CPU (default)")
    p.add_argument("--val-limit", type=int, default=None,
                   help="validation images per point (default: the study's, 2000)")
    p.add_argument("--force", action="store_true", help="recompute even when cached")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("search", help="run (or continue) a study: the Optuna policy search",
                       description="Run the study in a TOML file: baseline, scan, warm-start "
                                   "heuristics, proxy-scored trials under the budget, "
                                   "confirmation of the front with fresh seeds. Re-running "
                                   "continues the study. Writes studies/<name>/pareto.csv.")
    _add_study_args(p)
    p.add_argument("--budget", action="append", default=[], metavar="KIND=VALUE",
                   help="size=0.25 | size_mib=0.5 | macs=0.5 | macs_abs=2e7 | latency=0.5 | "
                        "latency_ms=1.8 (repeatable; replaces the file's budgets)")
    p.add_argument("--trials", type=int, default=None, help="total trials of the study")
    p.add_argument("--timeout", default=None, help="stop after e.g. 90s, 20m, 1h")
    p.add_argument("--mode", choices=["fine", "channel", "hybrid"], default=None)
    p.add_argument("--sampler", choices=["tpe", "nsga2", "random"], default=None)
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL: sqlite:///FILE (default, one process), "
                        "journal:FILE (several processes), postgresql://...")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this machine sharing the study (default 1); "
                        "more than one uses studies/<name>/journal.log unless --storage "
                        "names a journal or PostgreSQL storage")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("worker", help="join a running study from this or another machine",
                       description="Run trials of a study that 'autoprune search' started, "
                                   "until it has search.trials; the coordinator confirms the "
                                   "front. Across machines use a PostgreSQL storage; a "
                                   "worker whose heart stops beating has its trial retried by "
                                   "another.")
    _add_study_args(p)
    p.add_argument("--storage", required=True,
                   help="the study's storage URL (journal:FILE or postgresql://...)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of this worker (default: all cores)")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("finalize", help="full fine-tune of chosen front points, TEST accuracy",
                       description="Fine-tune the chosen points (default: the best and the "
                                   "knee of the confirmed front, plus every warm-start "
                                   "baseline) with the study's finalize recipe; score them on "
                                   "the TEST split and measure their latency. Finalized points "
                                   "are skipped on re-runs.")
    _add_study_args(p)
    p.add_argument("--trials", default=None,
                   help="comma-separated trial numbers instead of the default points")
    p.add_argument("--no-baselines", action="store_true", help="do not finalize baselines")
    p.add_argument("--force", action="store_true", help="redo finalized points")
    p.set_defaults(func=_cmd_finalize)

    p = sub.add_parser("report", help="Pareto plots, tables, report.md and report.html",
                       description="Write reports/<study>/: Pareto plots (accuracy vs size, "
                                   "latency, MACs), scan plots, weight histograms, "
                                   "pareto.csv, report.md and a self-contained report.html.")
    _add_study_args(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("export", help="policy JSON, sparsity dict and pruned checkpoint",
                       description="Write policy.json, sparsity_dict.json / "
                                   "channel_ratios.json and the fine-tuned pruned model.pt "
                                   "for one point of the confirmed front.")
    _add_study_args(p)
    p.add_argument("--trial", type=int, default=None, help="export this trial")
    p.add_argument("--pick", choices=["best", "knee", "smallest"], default="best",
                   help="which point (default: best, the study's pick at the full budget: "
                        "best confirmed accuracy, or in channel mode confirmed accuracy plus "
                        "the scan's estimate, see proxy.pick_by)")
    p.add_argument("--max-drop", type=float, default=None,
                   help="with --pick smallest: largest accuracy drop from dense, in points")
    p.add_argument("--out", default=None, help="directory (default: reports/<study>/export)")
    p.add_argument("--format", default="pt",
                   help="comma-separated: pt (autoprune checkpoint, always written), onnx "
                        "(opset 18, needs autoprune[onnx]), torchscript, pt2 (torch.export); "
                        "each file is loaded back and compared with the PyTorch model on 64 "
                        "test images (default: pt)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench", help="does the search beat the heuristics? fronts vs fronts",
                       description="Run (or continue) the study, then evaluate every heuristic "
                                   "of its mode on a ladder of budget levels and the searched "
                                   "front with the same fine-tune on the TEST split over several "
                                   "seeds; compare fronts (iso-accuracy cost, per-level "
                                   "difference, hypervolume), the proxy's rank fidelity, "
                                   "speedups measured against dense, and the cost of each "
                                   "stage. Writes reports/benchmarks/<study>/. Every evaluation "
                                   "is cached: a killed run continues where it stopped.")
    _add_study_args(p)
    p.add_argument("--levels", default=None,
                   help="budget levels as fractions of the budget, e.g. 0.4,0.55,0.7,0.85,1 "
                        "(default: 5 levels from search.floor to 1)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tune seeds per point (default 3)")
    p.add_argument("--rank-policies", type=int, default=20,
                   help="policies of the rank-fidelity check (default 20)")
    p.add_argument("--rank-seed", type=int, default=0,
                   help="seed of the rank-fidelity check's draws from the space (default 0; "
                        "another seed: a fresh set of policies, to check a τ out of sample)")
    p.add_argument("--latency-repeats", type=int, default=3,
                   help="times each point is timed alternately with dense, per batch size "
                        "(default 3; near a latency cap on a shared machine a 3-repeat median "
                        "can flip the verdict: reports/benchmarks/retime_climb.md)")
    p.add_argument("--rank-steps", default=None, metavar="N,N",
                   help="further proxy fine-tune lengths scored on the rank-fidelity "
                        "policies, each with its Kendall τ, e.g. 15,150 (default: none)")
    p.add_argument("--rank-images", default=None, metavar="N,N",
                   help="further numbers of validation images (the first N) the rank-fidelity "
                        "policies' proxy is scored on, each with its Kendall τ (default: none)")
    p.add_argument("--rank-proxy-seeds", default=None, metavar="S,S",
                   help="further fine-tune seeds the rank-fidelity proxy and every "
                        "--rank-steps / --rank-images variant are scored with again, each with "
                        "its Kendall τ: does a τ survive a fresh seed? (default: none)")
    p.add_argument("--finalize-steps", type=int, default=None,
                   help="size the fine-tune: exactly N optimiser steps for every point "
                        "(default: the study's finalize epochs)")
    p.add_argument("--quick", action="store_true",
                   help="a few points only (3 levels, 2 seeds, 6 rank policies): checks that "
                        "the benchmark runs, measures nothing worth reporting")
    p.add_argument("--out", default=None, help="directory (default: reports/benchmarks/<study>)")
    p.add_argument("--rewrite", action="store_true",
                   help="evaluate and measure nothing: recompute the comparisons of the "
                        "results.json already in --out from its points and rewrite the report "
                        "and the headline table (after the comparison itself changed)")
    p.set_defaults(func=_cmd_bench)
    return parser


def _add_study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", nargs="?", default="studies/demo.toml",
                   help="study TOML file (default: studies/demo.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any study key, e.g. --set proxy.steps=50 (repeatable)")
    _add_common(p)


def _print_advice(command: str, cfg) -> None:
    """The study's notes on valid but probably unintended settings, on stderr."""
    for note in cfg.advice():
        print(f"autoprune {command}: note: {note}", file=sys.stderr)


def load_study(args: argparse.Namespace, extra: list[str] | None = None):
    from autoprune.search.config import load_config

    return load_config(args.study, list(args.overrides) + list(extra or []))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch_pruning")
    try:
        return int(args.func(args) or 0)
    except AutopruneError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"autoprune {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy") and not getattr(args, "debug", False):
            # a locked or unreachable study database: finished trials are safe in it
            first = str(exc).splitlines()[0]
            print(f"autoprune {args.command}: error: the study storage cannot be used right "
                  f"now ({first}); if another process holds a SQLite study, wait for it or use "
                  f"--storage journal:FILE or a PostgreSQL URL for several processes. Finished "
                  f"trials are kept.", file=sys.stderr)
            return EXIT_USAGE
        raise
    except KeyboardInterrupt:
        print(f"autoprune {args.command}: interrupted.", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- commands


def _cmd_profile(args: argparse.Namespace) -> int:
    from autoprune.engine.metrics import count_macs, layer_table, measure_latency, summarize
    from autoprune.models import ModelSpec, build_model, check_input_size

    spec = ModelSpec(args.model, args.width, args.input_size[0], args.num_classes)
    model = build_model(spec).eval()
    check_input_size(model, spec, args.input_size)
    rows = layer_table(model, args.input_size)
    totals = summarize(model, args.input_size)
    total_macs = count_macs(model, args.input_size)
    out = {
        "model": spec.to_dict(),
        "input_size": list(args.input_size),
        "layers": [{"name": r.name, "kind": r.kind, "shape": list(r.shape), "params": r.params,
                    "macs": r.macs, "macs_share": r.macs / total_macs if total_macs else 0.0}
                   for r in rows],
        "totals": totals,
    }
    if args.latency:
        out["latency"] = measure_latency(model, args.input_size).to_dict()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'layer':<28}{'kind':<8}{'shape':<22}{'params':>12}{'MACs':>14}{'share':>8}")
    for r in out["layers"]:
        print(f"{r['name']:<28}{r['kind']:<8}{str(tuple(r['shape'])):<22}{r['params']:>12,}"
              f"{r['macs']:>14,}{100 * r['macs_share']:>7.1f}%")
    print(f"total: {totals['params'] / 1e6:.2f} M params, {totals['size_mib']:.2f} MiB "
          f"(32-bit), {totals['macs'] / 1e6:.0f} M MACs")
    if args.latency:
        lat = out["latency"]
        print(f"latency: {lat['median_ms']:.3f} ms median (IQR {lat['iqr_ms']:.3f} ms), batch "
              f"{lat['batch_size']}, {lat['threads']} threads, {lat['device']}")
    return 0


def data_spec_from_args(args: argparse.Namespace):
    from autoprune.data import DataSpec

    return DataSpec(args.data, root=args.data_root, val_size=args.val_size,
                    pad_to=args.pad_to or None)


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from autoprune.data import load_data
    from autoprune.engine.metrics import measure_latency, summarize
    from autoprune.models import ModelSpec
    from autoprune.train import default_recipe, get_baseline

    if args.epochs is not None and args.epochs <= 0:
        raise ConfigError(f"--epochs must be a positive integer, got {args.epochs}.")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise ConfigError(f"--lr must be a positive number, got {args.lr}.")
    ModelSpec(args.model, args.width)  # checks the model arguments before loading any data
    data_spec = data_spec_from_args(args)
    data = load_data(data_spec)
    spec = ModelSpec(args.model, args.width, data.in_channels, data.num_classes)
    recipe = default_recipe(spec)
    recipe = replace(recipe, seed=args.seed,
                     epochs=recipe.epochs if args.epochs is None else args.epochs,
                     lr=recipe.lr if args.lr is None else args.lr)
    base = get_baseline(spec, data_spec, recipe, data=data, device=args.device,
                        force=args.force, progress=not args.quiet)
    totals = summarize(base.model, data.input_size)
    lat = measure_latency(base.model, data.input_size, device="cpu")
    how = "cache hit" if base.cache_hit else f"trained in {base.train_seconds:.0f} s"
    print(f"baseline {spec.name} width {spec.width} on {data.name} ({how}): {base.path}")
    print(f"  test accuracy {base.test_acc:.2f} %  (validation {base.val_acc:.2f} %)")
    print(f"  size {totals['size_mib']:.3f} MiB ({totals['params']:,} params, 32-bit), "
          f"{totals['macs'] / 1e6:.2f} M MACs per image")
    print(f"  latency {lat.median_ms:.3f} ms median (IQR {lat.iqr_ms:.3f} ms), batch "
          f"{lat.batch_size}, {lat.threads} threads, {lat.device}")
    return 0


def _search_overrides(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.budget:
        from autoprune.search.budget import KINDS

        extra += [f"budget.{k}=" for k in KINDS]  # replaced, not merged
        for item in args.budget:
            key, sep, value = item.partition("=")
            if not sep or key not in KINDS:
                raise ConfigError(f"--budget must be KIND=VALUE with KIND in {tuple(KINDS)}, "
                                  f"got {item!r}.")
            extra.append(f"budget.{key}={value}")
    for opt, key in (("trials", "trials"), ("mode", "mode"), ("sampler", "sampler")):
        if getattr(args, opt) is not None:
            value = getattr(args, opt)
            extra.append(f"search.{key}={value if isinstance(value, int) else repr(value)}")
    if args.timeout is not None:
        extra.append(f"search.timeout={args.timeout!r}")
    if args.storage is not None:
        extra.append(f"search.storage={args.storage!r}")
    return extra


def _cmd_search(args: argparse.Namespace) -> int:
    from autoprune.search import PruneSearch

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}.")
    extra = _search_overrides(args)
    cfg = load_study(args, extra)
    if args.workers > 1 and args.storage is None and cfg.storage_url.startswith("sqlite") \
            and not (cfg.run_dir / "study.db").exists():
        cfg = load_study(args, extra + [f"search.storage={cfg.journal_url!r}"])
    _print_advice("search", cfg)
    search = PruneSearch(cfg, device=args.device, progress=not args.quiet)
    search.run(workers=args.workers)
    print(format_front(search))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from autoprune.search import PruneSearch

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}.")
    cfg = load_study(args, [f"search.storage={args.storage!r}"])
    PruneSearch(cfg, device=args.device, progress=not args.quiet).work(threads=args.threads)
    return 0


def format_front(search) -> str:
    cfg = search.cfg
    dense = search.record_.dense
    res = search.results_
    lines = [f"study {cfg.name}: {len(res)} trials ({int(res['feasible'].sum())} feasible), "
             f"storage {cfg.storage_url}",
             f"dense: val {dense.val_acc:.2f} %, {dense.size_mib:.3f} MiB, "
             f"{dense.macs / 1e6:.2f} M MACs, {dense.latency_ms:.3f} ms"]
    front = search.pareto_
    lines.append(f"confirmed Pareto front ({len(front)} points; proxy = search-time score, "
                 "confirmed = mean over fresh seeds on held-out validation images):")
    lines.append(f"  {'trial':>5} {'baseline':<17}{'proxy %':>8}{'confirmed %':>15}"
                 f"{'MiB':>8}{'x smaller':>10}{'MMACs':>8}{'ms':>8}")
    for _, r in front.iterrows():
        lines.append(f"  {int(r.trial):>5} {r.baseline or '-':<17}{r.proxy_acc:>8.2f}"
                     f"{r.confirmed_acc:>9.2f} ±{r.confirmed_std:4.2f}{r.size_mib:>8.3f}"
                     f"{1 / r.size_ratio:>10.2f}{r.macs / 1e6:>8.2f}{r.latency_ms:>8.3f}")
    from autoprune.workflow.report import level_table

    levels = level_table(search)
    if not levels.empty:
        lines.append("level by level (confirmed %; the best heuristic at each level vs the best "
                     "searched trial within the level's budget; pick: the one with "
                     f"{search.pick_rule_text()}):")
        for _, r in levels.iterrows():
            lines.append(f"  {r.iloc[0]:.3f} x budget: {r.iloc[1]:<15} {r.iloc[2]:>14}   "
                         f"searched {r.iloc[3]!s:>4} {r.iloc[4]:>14}   {r.iloc[5]:>6} pp   "
                         f"pick: {r.iloc[6]}")
    lines.append(f"front written to {cfg.run_dir / 'pareto.csv'}")
    return "\n".join(lines)


def _load_search(args: argparse.Namespace):
    from autoprune.search import PruneSearch

    return PruneSearch.load(load_study(args), device=args.device, progress=not args.quiet)


def _cmd_finalize(args: argparse.Namespace) -> int:
    from autoprune.workflow.finalize import finalize

    trials = None
    if args.trials:
        try:
            trials = [int(v) for v in args.trials.split(",")]
        except ValueError:
            raise ConfigError(f"--trials must be comma-separated integers, got "
                              f"{args.trials!r}.") from None
    search = _load_search(args)
    df = finalize(search, trials, baselines=not args.no_baselines, force=args.force)
    dense = search.record_.final_dense
    print(f"dense: test {dense.test_acc:.2f} %, {dense.size_mib:.3f} MiB, "
          f"{dense.latency_ms:.3f} ms ({dense.latency_setup})")
    for _, r in df.iterrows():
        print(f"trial {int(r.trial):>3} {r.baseline or 'searched':<17} test "
              f"{r.test_acc_before_ft:6.2f} -> {r.test_acc:6.2f} %  {r.size_mib:.3f} MiB "
              f"({r.x_smaller:.2f}x smaller)  {r.macs / 1e6:.2f} M MACs  "
              f"{r.latency_ms:.3f} ms ({r.speedup:.2f}x)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from autoprune.workflow.report import write_report

    out = write_report(_load_search(args))
    print(f"report written to {out}/ (report.html, report.md, pareto_*.png, pareto.csv)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from autoprune.workflow.export import check_formats, export_study

    if args.max_drop is not None and args.pick != "smallest":
        raise ConfigError("--max-drop goes with --pick smallest.")
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    check_formats(formats)
    info = export_study(_load_search(args), trial=args.trial, pick=args.pick,
                        max_drop=args.max_drop, out_dir=args.out, formats=formats)
    print(f"exported trial {info['trial']} (test accuracy {info['test_acc']:.2f} %):")
    for f in info["files"]:
        print(f"  {f}")
    for c in info["checks"]:
        opset = f", opset {c['opset']}" if c["opset"] else ""
        print(f"  {c['fmt']}{opset}: max |output - PyTorch output| = {c['max_abs_diff']:.2e} "
              f"on {c['inputs']} test images")
    print("load it with:\n" + "\n".join("  " + line for line in info["snippet"].splitlines()))
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from autoprune.engine.policy import get_mode
    from autoprune.search.workspace import Workspace
    from autoprune.workflow.report.figures import save_scan_plots

    extra = []
    if args.jobs is not None:
        extra.append(f"scan.jobs={args.jobs}")
    if args.val_limit is not None:
        extra.append(f"scan.val_limit={args.val_limit}")
    cfg = load_study(args, extra)
    mode = args.mode or get_mode(cfg.search.mode).scan
    ws = Workspace(cfg, device=args.device, progress=not args.quiet)
    base = ws.baseline
    res = ws.scan(mode, force=args.force)
    out = cfg.report_dir
    out.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(out / f"scan_{mode}.csv", index=False)
    plots = save_scan_plots(res.table, res.dense_acc, base.model, out, mode)
    how = "cache hit" if res.cache_hit else "computed"
    print(f"{mode} scan of {cfg.model.name} ({len(res.table['layer'].unique())} "
          f"{'layers' if mode == 'fine' else 'groups'} x {len(res.settings.ratios)} ratios, "
          f"{res.settings.val_limit} validation images): {how} in {res.seconds:.1f} s")
    print(f"  dense validation accuracy {res.dense_acc:.2f} %; table {out / f'scan_{mode}.csv'}")
    print("  plots: " + ", ".join(str(p) for p in plots))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from autoprune.search import PruneSearch
    from autoprune.workflow.bench import (
        QUICK,
        RANK_OPTIONS,
        BenchSettings,
        rewrite_bench,
        run_bench,
    )

    extra = [] if args.finalize_steps is None else [f"finalize.steps={args.finalize_steps}"]
    cfg = load_study(args, extra)
    if args.rewrite:
        out = Path(args.out) if args.out else Path("reports") / "benchmarks" / cfg.name
        record = scores = None
        try:  # the study's latency calibration, confirmed heuristic trials and pick scores,
            # where its storage is still here
            loaded = PruneSearch.load(cfg, device=args.device, progress=False)
            record = loaded.record_
            scores = dict(zip(loaded.results_["trial"].astype(int),
                              loaded.results_["pick_score"]))
        except StudyStateError:
            pass
        r = rewrite_bench(out, record, list(cfg.search.levels), scores)
        print(f"comparisons of {cfg.name} recomputed; {out}/report.md rewritten"
              + (f" (latency MACs cap {r['latency_macs_cap']:.3f} of dense)"
                 if r.get("latency_macs_cap") else ""))
        return 0
    settings = QUICK if args.quick else BenchSettings(
        seeds=tuple(2000 + i for i in range(args.seeds)), rank_policies=args.rank_policies,
        rank_seed=args.rank_seed, latency_repeats=args.latency_repeats)
    if args.levels:
        try:
            levels = tuple(float(v) for v in args.levels.split(","))
        except ValueError:
            raise ConfigError(f"--levels must be comma-separated fractions, got "
                              f"{args.levels!r}.") from None
        settings = replace(settings, levels=levels)
    for field, what in RANK_OPTIONS.items():
        value = getattr(args, field)
        if value:
            try:
                numbers = tuple(int(v) for v in value.split(","))
            except ValueError:
                raise ConfigError(f"--{field.replace('_', '-')} must be comma-separated whole "
                                  f"numbers of {what}, got {value!r}.") from None
            settings = replace(settings, **{field: numbers})
    out = Path(args.out) if args.out else Path("reports") / "benchmarks" / cfg.name
    _print_advice("bench", cfg)
    search = PruneSearch(cfg, device=args.device, progress=not args.quiet)
    results = run_bench(search, settings, out, progress=not args.quiet)
    print(f"benchmark of {cfg.name} written to {out}/ (report.md, results.json, fronts_*.png); "
          f"{results['evaluations_computed']} evaluations computed, the rest cached")
    def f(v):
        return "–" if v is None else f"{v:.3f}"

    for row in results["comparison"]["iso_accuracy"]:
        c = row["size"]
        best = c["best_heuristic"]
        print(f"  dense -{row['drop']:g} pp: size searched {f(c['costs']['searched'])}, best "
              f"heuristic {best or '–'} {f(c['costs'].get(best))}, ratio {f(c['ratio'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
