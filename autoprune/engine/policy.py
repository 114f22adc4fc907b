"""Policies: per-layer sparsities and/or per-group channel keep-ratios, as versioned JSON.

Example:
    >>> p = Policy("fine", sparsity={"features.0.weight": 0.4})
    >>> Policy.from_json(p.to_json()) == p
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Policy", "Mode", "MODES", "get_mode", "POLICY_VERSION"]

POLICY_VERSION = 1


@dataclass(frozen=True)
class Mode:
    """What a pruning mode does; the one place that knows, so no module tests mode names.

    Attributes:
        name: ``fine``, ``channel`` or ``hybrid``.
        sparsity: Its policies hold per-weight sparsities (weights zeroed).
        channels: Its policies hold per-group channel keep ratios (channels removed). Only
            these change the structure, and so the latency of dense kernels.
        scan: The sensitivity scan that informs it (``fine`` or ``channel``).
    """

    name: str
    sparsity: bool
    channels: bool
    scan: str


MODES: dict[str, Mode] = {
    "fine": Mode("fine", sparsity=True, channels=False, scan="fine"),
    "channel": Mode("channel", sparsity=False, channels=True, scan="channel"),
    "hybrid": Mode("hybrid", sparsity=True, channels=True, scan="channel"),
}


def get_mode(name: str) -> Mode:
    """The :class:`Mode` called ``name``; ValueError naming the known ones otherwise."""
    if name not in MODES:
        raise ValueError(f"Policy mode must be one of {tuple(MODES)}, got {name!r}.")
    return MODES[name]


@dataclass
class Policy:
    """What to prune, keyed by FQN so it saves to JSON.

    Args:
        mode: ``fine`` (weights zeroed), ``channel`` (channels removed) or ``hybrid`` (channels
            removed, then the remaining weights sparsified).
        sparsity: Conv / linear weight FQN -> sparsity (fraction of zeros), for fine / hybrid.
        keep: Coupling-group id -> channel keep ratio, for channel / hybrid.
        model: The model spec (``ModelSpec.to_dict()``) the policy was made for.
        input_size: ``(C, H, W)`` the model takes (channel pruning traces with it).
        meta: Free-form provenance (study, trial, baseline name).
    """

    mode: str
    sparsity: dict[str, float] = field(default_factory=dict)
    keep: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    input_size: tuple[int, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = POLICY_VERSION

    def __post_init__(self) -> None:
        mode = get_mode(self.mode)
        if self.keep and not mode.channels:
            raise ValueError(f"A {self.mode!r} policy cannot hold channel keep ratios; use "
                             f"'hybrid'.")
        if self.sparsity and not mode.sparsity:
            raise ValueError(f"A {self.mode!r} policy cannot hold sparsities; use 'hybrid'.")
        for what, ratios in (("sparsity", self.sparsity), ("keep ratio", self.keep)):
            bad = sorted(f"{k}={v!r}" for k, v in ratios.items()
                         if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0)
            if bad:
                raise ValueError(f"{what} values must lie in [0, 1]; got {bad}.")
        if self.input_size is not None:
            self.input_size = tuple(int(v) for v in self.input_size)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "autoprune-policy",
            "version": self.version,
            "mode": self.mode,
            "model": self.model,
            "input_size": list(self.input_size) if self.input_size else None,
            "sparsity": dict(self.sparsity),
            "keep": dict(self.keep),
            "meta": dict(self.meta),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        if d.get("format") != "autoprune-policy":
            raise ValueError("Not an autoprune policy: the 'format' field is missing or wrong.")
        if d.get("version") != POLICY_VERSION:
            raise ValueError(f"Unsupported policy version {d.get('version')!r}; this autoprune "
                             f"reads version {POLICY_VERSION}.")
        return cls(d["mode"], dict(d.get("sparsity") or {}), dict(d.get("keep") or {}),
                   d.get("model"), tuple(d["input_size"]) if d.get("input_size") else None,
                   dict(d.get("meta") or {}))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Policy JSON is malformed: {exc}.") from exc
        return cls.from_dict(d)

    def to_sparsity_dict(self) -> dict[str, float]:
        """``{"features.0.weight": 0.4, ...}`` for ``FineGrainedPruner``-style code."""
        return dict(self.sparsity)

    def to_channel_ratios(self) -> dict[str, float]:
        """Coupling-group id -> channel *pruning* ratio (1 - keep)."""
        return {k: round(1.0 - v, 10) for k, v in self.keep.items()}

    # ------------------------------------------------------------------ application

    def check_fits(self, model: nn.Module, example_inputs: torch.Tensor) -> None:
        """Raise one ValueError listing missing and extra names when the policy does not fit."""
        from autoprune.engine.groups import coupling_groups
        from autoprune.engine.prune import normalize_weight_name, weight_names

        problems = []
        if self.keep:
            ids = {g.id for g in coupling_groups(model, example_inputs) if g.prunable}
            extra = sorted(set(self.keep) - ids)
            missing = sorted(ids - set(self.keep))
            if extra or missing:
                problems.append(f"channel groups missing {missing}, extra {extra}")
        if self.sparsity and not self.keep:
            names = set(weight_names(model))
            given = {normalize_weight_name(k) for k in self.sparsity}
            extra, missing = sorted(given - names), sorted(names - given)
            if extra or missing:
                problems.append(f"weights missing {missing}, extra {extra}")
        if problems:
            raise ValueError("The policy does not fit this model: " + "; ".join(problems) + ".")

    def apply(self, model: nn.Module, example_inputs: torch.Tensor, *,
              importance: str = "l2"):
        """Prune a copy of ``model``.

        Returns:
            ``(pruned_model, fine_grained_pruner_or_None)``; call the pruner's ``apply`` after
            each optimiser step to keep zeros at zero.
        """
        import copy

        from autoprune.engine.prune import FineGrainedPruner, channel_prune

        self.check_fits(model, example_inputs)
        pruned = (channel_prune(model, self.keep, example_inputs, importance=importance)
                  if self.keep else copy.deepcopy(model))
        pruner = FineGrainedPruner(pruned, self.sparsity) if self.sparsity else None
        return pruned, pruner
