"""How many trials per second one PostgreSQL study sustains with many worker processes.

32 processes (by default) run a stub objective (no training: a short sleep and random values)
on one study through autoprune's own storage, trial records, warm-start queue and trial cap:
trials per second, every trial recorded once, the baselines queued once by the coordinator and
run once, the cap respected. Needs PostgreSQL: $AUTOPRUNE_TEST_POSTGRES, or the server binaries
of Debian's postgresql package (scripts/ensure_postgres.sh), from which a private server is
started on a temporary directory.

    .venv/bin/python bench/scale_workers.py [--workers 32] [--trials 2000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import time

from _common import write

from tests.helpers import private_postgres

BASELINES = ("uniform", "global_magnitude", "lamp", "erk", "sensitivity")


def worker(url: str, cap: int, seconds: float) -> None:
    import random

    import optuna

    from autoprune.search.record import TrialView
    from autoprune.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="scale", storage=open_storage(url, heartbeat=True))

    def objective(trial):
        TrialView(trial).set_worker(socket.gethostname(), os.getpid())
        trial.suggest_float("x", 0, 1)
        time.sleep(seconds)
        trial.set_constraint("size", -0.1)
        return random.random(), random.random()

    ts = optuna.trial.TrialState
    stop = optuna.study.MaxTrialsCallback(cap, states=(ts.COMPLETE, ts.PRUNED, ts.RUNNING))
    study.optimize(objective, n_trials=cap, callbacks=[stop])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--sleep", type=float, default=0.05)
    args = ap.parse_args()
    import optuna

    from autoprune.search.record import StudyRecord
    from autoprune.search.storage import open_storage

    with private_postgres("scale", max_connections=200) as url:
        study = optuna.create_study(study_name="scale", storage=open_storage(url),
                                    directions=["maximize", "minimize"])
        record = StudyRecord(study)
        for name in BASELINES:  # the coordinator queues them, once
            record.enqueue_baseline(name)
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=worker, args=(url, args.trials, args.sleep))
                 for _ in range(args.workers)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        wall = time.perf_counter() - t0
        trials = study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        numbers = [t.number for t in trials]
        names = [t.user_attrs.get("baseline") for t in complete if t.user_attrs.get("baseline")]
        starts = min(t.datetime_start for t in complete)
        ends = max(t.datetime_complete for t in complete)
        busy = (ends - starts).total_seconds()
        result = {
            "workers": args.workers, "cap": args.trials, "stub_sleep_s": args.sleep,
            "complete": len(complete), "states": {s: states.count(s) for s in set(states)},
            "unique_numbers": len(set(numbers)) == len(numbers),
            "baselines_run": sorted(names), "baselines_once": sorted(names) == sorted(BASELINES),
            "overshoot": len(complete) - args.trials, "wall_s": wall,
            "trials_per_s": len(complete) / busy, "exit_codes": [p.exitcode for p in procs],
        }
    md = [
        "# Scale check: many workers on one PostgreSQL study", "",
        f"{args.workers} worker processes, stub objective (sleep {args.sleep * 1000:.0f} ms, no "
        f"training), trial cap {args.trials}, autoprune's storage (heartbeat on), trial records "
        "and warm-start queue.", "",
        "| measure | value |", "|---|---|",
        f"| completed trials | {result['complete']} (cap {args.trials}, overshoot "
        f"{result['overshoot']}) |",
        f"| trial states | {result['states']} |",
        f"| every trial number once | {result['unique_numbers']} |",
        f"| baselines queued once and run once | {result['baselines_once']} |",
        f"| trials per second (first start to last completion) | "
        f"{result['trials_per_s']:.1f} |",
        f"| wall time incl. process start | {wall:.1f} s |",
        f"| worker exit codes | {sorted(set(result['exit_codes']))} |", "",
        f"Command: `.venv/bin/python bench/scale_workers.py --workers {args.workers} --trials "
        f"{args.trials}`",
    ]
    write("scale_workers", result, "\n".join(md))


if __name__ == "__main__":
    main()
