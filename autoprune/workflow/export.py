"""Export: a study's chosen policy as JSON, its sparsity dict / channel ratios, and the
finalized pruned checkpoint, with the lines that load it."""

from __future__ import annotations

import json
from pathlib import Path

from autoprune.cache import atomic_path
from autoprune.engine.checkpoint import load_checkpoint
from autoprune.engine.deploy import FORMATS, export_model, require_onnx
from autoprune.errors import ConfigError
from autoprune.search import PruneSearch
from autoprune.workflow.finalize import final_checkpoint, finalize

__all__ = ["export_study", "check_formats"]


def export_study(search: PruneSearch, *, trial: int | None = None, pick: str = "best",
                 max_drop: float | None = None, out_dir: str | Path | None = None,
                 formats: tuple[str, ...] = ("pt",)) -> dict:
    """Write a study's chosen policy and pruned checkpoint.

    Files: ``policy.json``; ``sparsity_dict.json`` (weight FQN -> sparsity, fine / hybrid);
    ``channel_ratios.json`` (group id -> fraction of channels pruned, channel / hybrid);
    ``model.pt`` (the finalized, fine-tuned pruned model; finalized first if needed); and per
    extra format ``model.onnx`` / ``model.ts.pt`` / ``model.pt2``, each loaded back and checked
    against the PyTorch model on 64 real test images (``checks``: max abs difference).

    Returns:
        ``{"trial", "files", "test_acc", "snippet", "checks"}``.
    """
    check_formats(formats)
    record = search.record_
    if trial is None:
        trial = search.pick_trial(pick, max_drop=max_drop)
    view = record.trial(trial)
    if trial not in record.finals() or not final_checkpoint(search, trial).is_file():
        finalize(search, [trial])
    final = record.finals()[trial]
    policy = view.policy
    policy.meta.update({"study": search.cfg.name, "trial": trial, "test_acc": final.test_acc,
                        "size_mib": final.size_mib, "latency_ms": final.latency_ms})
    out = Path(out_dir or search.cfg.report_dir / "export")
    out.mkdir(parents=True, exist_ok=True)
    files = {out / "policy.json": policy.to_json()}
    if policy.sparsity:
        files[out / "sparsity_dict.json"] = json.dumps(policy.to_sparsity_dict(), indent=2)
    if policy.keep:
        files[out / "channel_ratios.json"] = json.dumps(policy.to_channel_ratios(), indent=2)
    for path, text in files.items():
        _atomic_write(path, text.encode())
    ckpt = out / "model.pt"
    _atomic_write(ckpt, final_checkpoint(search, trial).read_bytes())
    written = [*files, ckpt]
    checks = []
    extra = [f for f in dict.fromkeys(formats) if f != "pt"]
    if extra:
        # the study's own finalized file: its architecture is the study's, already trusted
        model = load_checkpoint(ckpt, trust_code=True)
        inputs = next(iter(search.ws_.data.loader("test", batch_size=64)))[0]
        for fmt in extra:
            check = export_model(model, out / f"model{FORMATS[fmt]}", inputs, fmt=fmt)
            checks.append(check.to_dict())
            written.append(Path(check.path))
    if checks:
        _atomic_write(out / "export_checks.json", json.dumps(checks, indent=2).encode())
    return {"trial": trial, "files": [str(f) for f in written], "checks": checks,
            "test_acc": final.test_acc, "snippet": _snippet(policy, out, ckpt)}


def check_formats(formats: tuple[str, ...]) -> None:
    """Refuse unknown or no formats, and ONNX without its extra (before any work)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"--format takes a comma-separated list of {list(FORMATS)}, got "
                          f"{','.join(formats)!r}.")
    if "onnx" in formats:
        require_onnx()


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _snippet(policy, out: Path, ckpt: Path) -> str:
    lines = ["from autoprune import load_checkpoint",
             f"model = load_checkpoint({str(ckpt)!r})  # pruned, fine-tuned, eval mode"]
    if policy.sparsity:
        lines += ["# or prune your own copy, FineGrainedPruner-style:",
                  f"# sparsity = json.load(open({str(out / 'sparsity_dict.json')!r}))",
                  "# pruner = autoprune.FineGrainedPruner(my_model, sparsity)"]
    if policy.keep:
        lines += ["# or prune your own copy by coupling group:",
                  f"# policy = autoprune.Policy.from_json(open({str(out / 'policy.json')!r})"
                  ".read())",
                  "# pruned, pruner = policy.apply(my_model, example_inputs)"]
    return "\n".join(lines)
