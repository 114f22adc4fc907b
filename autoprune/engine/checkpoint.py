"""Pruned checkpoints: compact sparse storage (bitmask + nonzero values) and replayable channel
pruning, both loadable with ``torch.load(weights_only=True)``.

Example:
    >>> save_checkpoint(pruned, "model.pt", spec, (1, 32, 32))   # doctest: +SKIP
    >>> model = load_checkpoint("model.pt")                      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoprune.cache import atomic_torch_save
from autoprune.engine.metrics import prunable_layers
from autoprune.engine.prune import replay_pruning_history
from autoprune.errors import AutopruneError
from autoprune.models import ModelSpec, build_model

__all__ = ["save_checkpoint", "load_checkpoint", "read_state_dict", "pack_sparse",
           "unpack_sparse"]

FORMAT = "autoprune-checkpoint"
VERSION = 1


def pack_sparse(t: torch.Tensor) -> dict:
    """A tensor as ``{"shape", "bits", "values"}``: packed nonzero bitmask + nonzero values."""
    flat = t.detach().cpu().reshape(-1)
    mask = flat != 0
    bits = torch.from_numpy(np.packbits(mask.numpy().astype(np.uint8)))
    return {"shape": list(t.shape), "bits": bits, "values": flat[mask].clone()}


def unpack_sparse(entry: dict) -> torch.Tensor:
    shape = [int(v) for v in entry["shape"]]
    n = int(np.prod(shape)) if shape else 1
    mask = torch.from_numpy(np.unpackbits(entry["bits"].numpy())[:n].astype(bool))
    values = entry["values"]
    out = torch.zeros(n, dtype=values.dtype)
    out[mask] = values
    return out.reshape(shape)


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    model_spec: ModelSpec,
    input_size: tuple[int, ...],
    *,
    sparse: bool = True,
    meta: dict | None = None,
) -> Path:
    """Save a pruned model so :func:`load_checkpoint` can rebuild it from its spec.

    Channel pruning is stored as Torch-Pruning's pruning history (replayed on a fresh model);
    with ``sparse``, every conv / linear weight that holds zeros is stored as bitmask + values.
    """
    weights = {f"{n}.weight" for n in prunable_layers(model)}
    dense, packed = {}, {}
    for name, t in model.state_dict().items():
        if sparse and name in weights and t.is_floating_point() and bool((t == 0).any()):
            packed[name] = pack_sparse(t)
        else:
            dense[name] = t.detach().cpu().clone()
    history = getattr(model, "autoprune_pruning_history", [])
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "model_spec": model_spec.to_dict(),
        "input_size": list(input_size),
        "pruning_history": [[str(n), bool(o), [int(i) for i in idx]] for n, o, idx in history],
        "dense": dense,
        "sparse": packed,
        "meta": meta or {},
    }
    path = Path(path)
    atomic_torch_save(obj, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    trust_code: bool = False) -> nn.Module:
    """Rebuild a pruned model saved by :func:`save_checkpoint` (``weights_only`` load).

    Args:
        trust_code: The file names the function that builds its architecture. Built-in
            (``vgg``, ``resnet20``...) and ``torchvision:NAME`` models are always safe; a user
            entry point (``package.module:function``) is imported and called only when you
            trust the file and pass ``True``.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise AutopruneError(f"{path} is not a readable autoprune checkpoint ({exc}).") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise AutopruneError(f"{path} is not an autoprune checkpoint.")
    if obj.get("version") != VERSION:
        raise AutopruneError(f"{path} has checkpoint version {obj.get('version')!r}; this "
                             f"autoprune reads version {VERSION}.")
    spec = ModelSpec(**obj["model_spec"])
    if not trust_code and not spec.is_builtin:
        raise AutopruneError(
            f"{path} names the model entry point {spec.name!r}: loading it would import and "
            f"run that code. Pass trust_code=True only if you trust the file.")
    model = build_model(spec).eval()
    example = torch.zeros(1, *obj["input_size"])
    replay_pruning_history(model, obj["pruning_history"], example)
    state = dict(obj["dense"])
    state.update({k: unpack_sparse(v) for k, v in obj["sparse"].items()})
    model.load_state_dict(state)
    model.autoprune_meta = obj.get("meta", {})
    return model.to(map_location).eval()


def read_state_dict(path: str | Path) -> dict:
    """The weights in a user's file: a ``state_dict``, ``{"state_dict": ...}`` or a dense
    autoprune checkpoint (``weights_only`` load; never runs code). AutopruneError otherwise."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        raise AutopruneError(f"{str(path)!r} is not a readable state_dict "
                             f"({type(exc).__name__}).") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return load_checkpoint(path).state_dict()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AutopruneError(f"{str(path)!r} holds no state_dict (name -> tensor).")
    return obj
