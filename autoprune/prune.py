"""Fine-grained magnitude pruning (masks) and channel pruning by coupling group.

Fine-grained: zero exactly ``round(numel x sparsity)`` weights of lowest ``|w|`` per tensor
and keep them zero during fine-tuning with :class:`FineGrainedPruner`.

Channel: Torch-Pruning's dependency graph finds the coupling groups (layers whose channels must
go together: a conv with its batch norm and the next layer's inputs, every branch of a residual
add, a depthwise conv and its producer). Each group gets a stable id built from the FQNs of the
layers whose outputs it removes, and is pruned by importance (group L2 magnitude by default),
never by index order. The classifier's output is never pruned.

Example:
    >>> model = build_model(ModelSpec("vgg", 1.0, 3, 10))            # doctest: +SKIP
    >>> x = torch.randn(1, 3, 32, 32)
    >>> small = channel_prune(model, 0.7, x)                          # doctest: +SKIP
    >>> pruner = FineGrainedPruner(small, {"features.0.weight": 0.5})  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch

# torch_pruning imports torch.utils.cpp_extension, which logs a CUDA_HOME warning on CPU hosts
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch_pruning as tp  # noqa: E402
from torch import nn  # noqa: E402

from autoprune.metrics import prunable_layers  # noqa: E402

__all__ = [
    "fine_grained_prune",
    "FineGrainedPruner",
    "CouplingGroup",
    "coupling_groups",
    "channel_prune",
    "classifier_name",
    "weight_names",
    "normalize_weight_name",
]

_IMPORTANCES = ("l2", "l1", "index", "random")


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


def trace_forward(model: nn.Module, example_inputs: torch.Tensor, handles: list) -> None:
    """One eval-mode, no-grad forward pass for the given hooks, which are then removed."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def classifier_name(model: nn.Module, example_inputs: torch.Tensor) -> str:
    """FQN of the conv / linear layer that runs last: the classifier, never pruned."""
    order: list[str] = []
    trace_forward(model, example_inputs,
                  [m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n))
                   for n, m in prunable_layers(model).items()])
    if not order:
        raise ValueError("The model has no conv or linear layer to prune.")
    return order[-1]


@dataclass(frozen=True)
class CouplingGroup:
    """Layers whose channels must be removed together.

    Attributes:
        id: Stable id: the FQNs of the layers whose output channels it removes, joined by "+".
        layers: Those layers (output channels removed).
        consumers: Layers whose input channels are removed with them.
        channels: Channels in the group.
        prunable: Whether removing channels keeps the model runnable.
        reason: Why not, when not.
    """

    id: str
    layers: tuple[str, ...]
    consumers: tuple[str, ...]
    channels: int
    prunable: bool
    reason: str | None = None


def _build_graph(model: nn.Module, example_inputs: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs,
                                                     verbose=False)


def _iter_groups(model: nn.Module, dg, classifier: nn.Module):
    """(group id, root module, group, out layers, in layers) for each coupling group."""
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    for group in dg.get_all_groups(ignored_layers=[classifier],
                                   root_module_types=(nn.Conv2d, nn.Linear)):
        outs, ins = [], []
        for dep, _ in group:
            mod = dep.target.module
            if not isinstance(mod, (nn.Conv2d, nn.Linear)) or mod not in names:
                continue
            is_depthwise = isinstance(mod, nn.Conv2d) and mod.groups == mod.out_channels > 1
            if dg.is_out_channel_pruning_fn(dep.handler) or is_depthwise:
                outs.append(names[mod])
            elif dg.is_in_channel_pruning_fn(dep.handler):
                ins.append(names[mod])
        outs = sorted(set(outs), key=order.get)
        ins = sorted(set(ins) - set(outs), key=order.get)
        root = group[0].dep.target.module
        yield "+".join(outs), root, group, tuple(outs), tuple(ins)


def _out_channels(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def coupling_groups(model: nn.Module, example_inputs: torch.Tensor) -> list[CouplingGroup]:
    """The model's coupling groups, each checked for safe pruning.

    A group is prunable when removing one channel (on a copy) leaves a model that still runs
    and gives outputs of the same shape; otherwise the reason is recorded (for example a
    hard-coded ``view(-1, 576)`` downstream). The original model is untouched.
    """
    signature = (type(model).__module__, type(model).__qualname__, repr(model),
                 tuple(example_inputs.shape))
    if signature not in _GROUP_CACHE:
        _GROUP_CACHE[signature] = _find_groups(model, example_inputs)
    return list(_GROUP_CACHE[signature])


_GROUP_CACHE: dict[tuple, list[CouplingGroup]] = {}


def _find_groups(model: nn.Module, example_inputs: torch.Tensor) -> list[CouplingGroup]:
    probe = copy.deepcopy(model).eval()
    cls_name = classifier_name(probe, example_inputs)
    modules = dict(probe.named_modules())
    dg = _build_graph(probe, example_inputs)
    order = {n: i for i, n in enumerate(modules)}
    found = sorted(((gid, outs, ins, _out_channels(root))
                    for gid, root, _g, outs, ins in _iter_groups(probe, dg, modules[cls_name])),
                   key=lambda g: order[g[1][0]])
    multi = {gid: (c - 1) / c for gid, _o, _i, c in found if c > 1}
    # fast path: one channel out of every group at once; probe one by one only if that fails
    all_ok = _try_prune(model, example_inputs, cls_name, multi)[0]
    groups = []
    for gid, outs, ins, channels in found:
        if channels < 2:
            ok, reason = False, "a single channel cannot be pruned"
        elif all_ok:
            ok, reason = True, None
        else:
            ok, reason = _try_prune(model, example_inputs, cls_name, {gid: multi[gid]})
        groups.append(CouplingGroup(gid, outs, ins, channels, ok, reason))
    return groups


def _try_prune(model, example_inputs, cls_name, keep) -> tuple[bool, str | None]:
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = probe(example_inputs).shape
    try:
        _prune_groups(probe, example_inputs, keep, "l2", None, cls_name)
        with torch.no_grad():
            got = probe(example_inputs).shape
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot prune safely"
        return False, f"pruning it breaks the forward pass ({type(exc).__name__}: " \
                      f"{str(exc).splitlines()[0][:120]})"
    if got != expected:
        return False, f"pruning it changes the output shape from {tuple(expected)} to " \
                      f"{tuple(got)}"
    return True, None


def _keep_count(keep: float, channels: int, round_to: int | None) -> int:
    n = max(1, int(round(keep * channels)))
    if round_to:
        n = max(round_to, int(round(n / round_to)) * round_to)
    return min(n, channels)


def _channel_scores(group, importance: str, channels: int, seed: int) -> torch.Tensor:
    if importance == "index":
        # higher score for lower index: keeps the first channels, the lab's counter-example
        return -torch.arange(channels, dtype=torch.float32)
    if importance == "random":
        return torch.rand(channels, generator=torch.Generator().manual_seed(seed))
    p = 2 if importance == "l2" else 1
    return tp.importance.GroupMagnitudeImportance(p=p, normalizer=None)(group)


def _prune_groups(model, example_inputs, keep, importance, round_to, cls_name, seed=0):
    """Prune ``model`` in place; returns Torch-Pruning's pruning history."""
    modules = dict(model.named_modules())
    dg = _build_graph(model, example_inputs)
    for gid, root, group, _outs, _ins in list(_iter_groups(model, dg, modules[cls_name])):
        if gid not in keep:
            continue
        channels = _out_channels(root)
        n_keep = _keep_count(keep[gid], channels, round_to)
        if n_keep >= channels:
            continue
        # the group was built before earlier groups were pruned; rebuild it for fresh indices
        pruner = dg.get_pruner_of_module(root)
        group = dg.get_pruning_group(root, pruner.prune_out_channels, list(range(channels)))
        scores = _channel_scores(group, importance, channels, seed)
        drop = torch.argsort(scores, stable=True)[: channels - n_keep].tolist()
        dg.get_pruning_group(root, pruner.prune_out_channels, sorted(drop)).prune()
    return [list(h) for h in dg.pruning_history()]


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
    if importance not in _IMPORTANCES:
        raise ValueError(f"importance must be one of {_IMPORTANCES}, got {importance!r}.")
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
    history = _prune_groups(pruned, example_inputs, keep, importance, round_to,
                            classifier_name(pruned, example_inputs), seed=seed)
    pruned.train(was_training)
    pruned.autoprune_pruning_history = history
    return pruned


def replay_pruning_history(model: nn.Module, history: list, example_inputs: torch.Tensor) -> None:
    """Re-apply a recorded channel pruning to a freshly built model, in place."""
    if not history:
        return
    dg = _build_graph(model, example_inputs)
    dg.load_pruning_history([(name, bool(out), list(idxs)) for name, out, idxs in history])
    model.autoprune_pruning_history = [list(h) for h in history]
