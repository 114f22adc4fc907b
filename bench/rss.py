"""Memory over a long search: peak RSS after each of 200 trials of a tiny model.

A CNN (width 0.5) on 6,000 real Fashion-MNIST training images, 5-step proxy, one process. RSS
is read from /proc/self/status after every trial. Flat means no leak per trial.

    .venv/bin/python bench/rss.py [--trials 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _common import OUT, write  # noqa: E402


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    import autoprune.search.study as study_mod
    from autoprune.search import PruneSearch
    from autoprune.search.config import config_from_dict

    samples: list[float] = []
    real_call = study_mod.Objective.__call__

    def measured(self, trial):
        out = real_call(self, trial)
        samples.append(rss_mib())
        return out

    study_mod.Objective.__call__ = measured
    raw = {"model": {"name": "cnn", "width": 0.5},
           "data": {"name": "fashion-mnist", "val_size": 1000, "pad_to": 0, "train_limit": 6000},
           "baseline": {"epochs": 1, "optimizer": "adamw", "lr": 0.003},
           "search": {"mode": "channel", "trials": args.trials, "prior": "uniform",
                      "sweep": True, "sampler": "random"},
           "budget": {"size": 0.5},
           "proxy": {"steps": 5, "val_limit": 500, "recalibrate": 128, "confirm_top": 1,
                     "confirm_seeds": 2, "confirm_val": 500},
           "scan": {"ratios": [0.0, 0.5], "val_limit": 300},
           "latency": {"min_run_time": 0.02}}
    with tempfile.TemporaryDirectory() as tmp:
        raw["search"]["storage"] = f"sqlite:///{Path(tmp) / 'rss.db'}"
        t0 = time.perf_counter()
        PruneSearch(config_from_dict(raw, "rss"), progress=False).run()
        wall = time.perf_counter() - t0
    first10 = sum(samples[:10]) / 10
    last10 = sum(samples[-10:]) / 10
    half = len(samples) // 2
    mid10 = sum(samples[half:half + 10]) / 10
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(1, len(samples) + 1), samples)
    ax.set_xlabel("trial")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"RSS after each trial ({len(samples)} trials, one process)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "rss.png", dpi=110)
    result = {"trials": len(samples), "rss_mib": samples, "first10_mean": first10,
              "last10_mean": last10, "peak": max(samples), "wall_s": wall}
    md = ["# Memory over a long search", "",
          f"{len(samples)} trials of a CNN (width 0.5) on 6,000 Fashion-MNIST images, one "
          f"process, RSS after each trial (`/proc/self/status`).", "",
          "| measure | MiB |", "|---|---|",
          f"| mean of trials 1–10 | {first10:.1f} |", f"| mean of the last 10 | {last10:.1f} |",
          f"| growth | {last10 - first10:+.1f} |",
          f"| mean of trials {half + 1}–{half + 10} | {mid10:.1f} |",
          f"| growth over the second half | {last10 - mid10:+.1f} |",
          f"| peak | {max(samples):.1f} |", "",
          f"Wall time {wall:.0f} s. ![rss](rss.png)", "",
          "Every trial ends with `release_heap()` (glibc `malloc_trim(0)`). Without it the "
          "same run grew +203.6 MiB (938.8 -> 1142.5, commit fbb2d89); a diagnosis run showed "
          "why: after 100 trials RSS was 1005 MiB, one `malloc_trim(0)` brought it back to "
          "851 MiB, and between trials 20 and 80 the only Python objects that accumulated were "
          "Optuna's cached trials (60 FrozenTrials, 300 distributions): freed memory kept by "
          "the allocator, not a leak. What remains is a rise over the first ~100 trials that "
          "then levels off; its cause is not identified (the Python objects that grow, "
          "Optuna's cached trials, weigh a few KB each).", "",
          f"Command: `.venv/bin/python bench/rss.py --trials {args.trials}`"]
    write("rss", result, "\n".join(md))


if __name__ == "__main__":
    main()
