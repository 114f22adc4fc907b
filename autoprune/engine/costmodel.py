"""Size and MACs of a policy computed analytically, without pruning the model.

The search projects thousands of candidate allocations onto the budget; building each pruned
model would take seconds, these formulas take microseconds and agree exactly with
:mod:`autoprune.engine.metrics` on the pruned model (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autoprune.engine.groups import coupling_groups, keep_count, trace_forward
from autoprune.engine.metrics import MIB, count_macs, count_params, layer_table, prunable_layers

__all__ = ["FineCostModel", "ChannelCostModel"]


@dataclass(frozen=True)
class _Layer:
    name: str
    numel: int  # weight entries
    macs: int  # dense MACs of the layer


class FineCostModel:
    """Stored parameters and MACs of per-weight sparsities (missing names: dense).

    Args:
        model: The (possibly channel-pruned) model.
        input_size: ``(C, H, W)``.
    """

    def __init__(self, model: nn.Module, input_size: tuple[int, ...]) -> None:
        rows = layer_table(model, input_size)
        self.layers = [_Layer(f"{r.name}.weight", int(torch.tensor(r.shape).prod()),
                              r.dense_macs) for r in rows]
        self.names = [lay.name for lay in self.layers]
        self.numel = torch.tensor([lay.numel for lay in self.layers], dtype=torch.float64)
        self.total_params = count_params(model)
        self.fixed_params = self.total_params - int(self.numel.sum())
        self.total_macs = count_macs(model, input_size, sparse=False)
        self.fixed_macs = self.total_macs - sum(lay.macs for lay in self.layers)
        self._macs = torch.tensor([lay.macs for lay in self.layers], dtype=torch.float64)

    def kept(self, sparsity: dict[str, float]) -> torch.Tensor:
        s = torch.tensor([sparsity.get(n, 0.0) for n in self.names], dtype=torch.float64)
        # the same rounding as fine_grained_prune: round(numel x sparsity) zeros
        zeros = torch.tensor([round(n * v) for n, v in zip(self.numel.tolist(), s.tolist())],
                             dtype=torch.float64)
        return self.numel - zeros

    def params(self, sparsity: dict[str, float]) -> int:
        return int(self.fixed_params + self.kept(sparsity).sum())

    def size_mib(self, sparsity: dict[str, float], bits: int = 32) -> float:
        return self.params(sparsity) * bits / 8 / MIB

    def macs(self, sparsity: dict[str, float]) -> int:
        kept = self.kept(sparsity)
        return int(round(self.fixed_macs + float((self._macs * kept / self.numel).sum())))


class ChannelCostModel:
    """Parameters and MACs after channel pruning with per-group keep ratios.

    Each conv / linear layer's output channels follow the group it produces, its input
    channels the group it consumes; a depthwise conv follows one group on both sides;
    batch-norm parameters follow their group.
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor) -> None:
        input_size = tuple(example_inputs.shape[1:])
        self.groups = [g for g in coupling_groups(model, example_inputs) if g.prunable]
        self.ids = [g.id for g in self.groups]
        self.channels = {g.id: g.channels for g in self.groups}
        layers = prunable_layers(model)
        table = {r.name: r for r in layer_table(model, input_size)}
        out_group, in_group = {}, {}
        for g in self.groups:
            for n in g.layers:
                out_group[n] = g.id
            for n in g.consumers:
                in_group[n] = g.id
        self._layers = []
        for name, mod in layers.items():
            w = mod.weight
            out_c, in_per_group = w.shape[0], w.shape[1]
            k = int(w[0, 0].numel())
            groups = getattr(mod, "groups", 1)
            depthwise = groups > 1 and groups == out_c
            positions = table[name].dense_macs / max(out_c * in_per_group * k, 1)
            self._layers.append((out_group.get(name), None if depthwise else in_group.get(name),
                                 out_c, in_per_group, k, mod.bias is not None, positions))
        # batch-norm channels follow the group of the conv that feeds them
        self._bns = []
        bn_names = [n for n, m in model.named_modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        producer_of = self._bn_producers(model, example_inputs, bn_names)
        mods = dict(model.named_modules())
        for n in bn_names:
            self._bns.append((out_group.get(producer_of.get(n, "")),
                              mods[n].num_features, mods[n].affine))
        counted = sum(w.numel() + (m.bias.numel() if m.bias is not None else 0)
                      for m in layers.values() for w in [m.weight])
        counted += sum(2 * c for _, c, affine in self._bns if affine)
        self.other_params = count_params(model) - counted
        self.other_macs = count_macs(model, input_size, sparse=False) - sum(
            r.dense_macs for r in table.values())

    @staticmethod
    def _bn_producers(model, example_inputs, bn_names) -> dict[str, str]:
        """Map each batch norm to the conv / linear whose output it normalises (by tracing)."""
        last: list[str] = []
        mapping: dict[str, str] = {}
        layers = prunable_layers(model)
        mods = dict(model.named_modules())
        handles = [mods[n].register_forward_hook(lambda *_a, n=n: last.append(n))
                   for n in layers]

        def bn_hook(name):
            def hook(_m, inputs, _o):
                if last:
                    mapping[name] = last[-1]
            return hook

        handles += [mods[n].register_forward_hook(bn_hook(n)) for n in bn_names]
        trace_forward(model, example_inputs, handles)
        return mapping

    def counts(self, keep: dict[str, float]) -> dict[str, int]:
        """Channels kept per group (groups not named keep all)."""
        return {gid: keep_count(keep.get(gid, 1.0), c) for gid, c in self.channels.items()}

    def cost(self, keep: dict[str, float]) -> tuple[int, int]:
        """``(parameters, MACs)`` of the model pruned to ``keep``, computed in one pass."""
        counts = self.counts(keep)
        params, macs = self.other_params, self.other_macs
        for og, ig, out_c, in_pg, k, bias, positions in self._layers:
            o = counts[og] if og is not None else out_c
            # a flatten maps each channel to in_pg / channels inputs of a linear layer
            i = counts[ig] * in_pg // self.channels[ig] if ig is not None else in_pg
            if og is not None and ig is None and in_pg == 1 and out_c > 1:
                i = 1  # depthwise: one input channel per output channel
            params += o * i * k + (o if bias else 0)
            macs += int(round(positions * o * i * k))
        for g, c, affine in self._bns:
            if affine:
                params += 2 * (counts[g] if g is not None else c)
        return params, macs

    def params(self, keep: dict[str, float]) -> int:
        return self.cost(keep)[0]

    def size_mib(self, keep: dict[str, float], bits: int = 32) -> float:
        return self.params(keep) * bits / 8 / MIB

    def macs(self, keep: dict[str, float]) -> int:
        return self.cost(keep)[1]
