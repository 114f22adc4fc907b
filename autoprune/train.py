"""One train / fine-tune / evaluate implementation, used by every stage.

Example:
    >>> recipe = TrainRecipe(epochs=1)
    >>> train(model, bundle, recipe)                 # doctest: +SKIP
    >>> evaluate(model, bundle, "val")               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from autoprune.cache import atomic_torch_save, cache_dir, hash_key, safe_torch_load
from autoprune.data import DataBundle, DataSpec, load_data
from autoprune.errors import ConfigError
from autoprune.models import ModelSpec, build_model

__all__ = [
    "TrainRecipe",
    "Baseline",
    "default_device",
    "seed_everything",
    "train",
    "evaluate",
    "get_baseline",
    "baseline_path",
    "load_weights",
    "recalibrate_bn",
]

_OPTIMIZERS = ("sgd", "adamw")
_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass(frozen=True)
class TrainRecipe:
    """How to train or fine-tune.

    Args:
        epochs: Passes over the training split (ignored when ``steps`` is set).
        steps: Exact number of optimiser steps (used by the search's short fine-tune).
        batch_size: Training batch size.
        lr: Peak learning rate.
        momentum: SGD momentum (nesterov).
        weight_decay: L2 weight decay.
        optimizer: ``sgd`` or ``adamw``.
        schedule: ``onecycle``, ``cosine`` or ``constant``.
        label_smoothing: Cross-entropy label smoothing.
        seed: Seed of initialisation order and batch order.
        precision: ``fp32``, or mixed precision: ``bf16`` / ``fp16`` autocast of the forward
            pass (``fp16`` with a gradient scaler); evaluation always runs in fp32.
        channels_last: Train in the channels-last memory format (faster convolutions on
            recent GPUs with mixed precision).
    """

    epochs: int = 4
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.precision not in _PRECISIONS:
            raise ConfigError(f"precision must be one of {tuple(_PRECISIONS)}, got "
                              f"{self.precision!r}.")
        if self.optimizer not in _OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}.")
        if self.schedule not in _SCHEDULES:
            raise ConfigError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}.")
        if self.epochs < 0 or (self.steps is not None and self.steps < 0):
            raise ConfigError(f"epochs and steps cannot be negative, got {self.epochs}, "
                              f"{self.steps}.")
        if self.lr <= 0 or self.batch_size <= 0:
            raise ConfigError(f"lr and batch_size must be positive, got {self.lr}, "
                              f"{self.batch_size}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")

    def to_dict(self) -> dict:
        """The recipe's fields; the performance options only when not at their defaults, so
        the cache keys of fp32 recipes stay what they were before these options existed."""
        d = asdict(self)
        for key, default in (("precision", "fp32"), ("channels_last", False)):
            if d[key] == default:
                del d[key]
        return d


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)


def _make_scheduler(opt: torch.optim.Optimizer, recipe: TrainRecipe, total: int):
    if recipe.schedule == "onecycle" and total > 1:
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total,
                                                   pct_start=0.25)
    if recipe.schedule == "cosine" and total > 0:
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return None


def train(
    model: nn.Module,
    data: DataBundle,
    recipe: TrainRecipe,
    *,
    device: torch.device | str | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    teacher: nn.Module | None = None,
    distill: float = 0.0,
    temperature: float = 4.0,
    resume: Path | None = None,
    save_every: float = 60.0,
) -> dict:
    """Train ``model`` in place on the training split.

    Args:
        after_step: Called after every optimiser step, e.g. to re-apply pruning masks so that
            pruned weights stay zero.
        teacher, distill, temperature: Knowledge distillation (Hinton et al. 2015): the loss
            is ``(1 - distill) * cross-entropy + distill * T^2 * KL(teacher_T || model_T)``
            with both outputs softened by ``T``; the teacher (e.g. the dense model) is only
            evaluated, never changed. ``distill = 0`` trains on the labels alone.
        resume: A file where the run keeps its progress (model, optimiser, schedule, random
            state and step) every ``save_every`` seconds. A run started again with the same
            file continues from the last save and ends exactly where an uninterrupted run
            would; the file is removed when training completes. The caller keys the file by
            everything that defines the run (model, data, recipe).

    Returns:
        ``{"steps", "seconds", "final_loss", "resumed_from"}``; ``seconds`` counts the time
        of earlier, interrupted runs too.
    """
    device = torch.device(device) if device is not None else default_device()
    model.to(device).train()
    seed_everything(recipe.seed)
    loader = data.loader("train", recipe.batch_size, seed=recipe.seed, device=device)
    total = recipe.steps if recipe.steps is not None else recipe.epochs * len(loader)
    opt = _make_optimizer(model, recipe)
    sched = _make_scheduler(opt, recipe, total)
    ce = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    if not 0.0 <= distill <= 1.0 or temperature <= 0:
        raise ConfigError(f"distill must be in [0, 1] and temperature positive, got {distill}, "
                          f"{temperature}.")
    if distill > 0 and teacher is None:
        raise ValueError("distill > 0 needs a teacher model.")
    if distill > 0:
        teacher_mode = teacher.training
        teacher.to(device).eval()
        loss_fn = _distill_loss(ce, teacher, distill, temperature)
    else:
        def loss_fn(out, y, _x):
            return ce(out, y)
    dtype = _PRECISIONS[recipe.precision]
    scaler = torch.amp.GradScaler(device.type) if recipe.precision == "fp16" else None
    with _memory_format(model, recipe.channels_last, device) as memory:
        step, start, ema, earlier = 0, time.perf_counter(), None, 0.0
        saved = _load_progress(resume, model, opt, sched, scaler) if resume is not None else None
        if saved is not None:
            step, ema, earlier = saved["step"], saved["ema"], saved["seconds"]
        resumed_from, last_save = step, time.perf_counter()
        bar = tqdm(total=total, initial=step, desc=desc, disable=not progress, leave=False,
                   unit="step")
        while step < total:
            loader.epoch, skip = divmod(step, len(loader))
            for x, y in loader:
                if skip:  # resuming inside an epoch: its first batches were trained on already
                    skip -= 1
                    continue
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    x = x.contiguous(memory_format=memory)
                    loss = loss_fn(model(x), y, x)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                if sched is not None:
                    sched.step()
                if after_step is not None:
                    after_step(model)
                step += 1
                value = float(loss.detach())
                ema = value if ema is None else 0.95 * ema + 0.05 * value
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{ema:.3f}")
                if step >= total:
                    break
                if resume is not None and time.perf_counter() - last_save >= save_every:
                    _save_progress(resume, model, opt, sched, scaler, step, ema,
                                   earlier + time.perf_counter() - start)
                    last_save = time.perf_counter()
    bar.close()
    if resume is not None:
        resume.unlink(missing_ok=True)
    if distill > 0:
        teacher.train(teacher_mode)
    model.eval()
    return {"steps": step, "seconds": earlier + time.perf_counter() - start, "final_loss": ema,
            "resumed_from": resumed_from}


def _save_progress(path: Path, model: nn.Module, opt, sched, scaler, step: int,
                   ema: float | None, seconds: float) -> None:
    """Everything :func:`train` needs to continue at ``step`` exactly (see ``resume``)."""
    atomic_torch_save({
        "step": step, "ema": ema, "seconds": seconds,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "opt": opt.state_dict(),
        "sched": sched.state_dict() if sched is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }, path)


def _load_progress(path: Path, model: nn.Module, opt, sched, scaler) -> dict | None:
    """Restore a run saved by :func:`_save_progress`; ``None`` (start afresh) when there is
    none or it does not fit this model and recipe."""
    saved = safe_torch_load(path, ("step", "ema", "seconds", "model", "opt", "rng"))
    if saved is None:
        return None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        if sched is not None and saved.get("sched") is not None:
            sched.load_state_dict(saved["sched"])
        if scaler is not None and saved.get("scaler") is not None:
            scaler.load_state_dict(saved["scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        model.load_state_dict(before)
        warnings.warn(f"Saved training progress {path} does not fit this run ({exc}); "
                      f"starting afresh.", stacklevel=3)
        return None
    torch.set_rng_state(saved["rng"])
    if saved.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return saved


def _distill_loss(ce: nn.Module, teacher: nn.Module, weight: float, temperature: float):
    """The distillation loss of :func:`train` as ``loss(student_logits, labels, inputs)``."""
    t = temperature

    def loss(out: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = torch.log_softmax(teacher(x).float() / t, dim=1)
        kl = nn.functional.kl_div(torch.log_softmax(out.float() / t, dim=1), soft,
                                  reduction="batchmean", log_target=True)
        return (1.0 - weight) * ce(out, y) + weight * t * t * kl

    return loss


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DataBundle,
    split: str = "val",
    *,
    limit: int | None = None,
    start: int = 0,
    device: torch.device | str | None = None,
    batch_size: int = 500,
    channels_last: bool | None = None,
) -> float:
    """Top-1 accuracy in percent on a split (optionally ``limit`` images from ``start``).

    ``channels_last``: run the model in the channels-last memory format (and put it back
    afterwards). By default on CPU for models with 2-d convolutions, whose convolutions run
    faster there in that format (``reports/benchmarks/eval_channels_last.md``); the accuracy
    differs from a contiguous run only where float rounding flips a near-tie.
    """
    device = torch.device(device) if device is not None else default_device()
    was_training = model.training
    model.to(device).eval()
    correct = total = 0
    try:
        with _memory_format(model, channels_last, device) as memory:
            for x, y in data.loader(split, batch_size, shuffle=False, augment=False,
                                    limit=limit, start=start, device=device):
                correct += int((model(x.contiguous(memory_format=memory)).argmax(1) == y).sum())
                total += int(y.numel())
    finally:
        model.train(was_training)
    return 100.0 * correct / max(total, 1)


@contextmanager
def _memory_format(model: nn.Module, channels_last: bool | None, device: torch.device
                   ) -> Iterator[torch.memory_format]:
    """Run ``model`` in the channels-last format inside the block (yields the format inputs
    should take) and put its parameters back to contiguous afterwards, on errors too.
    ``channels_last=None``: channels-last for a conv net on CPU, whose convolutions run
    faster there in that format (``reports/benchmarks/eval_channels_last.md``)."""
    if channels_last is None:
        channels_last = device.type == "cpu" and any(isinstance(m, nn.Conv2d)
                                                     for m in model.modules())
    if not channels_last:
        yield torch.contiguous_format
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield torch.channels_last
    finally:
        model.to(memory_format=torch.contiguous_format)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    data: DataBundle,
    *,
    images: int = 512,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
    channels_last: bool | None = None,
) -> None:
    """Re-estimate batch-norm running statistics from training images (forward only).

    ``channels_last``: as in :func:`evaluate` (by default on for conv nets on CPU).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or images <= 0:
        return
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the recalibration batches
    model.train()
    seen = 0
    with _memory_format(model, channels_last, device) as memory:
        for x, _ in data.loader("train", batch_size, shuffle=True, augment=False, seed=seed,
                                device=device):
            model(x.contiguous(memory_format=memory))
            seen += x.shape[0]
            if seen >= images:
                break
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


# --------------------------------------------------------------------------- baselines


def default_recipe(spec: ModelSpec) -> TrainRecipe:
    """The recipe that trains each built-in model well in a few CPU minutes."""
    if spec.name == "cnn":
        return TrainRecipe(epochs=3, lr=0.05)
    return TrainRecipe(epochs=4, lr=0.1)


@dataclass
class Baseline:
    """A trained dense model with how it was made and how well it does."""

    model: nn.Module
    model_spec: ModelSpec
    recipe: TrainRecipe
    data_fingerprint: str
    val_acc: float
    test_acc: float
    train_seconds: float
    path: str
    cache_hit: bool


def baseline_path(model_spec: ModelSpec, data: DataBundle, recipe: TrainRecipe,
                  weights: str | None = None) -> Path:
    """Where the baseline of this model, data and recipe (or these weights) is cached (the
    same on every machine with the same data)."""
    made = {"weights": file_hash(weights)} if weights else recipe.to_dict()
    key = hash_key("baseline", model_spec.to_dict(), data.fingerprint, made)
    return cache_dir("baselines") / f"{model_spec.name.replace(':', '_')}-{key}.pt"


def file_hash(path: str | Path) -> str:
    """Content hash of a file; ConfigError when it cannot be read."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ConfigError(f"Cannot read weights file {str(path)!r}: {exc.strerror}.") from None


def load_weights(model: nn.Module, state: dict, source: str) -> None:
    """Load ``state`` into ``model`` exactly; ConfigError naming the first keys that do not
    fit (``source`` names where the weights came from)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != v.shape]
    if missing or extra or shapes:
        raise ConfigError(
            f"The weights in {source!r} do not fit the model: missing {missing[:3]}, "
            f"unexpected {extra[:3]}, shapes differ {shapes[:3]}"
            f"{' (and more)' if max(len(missing), len(extra), len(shapes)) > 3 else ''}.")
    model.load_state_dict(state)


def get_baseline(
    model_spec: ModelSpec,
    data_spec: DataSpec,
    recipe: TrainRecipe | None = None,
    *,
    data: DataBundle | None = None,
    device: torch.device | str | None = None,
    force: bool = False,
    progress: bool = True,
    weights: str | None = None,
    state: dict | None = None,
) -> Baseline:
    """Train the dense baseline, or load it from the cache (keyed by spec, data and recipe).

    Args:
        weights: The file of a trained model's weights: evaluated, not trained, and cached by
            the file's content hash.
        state: Those weights, read (``engine.checkpoint.read_state_dict``).

    A corrupted cache entry is detected and recomputed, never trusted. Training saves its
    progress beside the cache entry every minute, so an interrupted run continues where it
    stopped and ends with the weights an uninterrupted one would have.
    """
    data = data if data is not None else load_data(data_spec)
    recipe = recipe or default_recipe(model_spec)
    path = baseline_path(model_spec, data, recipe, weights)
    model = build_model(model_spec)
    entry = None if force else safe_torch_load(path, ("state_dict", "val_acc", "test_acc"))
    if entry is not None:
        try:
            model.load_state_dict(entry["state_dict"])
        except RuntimeError:
            entry = None
    if entry is not None:
        model.eval()
        return Baseline(model, model_spec, recipe, data.fingerprint, entry["val_acc"],
                        entry["test_acc"], entry["train_seconds"], str(path), True)
    seed_everything(recipe.seed)
    model = build_model(model_spec)
    if weights:
        load_weights(model, state if state is not None else {}, weights)
        stats = {"seconds": 0.0}
    else:
        stats = train(model, data, recipe, device=device, progress=progress, desc="baseline",
                      resume=path.with_name(path.stem + ".progress.pt"))
    val_acc = evaluate(model, data, "val", device=device)
    test_acc = evaluate(model, data, "test", device=device)
    model.cpu()
    atomic_torch_save({"state_dict": model.state_dict(), "val_acc": val_acc,
                       "test_acc": test_acc, "train_seconds": stats["seconds"],
                       "model_spec": model_spec.to_dict(), "recipe": recipe.to_dict()}, path)
    return Baseline(model, model_spec, recipe, data.fingerprint, val_acc, test_acc,
                    stats["seconds"], str(path), False)
