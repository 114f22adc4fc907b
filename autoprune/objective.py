"""Proxy scoring of one policy: prune -> recalibrate BN -> short fine-tune -> validation accuracy.

Every trial fine-tunes on the same batches (same seed) and is scored on the same validation
subset (common random numbers), so differences between trials are differences between
policies, not between draws of data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from autoprune.config import StudyConfig
from autoprune.metrics import count_macs, count_nonzero, model_size_mib
from autoprune.policy import Policy
from autoprune.train import TrainRecipe, evaluate, recalibrate_bn, train
from autoprune.workspace import Workspace

__all__ = ["Score", "ProxyScorer"]


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


class ProxyScorer:
    """Scores policies for a study.

    Args:
        ws: The study's workspace (data, baseline, dense metrics).
        measure_latency: Measure each pruned model's latency (channel / hybrid); fine-grained
            sparsity keeps dense kernels, so its latency is the dense latency.
    """

    def __init__(self, ws: Workspace, measure_latency: bool | None = None) -> None:
        self.ws = ws
        self.cfg: StudyConfig = ws.cfg
        self.measure = (ws.cfg.search.mode != "fine") if measure_latency is None \
            else measure_latency

    def recipe(self, seed: int, steps: int | None = None, epochs: int | None = None,
               lr: float | None = None) -> TrainRecipe:
        p = self.cfg.proxy
        return TrainRecipe(epochs=epochs or 1, steps=steps if epochs is None else None,
                           batch_size=p.batch_size, lr=lr or p.lr, schedule="cosine",
                           weight_decay=self.cfg.recipe.weight_decay, seed=seed)

    def score(self, policy: Policy, *, seed: int | None = None, val_start: int = 0,
              val_limit: int | None = None, split: str = "val", steps: int | None = None,
              epochs: int | None = None, lr: float | None = None, before: bool = False,
              return_model: bool = False):
        """Prune, recalibrate, fine-tune and evaluate.

        Args:
            seed: Fine-tune seed (default: the study's shared proxy seed).
            val_start, val_limit: The evaluation images of ``split``.
            steps / epochs: Fine-tune length (default: the proxy's steps).
            before: Also evaluate before fine-tuning.
            return_model: Return ``(Score, model)``.
        """
        start = time.perf_counter()
        p = self.cfg.proxy
        ws = self.ws
        seed = p.seed if seed is None else seed
        limit = p.val_limit if val_limit is None and split == "val" else val_limit
        model, pruner = policy.apply(ws.baseline.model, ws.example_input())
        if policy.keep and p.recalibrate:
            recalibrate_bn(model, ws.data, images=p.recalibrate, seed=seed, device=ws.device)
        acc_before = None
        if before:
            acc_before = evaluate(model, ws.data, split, limit=limit, start=val_start,
                                  device=ws.device)
        n_steps = p.steps if steps is None and epochs is None else steps
        if epochs or n_steps:
            train(model, ws.data, self.recipe(seed, n_steps, epochs, lr), device=ws.device,
                  after_step=pruner.apply if pruner else None, progress=False)
        acc = evaluate(model, ws.data, split, limit=limit, start=val_start, device=ws.device)
        model.cpu().eval()
        latency = (ws.measure_latency(model).median_ms if self.measure
                   else ws.dense["latency_ms"])
        score = Score(acc, acc_before, model_size_mib(model), count_nonzero(model),
                      count_macs(model, ws.input_size), latency, time.perf_counter() - start)
        return (score, model) if return_model else score
