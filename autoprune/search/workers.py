"""Several processes on one study: worker processes, and recovery of a dead worker's trials.

A coordinator (``autoprune search --workers N``) prepares everything once — baseline, scan,
dense reference, warm-start baselines — then starts N ``autoprune worker`` processes that only
run trials, waits for them, and confirms the front once. Workers on other machines join with
``autoprune worker STUDY --storage URL``.

A trial records which process runs it (host and pid). A RUNNING trial is failed and queued
again only when its process is known to be dead: on this host, when the pid is gone; on an
RDB storage, also by Optuna's heartbeat (a worker that stops beating for ``grace_period``
seconds). No process ever fails a trial whose process is alive.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import optuna

from autoprune.errors import ConfigError
from autoprune.search.config import StudyConfig
from autoprune.search.record import StudyRecord, TrialView

__all__ = ["pid_alive", "recover_dead_trials", "launch_workers", "threads_per_worker",
           "worker_devices",
           "HEARTBEAT_INTERVAL", "GRACE_PERIOD"]

HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 40
MAX_RESTARTS = 3


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _dead(view: TrialView, one_process: bool) -> bool:
    w = view.worker
    if w is None:
        # started, but its process had not recorded itself yet; only a one-process storage
        # can be sure nobody else is running it
        return one_process
    return w["host"] == socket.gethostname() and w["pid"] != os.getpid() and \
        not pid_alive(w["pid"])


def recover_dead_trials(study: optuna.Study, *, one_process: bool) -> list[int]:
    """Fail every RUNNING trial whose process is dead and queue it again; returns their
    numbers. With ``one_process`` (SQLite), a live other process is an error instead."""
    record = StudyRecord(study)
    recovered = []
    for view in record.views((optuna.trial.TrialState.RUNNING,)):
        w = view.worker
        if one_process and w and w["host"] == socket.gethostname() and \
                w["pid"] != os.getpid() and pid_alive(w["pid"]):
            raise ConfigError(
                f"Study {study.study_name!r} is being searched by process {w['pid']} (trial "
                f"{view.number}); a SQLite study takes one process. Wait for it, or use "
                f"--workers N / --storage journal:FILE for several processes.")
        if _dead(view, one_process):
            study.tell(view.number, state=optuna.trial.TrialState.FAIL)
            record.retry(view)
            recovered.append(view.number)
    return recovered


def threads_per_worker(workers: int) -> int:
    """Torch threads per worker so that N workers do not oversubscribe the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def launch_workers(cfg: StudyConfig, workers: int, *, device: str | None = None,
                   poll: float = 2.0) -> list[int]:
    """Start ``workers`` worker processes on the study and wait for them; a worker that dies
    has its trials recovered and is replaced while the study still needs trials. Returns the
    exit codes of the last process in each slot."""
    if not cfg.source:
        raise ConfigError("Several workers need the study as a TOML file (the workers read "
                          "it); this configuration was built in memory.")
    cmd = [sys.executable, "-m", "autoprune", "worker", cfg.source, "--quiet",
           "--storage", cfg.storage_url, "--threads", str(threads_per_worker(workers))]
    for o in cfg.overrides:
        cmd += ["--set", o]
    cmds = [cmd + (["--device", d] if d else []) for d in worker_devices(workers, device)]
    procs = [subprocess.Popen(c) for c in cmds]
    codes, restarts = [0] * workers, [0] * workers
    while any(p is not None for p in procs):
        time.sleep(poll)
        for i, p in enumerate(procs):
            if p is None or p.poll() is None:
                continue
            codes[i] = p.returncode
            procs[i] = None
            if p.returncode != 0 and restarts[i] < MAX_RESTARTS and _needs_trials(cfg):
                from autoprune.search.storage import open_storage

                restarts[i] += 1
                study = optuna.load_study(study_name=cfg.name,
                                          storage=open_storage(cfg.storage_url))
                recover_dead_trials(study, one_process=False)
                procs[i] = subprocess.Popen(cmds[i])
    return codes


def worker_devices(workers: int, device: str | None) -> list[str | None]:
    """The device of each worker: with ``cuda`` (or no device, CUDA present) and several
    GPUs, worker ``i`` gets ``cuda:i`` (round robin); an explicit ``cuda:N`` or ``cpu`` is
    given to every worker as is."""
    import torch

    wants_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    count = torch.cuda.device_count() if wants_cuda else 0
    if count > 1:
        return [f"cuda:{i % count}" for i in range(workers)]
    return [device] * workers


def _needs_trials(cfg: StudyConfig) -> bool:
    from autoprune.search.optimize import counted_trials
    from autoprune.search.storage import open_storage

    study = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.storage_url))
    return counted_trials(study) < cfg.search.trials
