"""Coupling groups: layers whose channels must be removed together, found through
Torch-Pruning's dependency graph.

A conv with its batch norm and the next layer's inputs form one group; so do every branch of a
residual add, and a depthwise conv with its producer. Each group has a stable id built from the
FQNs of the layers whose outputs it removes (``conv1+layers.0.conv2``), so policies key by it
and save to JSON. The classifier's output is never pruned.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

# torch_pruning imports torch.utils.cpp_extension, which logs a CUDA_HOME warning on CPU hosts
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
import torch_pruning as tp  # noqa: E402
from torch import nn  # noqa: E402

from autoprune.engine.metrics import prunable_layers  # noqa: E402

__all__ = [
    "CouplingGroup",
    "IMPORTANCES",
    "build_graph",
    "classifier_name",
    "coupling_groups",
    "iter_groups",
    "keep_count",
    "prune_groups",
    "trace_forward",
]

IMPORTANCES = ("l2", "l1", "index", "random")


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


def keep_count(keep: float, channels: int, round_to: int | None = None) -> int:
    """Channels kept of ``channels`` at ratio ``keep``: ``max(1, round(keep x channels))``,
    optionally rounded to a multiple of ``round_to``."""
    n = max(1, int(round(keep * channels)))
    if round_to:
        n = max(round_to, int(round(n / round_to)) * round_to)
    return min(n, channels)


def build_graph(model: nn.Module, example_inputs: torch.Tensor) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model`` (traced with ``example_inputs``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs,
                                                     verbose=False)


def iter_groups(model: nn.Module, dg: tp.DependencyGraph, classifier: nn.Module
                ) -> Iterator[tuple[str, nn.Module, object, tuple[str, ...], tuple[str, ...]]]:
    """``(group id, root module, Torch-Pruning group, out layers, in layers)`` per group."""
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
    dg = build_graph(probe, example_inputs)
    order = {n: i for i, n in enumerate(modules)}
    found = sorted(((gid, outs, ins, _out_channels(root))
                    for gid, root, _g, outs, ins in iter_groups(probe, dg, modules[cls_name])),
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
        prune_groups(probe, example_inputs, keep, classifier=cls_name)
        with torch.no_grad():
            got = probe(example_inputs).shape
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot prune safely"
        return False, f"pruning it breaks the forward pass ({type(exc).__name__}: " \
                      f"{str(exc).splitlines()[0][:120]})"
    if got != expected:
        return False, f"pruning it changes the output shape from {tuple(expected)} to " \
                      f"{tuple(got)}"
    return True, None


def _channel_scores(group, importance: str, channels: int, seed: int) -> torch.Tensor:
    if importance == "index":
        # higher score for lower index: keeps the first channels, the lab's counter-example
        return -torch.arange(channels, dtype=torch.float32)
    if importance == "random":
        return torch.rand(channels, generator=torch.Generator().manual_seed(seed))
    p = 2 if importance == "l2" else 1
    return tp.importance.GroupMagnitudeImportance(p=p, normalizer=None)(group)


def prune_groups(model: nn.Module, example_inputs: torch.Tensor, keep: Mapping[str, float], *,
                 classifier: str, importance: str = "l2", round_to: int | None = None,
                 seed: int = 0) -> list[list]:
    """Remove channels of the named groups from ``model`` in place, lowest importance first.

    Returns:
        Torch-Pruning's pruning history (replayable on a fresh model).
    """
    modules = dict(model.named_modules())
    dg = build_graph(model, example_inputs)
    for gid, root, _group, _outs, _ins in list(iter_groups(model, dg, modules[classifier])):
        if gid not in keep:
            continue
        channels = _out_channels(root)
        n_keep = keep_count(keep[gid], channels, round_to)
        if n_keep >= channels:
            continue
        # the group was built before earlier groups were pruned; rebuild it for fresh indices
        pruner = dg.get_pruner_of_module(root)
        group = dg.get_pruning_group(root, pruner.prune_out_channels, list(range(channels)))
        scores = _channel_scores(group, importance, channels, seed)
        drop = torch.argsort(scores, stable=True)[: channels - n_keep].tolist()
        dg.get_pruning_group(root, pruner.prune_out_channels, sorted(drop)).prune()
    return [list(h) for h in dg.pruning_history()]
