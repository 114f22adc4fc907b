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
from autoprune.errors import AutopruneError
from autoprune.models import ModelSpec, build_model

__all__ = ["save_checkpoint", "load_checkpoint", "pack_sparse", "unpack_sparse"]

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
    from autoprune.metrics import prunable_layers

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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a pruned model saved by :func:`save_checkpoint` (``weights_only`` load)."""
    from autoprune.prune import replay_pruning_history

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
    model = build_model(spec).eval()
    example = torch.zeros(1, *obj["input_size"])
    replay_pruning_history(model, obj["pruning_history"], example)
    state = dict(obj["dense"])
    state.update({k: unpack_sparse(v) for k, v in obj["sparse"].items()})
    model.load_state_dict(state)
    model.autoprune_meta = obj.get("meta", {})
    return model.to(map_location).eval()


def export_study(search, *, trial: int | None = None, pick: str = "best",
                 max_drop: float | None = None, out_dir: str | Path | None = None) -> dict:
    """Write a study's chosen policy and pruned checkpoint.

    Files: ``policy.json``; ``sparsity_dict.json`` (weight FQN -> sparsity, fine / hybrid);
    ``channel_ratios.json`` (group id -> fraction of channels pruned, channel / hybrid);
    ``model.pt`` (the finalized, fine-tuned pruned model; finalized first if needed).

    Returns:
        ``{"trial", "files", "test_acc", "snippet"}``.
    """
    import json

    from autoprune.finalize import final_checkpoint, finalize
    from autoprune.policy import Policy

    study = search.study_
    if trial is None:
        trial = search._pick_trial(pick, max_drop=max_drop).number
    elif trial < 0 or trial >= len(study.trials) or "policy" not in study.trials[trial].user_attrs:
        raise ValueError(f"Trial {trial} has no policy in study {search.cfg.name!r}.")
    if f"final:{trial}" not in study.user_attrs or not final_checkpoint(search, trial).is_file():
        finalize(search, [trial])
    final = study.user_attrs[f"final:{trial}"]
    policy = Policy.from_dict(study.trials[trial].user_attrs["policy"])
    policy.meta.update({"study": search.cfg.name, "trial": trial,
                        "test_acc": final["test_acc"], "size_mib": final["size_mib"],
                        "latency_ms": final["latency_ms"]})
    out = Path(out_dir or search.cfg.report_dir / "export")
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "policy.json"]
    files[0].write_text(policy.to_json())
    if policy.sparsity:
        files.append(out / "sparsity_dict.json")
        files[-1].write_text(json.dumps(policy.to_sparsity_dict(), indent=2))
    if policy.keep:
        files.append(out / "channel_ratios.json")
        files[-1].write_text(json.dumps(policy.to_channel_ratios(), indent=2))
    ckpt = out / "model.pt"
    ckpt.write_bytes(final_checkpoint(search, trial).read_bytes())
    files.append(ckpt)
    snippet = ("from autoprune import load_checkpoint\n"
               f"model = load_checkpoint({str(ckpt)!r})  # pruned, fine-tuned, eval mode")
    if policy.sparsity:
        snippet += ("\n# or prune your own copy, FineGrainedPruner-style:\n"
                    f"# sparsity = json.load(open({str(out / 'sparsity_dict.json')!r}))\n"
                    "# pruner = autoprune.FineGrainedPruner(my_model, sparsity)")
    if policy.keep:
        snippet += ("\n# or prune your own copy by coupling group:\n"
                    f"# policy = autoprune.Policy.from_json(open({str(out / 'policy.json')!r})"
                    ".read())\n"
                    "# pruned, pruner = policy.apply(my_model, example_inputs)")
    return {"trial": trial, "files": [str(f) for f in files], "test_acc": final["test_acc"],
            "snippet": snippet}
