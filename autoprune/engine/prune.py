"""Fine-grained magnitude pruning (masks) and channel pruning by coupling group.

Fine-grained: zero exactly ``round(numel x sparsity)`` weights of lowest ``|w|`` per tensor
and keep them zero during fine-tuning with :class:`FineGrainedPruner`.

Channel: one keep ratio per coupling group (:mod:`autoprune.engine.groups`), channels chosen by
importance (group L2 magnitude by default), never by index order, on a copy of the model. The
classifier's output is never pruned.

Example:
    >>> model = build_model(ModelSpec("vgg", 1.0, 3, 10))            # doctest: +SKIP
    >>> x = torch.randn(1, 3, 32, 32)
    >>> small = channel_prune(model, 0.7, x)                          # doctest: +SKIP
    >>> pruner = FineGrainedPruner(small, {"features.0.weight": 0.5})  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from autoprune.engine.groups import (
    IMPORTANCES,
    build_graph,
    classifier_name,
    coupling_groups,
    prune_groups,
)
from autoprune.engine.metrics import prunable_layers

__all__ = [
    "fine_grained_prune",
    "FineGrainedPruner",
    "channel_prune",
    "check_ratios",
    "replay_pruning_history",
    "weight_names",
    "normalize_weight_name",
]


# --------------------------------------------------------------------------- fine-grained


@torch.no_grad()
def fine_grained_prune(tensor: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero exactly ``round(numel x sparsity)`` entries of lowest magnitude, in place.

    Ties are broken by position (stable sort), so the count never depends on them.

    Returns:
        The 0/1 mask (same shape and dtype as ``tensor``).
    """
    sparsity = min(max(float(sparsity), 0.0), 1.0)
    n = tensor.numel()
    k = int(round(n * sparsity))
    mask = torch.ones_like(tensor)
    if k > 0:
        order = torch.argsort(tensor.detach().abs().flatten(), stable=True)
        mask.view(-1)[order[:k]] = 0
    tensor.mul_(mask)
    return mask


def weight_names(model: nn.Module) -> list[str]:
    """FQNs of every conv / linear weight (``features.0.weight``), in definition order."""
    return [f"{name}.weight" for name in prunable_layers(model)]


def normalize_weight_name(name: str) -> str:
    return name if name.endswith(".weight") else f"{name}.weight"


def check_ratios(ratios: Mapping[str, float], allowed: list[str], what: str) -> None:
    """One ValueError naming every unknown key and every ratio outside [0, 1]."""
    allowed_set = set(allowed)
    unknown = sorted(k for k in ratios if k not in allowed_set)
    bad = sorted(f"{k}={v!r}" for k, v in ratios.items()
                 if not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0))
    problems = []
    if unknown:
        problems.append(f"unknown {what} {unknown} (known: {sorted(allowed_set)})")
    if bad:
        problems.append(f"ratios outside [0, 1]: {bad}")
    if problems:
        raise ValueError("; ".join(problems) + ".")


class FineGrainedPruner:
    """Masks for conv / linear weights, keyed by FQN, built by magnitude from a sparsity dict.

    Args:
        model: The model whose weights are pruned (in place).
        sparsity_dict: ``{"features.0.weight": 0.4, ...}``; a module FQN (``features.0``) means
            its weight.

    Raises:
        ValueError: Unknown names, names of non-weight tensors or ratios outside [0, 1],
            all offenders named in one message.
    """

    def __init__(self, model: nn.Module, sparsity_dict: Mapping[str, float]) -> None:
        names = weight_names(model)
        normalized = {normalize_weight_name(k): v for k, v in sparsity_dict.items()}
        params = dict(model.named_parameters())
        non_weight = sorted(k for k in sparsity_dict
                            if k in params and normalize_weight_name(k) not in names)
        if non_weight:
            raise ValueError(f"{non_weight} are not conv/linear weights; sparsity applies only "
                             f"to {names}.")
        check_ratios(normalized, names, "weight names")
        self.sparsity = dict(normalized)
        self.masks: dict[str, torch.Tensor] = {}
        for name, s in self.sparsity.items():
            self.masks[name] = fine_grained_prune(params[name].data, s).bool()

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Re-zero the pruned weights (call after every optimiser step)."""
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            p = params[name]
            p.mul_(mask.to(p.device))

    __call__ = apply


# --------------------------------------------------------------------------- channel


def channel_prune(
    model: nn.Module,
    keep_ratios: float | Mapping[str, float],
    example_inputs: torch.Tensor,
    *,
    round_to: int | None = None,
    importance: str = "l2",
    seed: int = 0,
) -> nn.Module:
    """A physically smaller copy of ``model``; the original is untouched.

    Args:
        keep_ratios: One keep ratio for every prunable group, or ``{group id: keep ratio}``
            (groups not named keep all channels).
        example_inputs: A batch the model accepts, for tracing.
        round_to: Round each kept channel count to a multiple of this (hardware friendly).
        importance: ``l2`` (default) or ``l1`` group magnitude; ``index`` (keep the first
            channels) and ``random`` exist only as counter-examples.

    Returns:
        The pruned model, with the replayable Torch-Pruning history in its attribute
        ``autoprune_pruning_history``. Keep count per group: ``max(1, round(keep x channels))``.

    Raises:
        ValueError: Unknown group ids, ratios outside [0, 1], or a ratio below 1 for a group
            that cannot be pruned safely.
    """
    if importance not in IMPORTANCES:
        raise ValueError(f"importance must be one of {IMPORTANCES}, got {importance!r}.")
    groups = coupling_groups(model, example_inputs)
    prunable = {g.id for g in groups if g.prunable}
    if isinstance(keep_ratios, Mapping):
        check_ratios(keep_ratios, [g.id for g in groups], "group ids")
        blocked = [f"{g.id} ({g.reason})" for g in groups
                   if not g.prunable and keep_ratios.get(g.id, 1.0) < 1.0]
        if blocked:
            raise ValueError(f"These groups cannot be pruned safely: {blocked}.")
        keep = dict(keep_ratios)
    else:
        check_ratios({"keep_ratios": keep_ratios}, ["keep_ratios"], "keys")
        keep = {gid: float(keep_ratios) for gid in prunable}
    pruned = copy.deepcopy(model)
    was_training = pruned.training
    pruned.eval()
    history = prune_groups(pruned, example_inputs, keep,
                           classifier=classifier_name(pruned, example_inputs),
                           importance=importance, round_to=round_to, seed=seed)
    pruned.train(was_training)
    pruned.autoprune_pruning_history = history
    return pruned


def replay_pruning_history(model: nn.Module, history: list, example_inputs: torch.Tensor) -> None:
    """Re-apply a recorded channel pruning to a freshly built model, in place."""
    if not history:
        return
    dg = build_graph(model, example_inputs)
    dg.load_pruning_history([(name, bool(out), list(idxs)) for name, out, idxs in history])
    model.autoprune_pruning_history = [list(h) for h in history]
