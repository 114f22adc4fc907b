"""Scoring a policy: prune -> recalibrate batch norm -> fine-tune -> accuracy.

Two uses, one implementation:

* :class:`ProxyScorer` is the search's cheap score: a short fine-tune (``proxy.steps``) on the
  same batches for every trial (same seed) and the same validation subset (common random
  numbers), so differences between trials are differences between policies, not between draws
  of data. Confirmation re-scores with fresh seeds on other validation images.
* :func:`final_finetune` is finalize's full fine-tune (``finalize.epochs``), scored on the TEST
  split, with the pruned model's latency measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

from torch import nn

from autoprune.engine.metrics import LatencyResult, count_macs, count_nonzero, model_size_mib
from autoprune.engine.policy import Policy, get_mode
from autoprune.engine.prune import channel_prune
from autoprune.search.workspace import Workspace
from autoprune.train import TrainRecipe, evaluate, recalibrate_bn, train

__all__ = ["Score", "ProxyScorer", "Finetuned", "final_finetune"]


@dataclass(frozen=True)
class Score:
    """What one scoring of a policy measured."""

    accuracy: float
    accuracy_before_ft: float | None
    size_mib: float
    params: int
    macs: int
    latency_ms: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class _Eval(NamedTuple):
    split: str
    start: int
    limit: int | None


def _tune_and_evaluate(ws: Workspace, policy: Policy, seed: int, recipe: TrainRecipe | None,
                       where: _Eval, *, before: bool, distill: tuple[float, float] = (0.0, 4.0)
                       ) -> tuple[nn.Module, float, float | None]:
    """Prune a copy of the baseline, recalibrate (images drawn by ``seed``), fine-tune with
    ``recipe`` (none: no fine-tune; ``distill``: weight and temperature of distillation from
    the dense baseline), evaluate."""
    model, pruner = policy.apply(ws.baseline.model, ws.example_input())
    recal = ws.cfg.proxy.recalibrate
    if policy.keep and recal:
        recalibrate_bn(model, ws.data, images=recal, seed=seed, device=ws.device)
    acc_before = evaluate(model, ws.data, where.split, limit=where.limit, start=where.start,
                          device=ws.device) if before else None
    if recipe is not None:
        weight, temperature = distill
        train(model, ws.data, recipe, device=ws.device,
              after_step=pruner.apply if pruner else None, progress=False,
              teacher=ws.baseline.model if weight > 0 else None, distill=weight,
              temperature=temperature)
    acc = evaluate(model, ws.data, where.split, limit=where.limit, start=where.start,
                   device=ws.device)
    return model.cpu().eval(), acc, acc_before


def _recipe(ws: Workspace, seed: int, *, steps: int | None = None, epochs: int | None = None,
            lr: float) -> TrainRecipe:
    return TrainRecipe(epochs=epochs or 1, steps=steps, batch_size=ws.cfg.proxy.batch_size,
                       lr=lr, schedule="cosine", weight_decay=ws.cfg.recipe.weight_decay,
                       seed=seed, precision=ws.cfg.recipe.precision,
                       channels_last=ws.cfg.recipe.channels_last)


class ProxyScorer:
    """The search's score of a policy.

    Args:
        ws: The study's workspace (data, baseline).
        dense_latency_ms: The study's dense latency, reported for policies that keep the
            dense structure (fine-grained zeros do not speed up dense kernels).

    Under a latency budget given as a ratio of dense, a channel-pruned candidate is timed
    alternately with the dense model in the same run, and its latency is recorded as that
    ratio times the study's dense reference: drifts of a shared machine (other processes,
    other workers, frequency changes) hit both and cancel, so a trial's feasibility does not
    depend on when it was measured (``reports/benchmarks/workers_demo.md``).
    """

    def __init__(self, ws: Workspace, dense_latency_ms: float) -> None:
        self.ws = ws
        self.dense_latency_ms = dense_latency_ms

    def score(self, policy: Policy, *, seed: int | None = None,
              images: tuple[int, int] | None = None, steps: int | None = None,
              latency: bool = True, latency_ms: float | None = None) -> Score:
        """Prune, recalibrate, fine-tune ``proxy.steps`` steps and validate.

        Args:
            seed: Fine-tune seed (default: the study's shared proxy seed).
            images: ``(start, count)`` of the validation images scored (default: the first
                ``proxy.val_limit``).
            steps: Fine-tune steps instead of ``proxy.steps`` (0: recalibration only).
            latency: Time the pruned model; ``False`` for re-scores that keep only the
                accuracy (confirmation, promotion), whose ``latency_ms`` is then NaN.
            latency_ms: The latency of ``policy``'s channel structure, already measured (by
                the latency refit, before fine-tuning): recorded instead of timing the same
                structure again (fine-tuning changes weights, never shapes).
        """
        start = time.perf_counter()
        p = self.ws.cfg.proxy
        seed = p.seed if seed is None else seed
        steps = p.steps if steps is None else steps
        first, count = images if images is not None else (0, p.val_limit)
        recipe = _recipe(self.ws, seed, steps=steps, lr=p.lr) if steps else None
        model, acc, _ = _tune_and_evaluate(self.ws, policy, seed, recipe,
                                           _Eval("val", first, count), before=False,
                                           distill=(p.distill, p.temperature))
        if not latency:
            ms = math.nan
        elif latency_ms is not None:
            ms = latency_ms
        elif get_mode(policy.mode).channels:
            ms = self.measure_latency(model)
        else:  # fine-grained sparsity leaves the dense structure, and its latency
            ms = self.dense_latency_ms
        return Score(acc, None, model_size_mib(model), count_nonzero(model),
                     count_macs(model, self.ws.input_size), ms,
                     time.perf_counter() - start)

    def measure_latency(self, model: nn.Module) -> float:
        """The candidate's latency in ms: interleaved with dense under a ratio budget (see
        the class), else measured alone."""
        if self.ws.cfg.budget.latency is None:
            return self.ws.measure_latency(model).median_ms
        return self.dense_latency_ms / self.ws.measure_speedup(model, repeats=1).speedup

    def structure_latency(self, policy: Policy) -> float:
        """Latency in ms of ``policy``'s channel structure (the baseline's channels pruned,
        no fine-tune: latency does not depend on the weights), measured as
        :meth:`measure_latency` measures a trial."""
        model = channel_prune(self.ws.baseline.model, policy.keep, self.ws.example_input())
        return self.measure_latency(model.eval())


class Finetuned(NamedTuple):
    """A finalized policy: its score (TEST split), the model and its measured latency."""

    score: Score
    model: nn.Module
    latency: LatencyResult


def final_finetune(ws: Workspace, policy: Policy, *, seed: int | None = None) -> Finetuned:
    """The study's finalize fine-tune of ``policy`` (``finalize.epochs``, or exactly
    ``finalize.steps`` optimiser steps when set), scored on the whole TEST split before and
    after fine-tuning; latency measured with the study's latency settings."""
    start = time.perf_counter()
    cfg = ws.cfg
    seed = cfg.seed if seed is None else seed
    recipe = _recipe(ws, seed, epochs=cfg.finalize.epochs, steps=cfg.finalize.steps or None,
                     lr=cfg.finalize.lr)
    model, acc, before = _tune_and_evaluate(ws, policy, seed, recipe, _Eval("test", 0, None),
                                            before=True, distill=(cfg.finalize.distill,
                                                                  cfg.finalize.temperature))
    lat = ws.measure_latency(model)
    score = Score(acc, before, model_size_mib(model), count_nonzero(model),
                  count_macs(model, ws.input_size), lat.median_ms, time.perf_counter() - start)
    return Finetuned(score, model, lat)
