"""Study configuration: a TOML file in ``studies/`` -> one frozen :class:`StudyConfig`.

Every key has a default, every value is checked, and any key can be overridden from the
command line (``--set proxy.steps=50``, ``--budget size=0.25``, ``--trials 60``).

Example:
    >>> cfg = load_config("studies/demo.toml", overrides=["search.trials=10"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autoprune.data import DataSpec
from autoprune.engine.policy import MODES
from autoprune.errors import ConfigError
from autoprune.models import ModelSpec
from autoprune.search.budget import KINDS, OBJECTIVES, Budget
from autoprune.search.sensitivity import ScanSettings
from autoprune.train import TrainRecipe, default_recipe

__all__ = ["StudyConfig", "SearchSettings", "ProxySettings", "LatencySettings",
           "FinalizeSettings", "apply_overrides", "config_from_dict", "load_config",
           "parse_duration", "distill_key", "STUDIES_DIR"]

STUDIES_DIR = Path("studies")


def parse_duration(text: str | int | float | None) -> float | None:
    """``"90s"``, ``"20m"``, ``"1.5h"`` or seconds -> seconds; ``None``/``""`` -> ``None``."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text))
        if not m:
            raise ConfigError(f"Duration must look like 90s, 20m or 1.5h, got {text!r}.")
        seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"Duration must be positive, got {text!r}.")
    return seconds


@dataclass(frozen=True)
class SearchSettings:
    """The Optuna study.

    Args:
        mode: ``fine``, ``channel`` or ``hybrid``.
        trials: Trials the study holds when done, warm-start baselines included (a re-run
            continues up to it).
        timeout: Stop after this many seconds (``"20m"`` in TOML).
        sampler: ``tpe``, ``nsga2`` or ``random``.
        sampler_seed: The sampler's seed (default: the study's ``seed``). Only which policies
            are proposed depends on it, not how a policy scores (the proxy's fine-tune seed,
            the data split and the baseline keep the study's seed), so studies that differ in
            it alone share every cache: a second search seed at the cost of the trials.
        space: ``centred`` (perturb a heuristic prior, then project to the budget) or
            ``wide`` (independent per-layer ratios in log space, then projected).
        prior: Heuristic allocation the centred space perturbs: ``lamp``, ``sensitivity``
            or ``uniform`` (channel mode: ``uniform`` or ``sensitivity``).
        perturbation: Half-width, in natural-log units, of the centred space.
        centre: Where the centred space's prior sits for a trial below the full budget (with
            ``sweep``): ``budget`` (the prior's allocation at the full budget, scaled down by
            one factor) or ``target`` (the prior heuristic's own allocation at the trial's
            target, as the ladder's heuristics are built). Hybrid mode always centres at the
            target.
        round_to: Round every coupling group's kept channels to a multiple of this (channel
            and hybrid modes; 0: no rounding). Kernels of ONNX Runtime and oneDNN work in
            blocks of 8 or 16 channels; the budget is met with the rounded counts.
        sweep: Sample the target size between ``floor`` x budget and the budget, to spread
            the Pareto front; off: every trial sits at the budget.
        floor: Lowest target as a fraction of the budget when sweeping.
        min_density: Smallest per-layer density (fine) / keep ratio (channel) allowed.
        objectives: Subset of ``accuracy``, ``size``, ``latency``, ``macs``.
        storage: Optuna storage URL; empty = SQLite under ``studies/<name>/``.
        warm_start: Enqueue the heuristic baselines first.
        ladder: Budget levels every heuristic is enqueued at, evenly spaced from ``floor`` x
            the budget to the budget, so the study's front contains the heuristics' fronts
            (0: 3 levels when sweeping, else the budget alone).
        prefilter: Skip the fine-tune when the scan's additive estimate is this many points
            below the best feasible proxy accuracy so far (0 disables).
        screen: Draw this many policies from the space at each level (the ladder's with the
            sweep, else the budget alone), rank them by the scan's additive estimate (no
            training) and queue the best of each level as the first searched trials (0: off;
            :mod:`autoprune.search.screening`).
        screen_levels: How many levels to screen at, evenly spaced from ``floor`` x the
            budget to the budget like the ladder's (0: the ladder's own levels). More levels
            than the ladder put screened trials between the heuristics' levels too; each
            costs one of ``trials``. Needs the sweep when above 1.
        screen_climb: Then improve each level's best draw by this many steps of a hill climb
            on the estimate within the space (0: off; a few ms per step; nothing to climb
            from, so no effect, with ``screen = 0``: ``--set search.screen=0`` turns screening
            off whole; :func:`autoprune.search.screening.climb_estimate`).
        artifacts: Where the study keeps its baseline weights and scans for workers on other
            machines: a directory every machine can read (default ``studies/<name>/
            artifacts``) or ``s3://bucket/prefix`` (needs boto3).
    """

    mode: str = "fine"
    trials: int = 30
    timeout: float | None = None
    sampler: str = "tpe"
    sampler_seed: int | None = None
    space: str = "centred"
    prior: str = "lamp"
    perturbation: float = 0.7
    centre: str = "budget"
    round_to: int = 0
    sweep: bool = False
    floor: float = 0.5
    min_density: float = 0.02
    objectives: tuple[str, ...] = ("accuracy", "size")
    storage: str = ""
    warm_start: bool = True
    ladder: int = 0
    prefilter: float = 0.0
    screen: int = 0
    screen_levels: int = 0
    screen_climb: int = 0
    artifacts: str = ""

    def __post_init__(self) -> None:
        _choice("search.mode", self.mode, tuple(MODES))
        _choice("search.sampler", self.sampler, ("tpe", "nsga2", "random"))
        _choice("search.space", self.space, ("centred", "wide"))
        _choice("search.prior", self.prior, ("lamp", "sensitivity", "uniform", "erk"))
        _choice("search.centre", self.centre, ("budget", "target"))
        if self.sampler_seed is not None:
            _whole("search.sampler_seed", self.sampler_seed)
        _whole("search.round_to", self.round_to, " (0: no rounding)")
        if self.round_to and self.mode == "fine":
            raise ConfigError(f"search.round_to={self.round_to} rounds kept channels: it needs "
                              f"search.mode 'channel' or 'hybrid', got 'fine'.")
        if self.trials < 0:
            raise ConfigError(f"search.trials must be >= 0, got {self.trials}.")
        _whole("search.ladder", self.ladder, " (0: automatic)")
        _whole("search.screen", self.screen, " (0: off)")
        _whole("search.screen_levels", self.screen_levels, " (0: the ladder's levels)")
        _whole("search.screen_climb", self.screen_climb, " (0: off)")
        if self.screen_levels > 1 and not self.sweep:
            raise ConfigError(f"search.screen_levels={self.screen_levels} screens below the "
                              f"budget, which needs search.sweep = true; without the sweep "
                              f"every trial sits at the budget (set it to 0 or 1).")
        if not 0 < self.min_density < 1 or not 0 < self.floor <= 1 or self.perturbation < 0:
            raise ConfigError(f"search.min_density and search.floor must be in (0, 1) and "
                              f"perturbation >= 0, got {self.min_density}, {self.floor}, "
                              f"{self.perturbation}.")
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or "accuracy" not in self.objectives or len(self.objectives) < 2:
            raise ConfigError(f"search.objectives must include 'accuracy' and at least one of "
                              f"{OBJECTIVES[1:]}, got {list(self.objectives)}.")
        object.__setattr__(self, "timeout", parse_duration(self.timeout))
        object.__setattr__(self, "objectives", tuple(self.objectives))

    @property
    def levels(self) -> tuple[float, ...]:
        """The budget fractions the heuristic baselines are enqueued at, lowest first."""
        return self._spaced(self.ladder or (3 if self.sweep else 1))

    @property
    def screen_at(self) -> tuple[float, ...]:
        """The budget fractions ``screen`` queues a trial at, lowest first."""
        if self.screen_levels:
            return self._spaced(self.screen_levels)
        return self.levels if self.sweep else (1.0,)

    def _spaced(self, n: int) -> tuple[float, ...]:
        if n == 1:
            return (1.0,)
        return tuple(round(self.floor + (1.0 - self.floor) * i / (n - 1), 6) for i in range(n))


def _check_distill(section: str, weight: float, temperature: float) -> None:
    if not (0.0 <= weight <= 1.0):
        raise ConfigError(f"{section}.distill is the weight of the distillation loss, in "
                          f"[0, 1]; got {weight!r}.")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"{section}.temperature must be positive, got {temperature!r}.")


def distill_key(settings: ProxySettings | FinalizeSettings) -> list:
    """What distillation adds to a cache key or fingerprint: nothing when it is off, so keys
    made before it existed stay valid."""
    return [settings.distill, settings.temperature] if settings.distill > 0 else []


PICK_BY = ("auto", "confirmed", "estimate+confirmed")


def fuses_estimate(pick_by: str, mode: str) -> bool:
    """Whether picks rank by ``estimate+confirmed`` (``proxy.pick_by``, resolved for
    ``auto`` by the search ``mode``)."""
    return pick_by == "estimate+confirmed" or (pick_by == "auto" and mode == "channel")


@dataclass(frozen=True)
class ProxySettings:
    """The cheap score of one policy.

    Args:
        steps: Fine-tune optimiser steps per trial (same batches for every trial).
        lr: Fine-tune learning rate (cosine-decayed).
        batch_size: Fine-tune batch size.
        val_limit: Validation images scored per trial (the same subset for every trial).
        recalibrate: Training images for batch-norm recalibration (channel / hybrid).
        seed: Fine-tune seed shared by all trials (common random numbers).
        confirm_top: Front candidates re-scored with fresh seeds before declaring the front.
        confirm_seeds: Fresh fine-tune seeds per confirmation.
        confirm_val: Validation images of the confirmation, taken from the validation split
            *after* the ``val_limit`` images the search used.
        distill: Weight of distillation from the dense model in the fine-tune, in [0, 1]
            (0: labels only; see :func:`autoprune.train.train`).
        temperature: Distillation temperature.
        rungs: Multi-fidelity scoring: longer fine-tunes (steps, ascending, each above
            ``steps``) the best ``promote`` fraction of each budget level is re-scored with,
            rung by rung; confirmation then uses the top rung (see
            :mod:`autoprune.search.promotion`). Empty: one fidelity.
        promote: Fraction of a level's trials promoted to the next rung.
        confirm_heuristics: Which heuristic trials of each ladder level are confirmed:
            ``all`` (the study then picks among heuristics on confirmed scores) or ``best``
            (only the one with the best search-time score).
        pick_by: What the study's picks rank confirmed trials by (the pick at each ladder
            level, and ``best``): ``confirmed`` (the confirmed validation accuracy),
            ``estimate+confirmed`` (the sum of the confirmed accuracy and the scan's
            additive estimate, each standardised over the study's confirmed feasible
            trials; see :func:`autoprune.search.selection.pick_scores`) or ``auto``
            (``estimate+confirmed`` in channel mode, where the benchmarks measured it picking
            better; ``confirmed`` in fine and hybrid modes, where the estimate ranks poorly).
            Changes no trial, so not in the fingerprint.
    """

    # 30, not 100: a fine-tune of ~0.3x the studies' own length ranked policies better on
    # both studies measured (reports/benchmarks: demo, vgg_fine_size5) at a third of the cost
    steps: int = 30
    lr: float = 0.01
    batch_size: int = 128
    val_limit: int = 2000
    recalibrate: int = 512
    seed: int = 0
    confirm_top: int = 4
    confirm_seeds: int = 2
    confirm_val: int = 3000
    # not in repr: the benchmarks' cache keys of studies made before distillation existed
    distill: float = field(default=0.0, repr=False)
    temperature: float = field(default=4.0, repr=False)
    rungs: tuple[int, ...] = field(default=(), repr=False)
    promote: float = field(default=1 / 3, repr=False)
    confirm_heuristics: str = field(default="all", repr=False)
    pick_by: str = field(default="auto", repr=False)

    def __post_init__(self) -> None:
        _check_distill("proxy", self.distill, self.temperature)
        _choice("proxy.pick_by", self.pick_by, PICK_BY)
        rungs = tuple(self.rungs)
        if any(not isinstance(r, int) or isinstance(r, bool) for r in rungs) or any(
                b <= a for a, b in zip((self.steps, *rungs), rungs)):
            raise ConfigError(f"proxy.rungs must be whole numbers of fine-tune steps, "
                              f"ascending and above proxy.steps={self.steps}; got "
                              f"{list(rungs)}.")
        if not 0 < self.promote <= 1:
            raise ConfigError(f"proxy.promote is the fraction of each level promoted to the "
                              f"next rung, in (0, 1]; got {self.promote!r}.")
        object.__setattr__(self, "rungs", rungs)
        _choice("proxy.confirm_heuristics", self.confirm_heuristics, ("all", "best"))
        for k in ("steps", "val_limit", "recalibrate", "confirm_top", "confirm_seeds",
                  "confirm_val"):
            if getattr(self, k) < 0:
                raise ConfigError(f"proxy.{k} must be >= 0, got {getattr(self, k)}.")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.batch_size <= 0:
            raise ConfigError(f"proxy.lr and proxy.batch_size must be positive, got {self.lr}, "
                              f"{self.batch_size}.")
        if self.val_limit == 0:
            raise ConfigError("proxy.val_limit=0 would score every policy on no image; use a "
                              "positive number of validation images.")


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured: target device, batch size, threads and runtime.

    Args:
        backend: ``torch`` (eager PyTorch, on ``device``) or ``onnxruntime`` (the model
            exported to ONNX and run by ONNX Runtime on the CPU; needs ``autoprune[onnx]``).
        refit: Under a latency budget, a channel (or hybrid) trial's pruned structure is
            timed before it is fine-tuned; while it is slower than ``(1 - refit_margin)`` x
            the cap, the policy is projected again onto a smaller structural-MACs cap, at most
            ``refit`` times (0: off; the MACs line alone decides, as before).
        refit_margin: Fraction of the latency cap kept in reserve for measurement noise.
        refit_grow: Also grow a structure measured faster than ``(1 - refit_grow)`` x its
            target, the target then being its own level's share of the cap (the sweep's
            level, 1 without it): a latency budget the MACs line overestimates is used
            instead of left idle (0: off, structures are only shrunk; with it on, every
            re-projected structure's latency is the median of three runs).
    """

    device: str = "cpu"
    batch_size: int = 1
    threads: int = 1
    min_run_time: float = 0.3
    backend: str = "torch"
    refit: int = 3
    refit_margin: float = 0.03
    refit_grow: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.threads <= 0 or not self.min_run_time > 0:
            raise ConfigError(f"latency.batch_size, threads and min_run_time must be positive, "
                              f"got {self.batch_size}, {self.threads}, {self.min_run_time}.")
        if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", str(self.device)):
            raise ConfigError(f"latency.device must be cpu, cuda or cuda:N, got "
                              f"{self.device!r}.")
        _choice("latency.backend", self.backend, ("torch", "onnxruntime"))
        _whole("latency.refit", self.refit, " (0: off)")
        _below_half("latency.refit_margin", self.refit_margin)
        _below_half("latency.refit_grow", self.refit_grow, " (0: off)")
        if self.backend == "onnxruntime":
            if self.device != "cpu":
                raise ConfigError(f"latency.backend = 'onnxruntime' runs on the CPU: set "
                                  f"latency.device = 'cpu', got {self.device!r}.")
            from autoprune.engine.deploy import require_onnx

            require_onnx()

    def fingerprint(self) -> str:
        """What the study's fingerprint records: the settings, with ``backend`` only when it
        is not the default (studies made before it existed keep their fingerprint)."""
        extra = f", backend={self.backend!r}" if self.backend != "torch" else ""
        return (f"LatencySettings(device={self.device!r}, batch_size={self.batch_size!r}, "
                f"threads={self.threads!r}, min_run_time={self.min_run_time!r}{extra})")


@dataclass(frozen=True)
class FinalizeSettings:
    """The longer fine-tune of chosen front points, scored on the test split.

    Args:
        epochs: Passes over the training split.
        steps: Exact optimiser steps instead of ``epochs`` (0: use ``epochs``); benchmarks
            size their fine-tune with it.
        lr: Peak learning rate (cosine-decayed).
        distill: Weight of distillation from the dense model, in [0, 1] (0: labels only).
        temperature: Distillation temperature.
    """

    epochs: int = 2
    lr: float = 0.01
    steps: int = 0
    distill: float = field(default=0.0, repr=False)
    temperature: float = field(default=4.0, repr=False)

    def __post_init__(self) -> None:
        _check_distill("finalize", self.distill, self.temperature)
        if not (self.epochs > 0 and self.lr > 0 and math.isfinite(self.lr) and self.steps >= 0):
            raise ConfigError(f"finalize.epochs and finalize.lr must be positive and "
                              f"finalize.steps >= 0, got {self.epochs}, {self.lr}, {self.steps}.")


@dataclass(frozen=True)
class StudyConfig:
    """One study, everything it needs."""

    name: str
    model: ModelSpec
    data: DataSpec
    recipe: TrainRecipe
    search: SearchSettings = field(default_factory=SearchSettings)
    budget: Budget = field(default_factory=Budget)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    scan_ratios: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    scan_val_limit: int = 2000
    scan_jobs: int = 0
    latency: LatencySettings = field(default_factory=LatencySettings)
    finalize: FinalizeSettings = field(default_factory=FinalizeSettings)
    seed: int = 0
    source: str = ""
    overrides: tuple[str, ...] = ()
    weights: str = ""  # a trained model's state_dict: evaluated, not trained

    @property
    def run_dir(self) -> Path:
        return STUDIES_DIR / self.name

    @property
    def report_dir(self) -> Path:
        return Path("reports") / self.name

    def fingerprint(self) -> dict:
        """The settings a study's trials depend on; a study refuses to mix trials across
        them."""
        s, p = self.search, self.proxy
        # how images are read (streamed or not, DataLoader workers) does not change them
        data = ", ".join(f"{f.name}={getattr(self.data, f.name)!r}"
                         for f in fields(self.data) if f.name not in ("stream", "workers"))
        return {"model": self.model.to_dict(), "data": f"DataSpec({data})",
                "recipe": self.recipe.to_dict(), "mode": s.mode, "objectives": list(s.objectives),
                "budget": self.budget.items(),
                "space": [s.space, s.prior, s.perturbation, s.sweep, s.floor, s.min_density,
                          # absent at their defaults, so studies made before they existed match
                          *([s.centre] if s.centre != "budget" else []),
                          *([f"round_to={s.round_to}"] if s.round_to else [])],
                "proxy": [p.steps, p.lr, p.batch_size, p.val_limit, p.recalibrate, p.seed,
                          *distill_key(p)],
                "latency": self.latency.fingerprint() + self._refit_key()}

    def refits_latency(self) -> bool:
        """Whether trials' structures are timed and re-projected onto the latency budget
        (``latency.refit``): only channel structures under a latency budget."""
        return bool(self.latency.refit) and self.search.mode != "fine" \
            and "latency" in self.budget.axes()

    def _refit_key(self) -> str:
        # absent where it does nothing, so studies made before it existed keep their key
        lat = self.latency
        if not self.refits_latency():
            return ""
        grow = f" grow={lat.refit_grow!r}" if lat.refit_grow else ""
        return f" refit={lat.refit} margin={lat.refit_margin!r}{grow}"

    def advice(self) -> list[str]:
        """Settings that are valid but probably not what the user wants, one sentence each
        (the CLI prints them as notes before any work starts)."""
        notes = []
        if self.latency.backend == "onnxruntime" and self.search.mode != "fine":
            from autoprune.engine.deploy import ort_channel_block

            block, r = ort_channel_block(), self.search.round_to
            if block and (r == 0 or r % block):
                notes.append(
                    f"latency.backend = 'onnxruntime' with search.round_to = {r}: ONNX "
                    f"Runtime's convolutions on this CPU work in blocks of {block} channels, "
                    f"and other channel counts turn far less of the MAC reduction into speed "
                    f"(on the demo, 0.51 of it against 0.92 at round_to 16 on AVX-512); set "
                    f"search.round_to = {block}.")
        if self.latency.refit_grow and not self.refits_latency():
            notes.append(
                f"latency.refit_grow = {self.latency.refit_grow} does nothing here: it grows "
                f"structures in the latency refit, which runs only in channel and hybrid "
                f"studies under a latency budget with latency.refit > 0.")
        return notes

    @property
    def sampler_seed(self) -> int:
        """The sampler's seed: ``search.sampler_seed``, else the study's ``seed``."""
        s = self.search.sampler_seed
        return self.seed if s is None else s

    @property
    def journal_url(self) -> str:
        """The default storage of a study searched by several processes on one machine."""
        return f"journal:{(self.run_dir / 'journal.log').as_posix()}"

    @property
    def storage_url(self) -> str:
        """``search.storage``; else the study's journal file if it has one (it was searched
        with several workers); else its SQLite file."""
        if self.search.storage:
            return self.search.storage
        if (self.run_dir / "journal.log").is_file():
            return self.journal_url
        return f"sqlite:///{(self.run_dir / 'study.db').as_posix()}"


_SECTIONS = {"model", "data", "baseline", "search", "budget", "proxy", "scan", "latency",
             "finalize"}
_TOP = {"name", "seed"}


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {allowed}, got {value!r}.")


def _whole(key: str, value: Any, meaning: str = "") -> None:
    """Refuse anything but a whole number >= 0 (booleans and floats included)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} must be a whole number >= 0{meaning}, got {value!r}.")


def _below_half(key: str, value: Any, meaning: str = "") -> None:
    """Refuse anything but a number in [0, 0.5) (booleans included): a share of a cap."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 0.5:
        raise ConfigError(f"{key} must be in [0, 0.5){meaning}, got {value!r}.")


def _build(cls, section: str, values: dict[str, Any], **extra):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in [{section}]; known: {sorted(known)}.")
    try:
        return cls(**{**extra, **values})
    except TypeError as exc:
        raise ConfigError(f"Bad value in [{section}]: {exc}.") from exc


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``section.key=value`` strings (values parsed as TOML, else kept as strings)."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"Override must look like section.key=value, got {item!r}.")
        section, dot, name = key.strip().partition(".")
        if not dot:
            if section not in _TOP:
                raise ConfigError(f"Unknown top-level key {section!r}; known: {sorted(_TOP)}.")
            raw[section] = _parse_value(value.strip())
            continue
        if section not in _SECTIONS:
            raise ConfigError(f"Unknown section {section!r} in override {item!r}; known: "
                              f"{sorted(_SECTIONS)}.")
        if not value.strip():  # "section.key=" removes the key
            raw.get(section, {}).pop(name, None)
            continue
        raw.setdefault(section, {})[name] = _parse_value(value.strip())
    return raw


def torchvision_weights_file(model: str, weights: str) -> Path:
    """The local file of torchvision's ``weights`` (``DEFAULT`` or an enum name such as
    ``IMAGENET1K_V1``) for ``model``: torch hub's cached copy, downloaded first when missing
    (needs the internet once; afterwards it works offline)."""
    import torch
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(model)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"Unknown torchvision model {model!r}: {exc}") from None
    key = weights.split(".")[-1]
    try:
        entry = enum.DEFAULT if key == "DEFAULT" else enum[key]
    except KeyError:
        raise ConfigError(f"model.weights={weights!r} is neither a file nor one of "
                          f"{model}'s torchvision weights {['DEFAULT', *enum.__members__]}."
                          ) from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.url).name
    if not path.is_file():
        try:
            torch.hub.load_state_dict_from_url(entry.url, progress=True, check_hash=True)
        except Exception as exc:  # noqa: BLE001 - no network, proxy, disk: the user's setup
            raise ConfigError(f"Cannot download torchvision weights {entry} from {entry.url} "
                              f"({type(exc).__name__}): download it once where the internet "
                              f"is reachable and place it at {path}.") from None
    return path


def config_from_dict(raw: dict[str, Any], name: str, source: str = "") -> StudyConfig:
    unknown = sorted(set(raw) - _SECTIONS - _TOP)
    if unknown:
        raise ConfigError(f"Unknown section(s) {unknown}; known: {sorted(_SECTIONS | _TOP)}.")
    seed = int(raw.get("seed", 0))
    data_raw = dict(raw.get("data", {}))
    data_raw["pad_to"] = data_raw.get("pad_to", 32) or None  # TOML has no null: 0 = no padding
    if data_raw.get("root") == "":
        data_raw["root"] = None
    data = _build(DataSpec, "data", data_raw, seed=seed)
    # in_channels / num_classes come from the data; the data is loaded later, so assume the
    # built-in sets' values here and let the pipeline check them
    model_raw = dict(raw.get("model", {}))
    weights = model_raw.pop("weights", "") or ""
    if not isinstance(weights, str):
        raise ConfigError(f"model.weights must be a file path, got {weights!r}.")
    if weights and not Path(weights).is_file():
        model_name = str(model_raw.get("name", ""))
        if not model_name.startswith("torchvision:"):
            raise ConfigError(f"model.weights={weights!r} does not exist.")
        weights = str(torchvision_weights_file(model_name.split(":", 1)[1], weights))
    in_ch = 3 if data.name == "cifar10" else model_raw.pop("in_channels", 1)
    model = _build(ModelSpec, "model", model_raw, in_channels=in_ch,
                   num_classes=model_raw.pop("num_classes", 10))
    recipe = _build(TrainRecipe, "baseline", raw.get("baseline", {}),
                    **{k: v for k, v in default_recipe(model).to_dict().items()
                       if k not in raw.get("baseline", {})})
    epochs = raw.get("baseline", {}).get("epochs")
    if epochs == 0 and not weights:
        raise ConfigError("baseline.epochs = 0 uses the model as is, so it needs trained "
                          "weights: set model.weights, or train with baseline.epochs > 0.")
    if weights and epochs not in (None, 0):
        raise ConfigError(f"model.weights are used as is (baseline.epochs = 0); training them "
                          f"further before pruning is not supported, got baseline.epochs = "
                          f"{epochs}.")
    scan = dict(raw.get("scan", {}))
    unknown_scan = sorted(set(scan) - {"ratios", "val_limit", "jobs"})
    if unknown_scan:
        raise ConfigError(f"Unknown key(s) {unknown_scan} in [scan]; known: ['jobs', 'ratios', "
                          "'val_limit'].")
    try:  # the scan's own checks, now rather than after the baseline is trained
        ScanSettings(ratios=tuple(scan.get("ratios", StudyConfig.scan_ratios)),
                     val_limit=scan.get("val_limit", 2000), jobs=scan.get("jobs", 0))
    except TypeError as exc:
        raise ConfigError(f"Bad value in [scan]: {exc}.") from None
    search = dict(raw.get("search", {}))
    if "objectives" in search:
        search["objectives"] = tuple(search["objectives"])
    budget_raw = raw.get("budget", {})
    bad_budget = sorted(set(budget_raw) - set(KINDS))
    if bad_budget:
        raise ConfigError(f"Unknown budget(s) {bad_budget}; known: {list(KINDS)}.")
    cfg = StudyConfig(
        name=str(raw.get("name", name)),
        model=model,
        data=data,
        recipe=recipe,
        search=_build(SearchSettings, "search", search),
        budget=_build(Budget, "budget", budget_raw),
        proxy=_build(ProxySettings, "proxy", raw.get("proxy", {}), seed=seed),
        scan_ratios=tuple(scan.get("ratios", StudyConfig.scan_ratios)),
        scan_val_limit=int(scan.get("val_limit", 2000)),
        scan_jobs=int(scan.get("jobs", 0)),
        latency=_build(LatencySettings, "latency", raw.get("latency", {})),
        finalize=_build(FinalizeSettings, "finalize", raw.get("finalize", {})),
        seed=seed,
        source=source,
        weights=weights,
    )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.name) or not cfg.name.strip("."):
        raise ConfigError(f"Study name must use letters, digits, '.', '_' or '-', got "
                          f"{cfg.name!r}.")
    if data.val_size <= 0:
        raise ConfigError(f"data.val_size={data.val_size}: the search needs a validation split "
                          f"carved from the training set (e.g. 5000 images).")
    if not cfg.budget.items():
        raise ConfigError("The study sets no budget: add [budget] with size, size_mib, macs, "
                          "macs_abs, latency or latency_ms (or --budget size=0.25).")
    if not MODES[cfg.search.mode].channels and ("latency" in cfg.search.objectives
                                                 or "latency" in cfg.budget.axes()):
        raise ConfigError("Fine-grained sparsity does not change dense-kernel latency; use "
                          "mode 'channel' or 'hybrid' for latency objectives or budgets.")
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """Read a study TOML file and apply ``section.key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Study file {path} does not exist (studies live in "
                          f"{STUDIES_DIR}/*.toml).")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from exc
    cfg = config_from_dict(apply_overrides(raw, overrides or []), path.stem, str(path))
    return dataclasses.replace(cfg, overrides=tuple(overrides or ()))
