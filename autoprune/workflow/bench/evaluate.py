"""Cached evaluations of policies for a benchmark: each result is a small JSON file keyed by
everything it depends on (baseline weights, data, scoring settings, policy, seed), written
atomically, so a killed or timed-out benchmark continues where it stopped."""

from __future__ import annotations

import json
from collections.abc import Callable

from autoprune.cache import atomic_path, cache_dir, hash_key
from autoprune.engine.policy import Policy
from autoprune.search import PruneSearch
from autoprune.search.config import distill_key
from autoprune.search.scoring import final_finetune

__all__ = ["Evaluator"]


class Evaluator:
    """Evaluations of a study's policies, each computed once.

    Args:
        search: A study that has run (its workspace, space and scorer are built).
    """

    def __init__(self, search: PruneSearch) -> None:
        self.search = search
        ws, cfg = search.ws_, search.cfg
        common = (ws.baseline.path, ws.data.fingerprint, cfg.recipe.to_dict())
        # a finalize fine-tune reads only these of the proxy settings (batch-norm
        # recalibration and batch size), so changing any other one (steps, confirmation,
        # rungs, picks) re-runs no finalized point
        self._bases = {
            "final": hash_key(*common, "final", repr(cfg.finalize), cfg.proxy.recalibrate,
                              cfg.proxy.batch_size, *distill_key(cfg.finalize)),
            "proxy": hash_key(*common, "proxy", repr(cfg.proxy), *distill_key(cfg.proxy))}
        self.dir = cache_dir("bench")
        self.computed = 0

    def _cached(self, kind: str, policy: Policy, extra: dict,
                compute: Callable[[], dict]) -> dict:
        key = hash_key(self._bases[kind], policy.sparsity, policy.keep, extra)
        path = self.dir / f"{kind}-{key}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass  # a torn or foreign file: recompute
        out = compute()
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(out))
        self.computed += 1
        return out

    def finetuned(self, policy: Policy, seed: int) -> dict:
        """The study's finalize fine-tune with ``seed``: TEST accuracy before / after, size,
        MACs, params, seconds."""
        def compute() -> dict:
            score = final_finetune(self.search.ws_, policy, seed=seed).score
            return {"test_acc": score.accuracy, "test_acc_before_ft": score.accuracy_before_ft,
                    "size_mib": score.size_mib, "macs": score.macs, "params": score.params,
                    "seconds": score.seconds}
        return self._cached("final", policy, {"seed": seed}, compute)

    def proxy(self, policy: Policy, *, seed: int | None = None,
              images: tuple[int, int] | None = None, steps: int | None = None) -> dict:
        """The proxy score (validation accuracy) with the given seed, images and steps."""
        def compute() -> dict:
            s = self.search.scorer_.score(policy, seed=seed, images=images, steps=steps)
            return {"accuracy": s.accuracy, "seconds": s.seconds}
        return self._cached("proxy", policy, {"seed": seed, "images": images, "steps": steps},
                            compute)
