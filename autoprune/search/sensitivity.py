"""Sensitivity scans: validation accuracy after pruning one layer (or one coupling group) alone.

Fine mode prunes one conv / linear weight at a time by magnitude; channel mode removes the
lowest-importance channels of one coupling group, then recalibrates batch-norm statistics.
Results are cached on disk, keyed by the weights, the data fingerprint and the settings.

Example:
    >>> df = sensitivity_scan(model, data, ScanSettings(mode="fine"))   # doctest: +SKIP
    >>> est = AdditiveEstimator(df, dense_acc=93.4)                     # doctest: +SKIP
    >>> est.predict({"features.0.weight": 0.5, ...})                    # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from autoprune.cache import atomic_path, cache_dir, hash_key, hash_state_dict
from autoprune.data import DataBundle, StreamSplit
from autoprune.engine.groups import coupling_groups
from autoprune.engine.metrics import count_macs, count_nonzero, layer_table
from autoprune.engine.prune import channel_prune, fine_grained_prune
from autoprune.errors import ConfigError
from autoprune.train import default_device, evaluate, recalibrate_bn

__all__ = ["ScanSettings", "ScanResult", "sensitivity_scan", "scan_path", "AdditiveEstimator",
           "DEFAULT_RATIOS"]

DEFAULT_RATIOS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
COLUMNS = ["layer", "ratio", "accuracy", "accuracy_no_recal", "params", "macs"]


@dataclass(frozen=True)
class ScanSettings:
    """How to scan.

    Args:
        mode: ``fine`` (one weight tensor at a time, ratio = sparsity) or ``channel`` (one
            coupling group at a time, ratio = fraction of channels removed).
        ratios: The grid of ratios, each in [0, 1).
        val_limit: Size of the fixed validation subset every point is scored on.
        recalibrate: Training images used to recalibrate batch-norm statistics after channel
            pruning (forward only); 0 turns it off. Ignored in fine mode.
        jobs: 1 runs in this process on all torch threads; N > 1 runs N joblib processes of
            one thread each, over layers; 0 (default) = one process per CPU core on CPU,
            which measured ~6 % faster than threads for the default model (bench/scan.py),
            and 1 on CUDA.
    """

    mode: str = "fine"
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    val_limit: int = 2000
    recalibrate: int = 512
    jobs: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("fine", "channel"):
            raise ConfigError(f"scan mode must be 'fine' or 'channel', got {self.mode!r}.")
        bad = [r for r in self.ratios if not 0.0 <= r < 1.0]
        if bad or not self.ratios:
            raise ConfigError(f"scan ratios must be a non-empty list in [0, 1), got bad {bad}.")
        if self.val_limit <= 0:
            raise ConfigError(f"scan val_limit must be a positive number of validation images, "
                              f"got {self.val_limit}.")
        if self.jobs < 0:
            raise ConfigError(f"scan jobs must be >= 0 (0 = one process per core), got "
                              f"{self.jobs}.")
        if self.recalibrate < 0:
            raise ConfigError(f"scan recalibrate must be >= 0, got {self.recalibrate}.")
        object.__setattr__(self, "ratios", tuple(sorted(float(r) for r in self.ratios)))


@dataclass
class ScanResult:
    """A scan's tidy table plus the dense reference and how it was obtained."""

    table: pd.DataFrame
    dense_acc: float
    settings: ScanSettings
    seconds: float
    cache_hit: bool
    path: str
    compute_seconds: float = float("nan")  # what computing it took, also on a cache hit


def _scan_key(model: nn.Module, data: DataBundle, settings: ScanSettings,
              input_size: tuple[int, ...]) -> str:
    s = asdict(settings)
    s.pop("jobs")  # how it runs does not change what it finds
    return hash_key("scan", hash_state_dict(model), repr(model), data.fingerprint, s,
                    list(input_size))


def scan_path(model: nn.Module, data: DataBundle, settings: ScanSettings) -> Path:
    """Where the scan of these weights, data and settings is cached."""
    return _cache_file(settings, _scan_key(model, data, settings, data.input_size))


def _cache_file(settings: ScanSettings, key: str) -> Path:
    return cache_dir("scans") / f"{settings.mode}-{key}.json"


def _checksum(rows: list) -> str:
    return hashlib.sha1(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        ok = entry["key"] == key and entry["checksum"] == _checksum(entry["rows"])
    except (ValueError, KeyError, TypeError, OSError):
        ok = False
    if not ok:
        warnings.warn(f"Scan cache entry {path} is corrupted; recomputing.", stacklevel=3)
        return None
    return entry


def _write_cache(path: Path, entry: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(entry))


def sensitivity_scan(
    model: nn.Module,
    data: DataBundle,
    settings: ScanSettings | None = None,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    force: bool = False,
) -> ScanResult:
    """Scan every prunable weight (fine) or coupling group (channel); cached on disk.

    Returns:
        A :class:`ScanResult` whose table has one row per (layer, ratio): ``accuracy`` on the
        validation subset, ``accuracy_no_recal`` (channel mode: before BN recalibration),
        and the whole model's ``params`` (nonzero) and ``macs`` at that point.
    """
    settings = settings or ScanSettings()
    input_size = data.input_size
    model = copy.deepcopy(model).cpu().eval()
    key = _scan_key(model, data, settings, input_size)
    path = _cache_file(settings, key)
    start = time.perf_counter()
    entry = None if force else _read_cache(path, key)
    if entry is not None:
        return ScanResult(pd.DataFrame(entry["rows"], columns=COLUMNS), entry["dense_acc"],
                          settings, time.perf_counter() - start, True, str(path),
                          entry.get("seconds", float("nan")))

    device = torch.device(device) if device is not None else default_device()
    dense_acc = evaluate(model, data, "val", limit=settings.val_limit, device=device)
    targets = _targets(model, settings, input_size)
    # each layer's rows are kept as soon as they exist: a killed scan loses at most the
    # layers in progress
    parts = path.with_suffix(".parts")
    parts.mkdir(exist_ok=True)
    done = {t: _read_part(parts, key, t) for t in targets}
    todo = [t for t in targets if done[t] is None or force]
    chunks = [[(t, r) for r in settings.ratios if r > 0] for t in todo]
    jobs = settings.jobs or (min(os.cpu_count() or 1, len(todo)) if device.type == "cpu"
                             else 1)
    if jobs > 1 and device.type == "cpu":
        from joblib import Parallel, delayed

        # numpy arrays above max_nbytes reach the workers as one shared memory map, not as a
        # copy per layer: the images are sent once and shared by every process
        shared = _as_numpy(data)
        results = Parallel(n_jobs=jobs, return_as="generator", max_nbytes="256K")(
            delayed(_scan_chunk_shared)(model, shared, settings, chunk) for chunk in chunks)
    else:
        results = (_scan_chunk(model, data, settings, chunk, device, False) for chunk in chunks)
    for target, chunk_rows in tqdm(zip(todo, results), total=len(todo),
                                   desc=f"scan ({settings.mode}, {max(jobs, 1)} process(es))",
                                   unit="layer", disable=not progress, leave=False):
        _write_part(parts, key, target, chunk_rows)
        done[target] = chunk_rows
    rows = [row for t in targets for row in done[t]]
    dense_params, dense_macs = count_nonzero(model), count_macs(model, input_size)
    rows += [[t, 0.0, dense_acc, dense_acc, dense_params, dense_macs] for t in targets]
    rows.sort(key=lambda r: (targets.index(r[0]), r[1]))
    seconds = time.perf_counter() - start
    _write_cache(path, {"key": key, "dense_acc": dense_acc, "rows": rows,
                        "checksum": _checksum(rows), "seconds": seconds})
    for f in parts.glob("*.json"):
        f.unlink()
    parts.rmdir()
    return ScanResult(pd.DataFrame(rows, columns=COLUMNS), dense_acc, settings, seconds, False,
                      str(path), seconds)


def _part_path(parts: Path, target: str) -> Path:
    return parts / f"{hashlib.sha1(target.encode()).hexdigest()[:16]}.json"


def _read_part(parts: Path, key: str, target: str) -> list | None:
    path = _part_path(parts, target)
    try:
        entry = json.loads(path.read_text())
        if entry["key"] == key and entry["target"] == target and \
                entry["checksum"] == _checksum(entry["rows"]):
            return entry["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_part(parts: Path, key: str, target: str, rows: list) -> None:
    _write_cache(_part_path(parts, target), {"key": key, "target": target, "rows": rows,
                                             "checksum": _checksum(rows)})


def _targets(model: nn.Module, settings: ScanSettings, input_size) -> list[str]:
    if settings.mode == "fine":
        return [f"{r.name}.weight" for r in layer_table(model, input_size)]
    x = torch.zeros(1, *input_size)
    return [g.id for g in coupling_groups(model, x) if g.prunable]


def _as_numpy(data: DataBundle) -> DataBundle:
    """In-memory splits as numpy arrays (joblib shares them as memory maps); streamed splits
    as they are (each scan process reads the files itself, without DataLoader workers)."""
    def split(s):
        if isinstance(s, StreamSplit):
            return dataclasses.replace(s, workers=0)
        return type(s)(s.images.numpy(), s.labels.numpy())

    return dataclasses.replace(data, train=split(data.train), val=split(data.val),
                               test=split(data.test))


def _scan_chunk_shared(model, shared: DataBundle, settings, work) -> list[list]:
    """A scan worker process: the data arrive as (read-only) memory maps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only maps: torch only reads them

        def split(s):
            if isinstance(s, StreamSplit):
                return s
            return type(s)(torch.from_numpy(s.images), torch.from_numpy(s.labels))

        data = dataclasses.replace(shared, train=split(shared.train), val=split(shared.val),
                                   test=split(shared.test))
    return _scan_chunk(model, data, settings, work, "cpu", False, threads=1)


def _scan_chunk(model, data, settings, work, device, progress, threads=None) -> list[list]:
    if threads is not None:
        torch.set_num_threads(threads)
    device = torch.device(device)
    input_size = data.input_size
    rows = []
    if settings.mode == "fine":
        table = {f"{r.name}.weight": r for r in layer_table(model, input_size)}
        dense_params, dense_macs = count_nonzero(model), count_macs(model, input_size)
        probe = copy.deepcopy(model).to(device)
        params = dict(probe.named_parameters())
    x = torch.zeros(1, *input_size)
    for target, ratio in tqdm(work, desc=f"scan ({settings.mode})", disable=not progress,
                              leave=False, unit="pt"):
        if settings.mode == "fine":
            w = params[target]
            saved = w.detach().clone()
            fine_grained_prune(w.data, ratio)
            acc = evaluate(probe, data, "val", limit=settings.val_limit, device=device)
            w.data.copy_(saved)
            info = table[target]
            zeroed = round(w.numel() * ratio)
            rows.append([target, ratio, acc, acc, dense_params - zeroed,
                         int(round(dense_macs - info.dense_macs * zeroed / w.numel()))])
        else:
            pruned = channel_prune(model, {target: 1.0 - ratio}, x)
            raw = evaluate(pruned, data, "val", limit=settings.val_limit, device=device)
            acc = raw
            if settings.recalibrate:
                recalibrate_bn(pruned, data, images=settings.recalibrate, device=device)
                acc = evaluate(pruned, data, "val", limit=settings.val_limit, device=device)
            pruned.cpu()
            rows.append([target, ratio, acc, raw, count_nonzero(pruned),
                         count_macs(pruned, input_size)])
    return rows


class AdditiveEstimator:
    """Predict a policy's accuracy from a scan: dense accuracy minus the summed drops.

    Each layer's drop is linearly interpolated between scanned ratios (and extrapolated
    flat beyond the last). It ignores interactions between layers, so treat it as a cheap
    filter, not a score.
    """

    def __init__(self, table: pd.DataFrame, dense_acc: float) -> None:
        self.dense_acc = float(dense_acc)
        self.curves = {
            layer: (g["ratio"].to_numpy(float), g["accuracy"].to_numpy(float))
            for layer, g in table.sort_values("ratio").groupby("layer", sort=False)
        }

    def drop(self, layer: str, ratio: float) -> float:
        if layer not in self.curves:
            raise ConfigError(f"Layer {layer!r} is not in the scan (known: "
                              f"{sorted(self.curves)}).")
        r, acc = self.curves[layer]
        return max(0.0, self.dense_acc - float(np.interp(ratio, r, acc)))

    def predict(self, ratios: dict[str, float]) -> float:
        """Estimated accuracy of pruning each layer to its ratio (sparsity or channels
        removed), all at once."""
        return self.dense_acc - sum(self.drop(k, v) for k, v in ratios.items())
