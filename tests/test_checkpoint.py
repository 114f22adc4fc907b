from __future__ import annotations

import io

import pytest
import torch

from autoprune.engine.checkpoint import load_checkpoint, pack_sparse, save_checkpoint, unpack_sparse
from autoprune.engine.prune import FineGrainedPruner, channel_prune, weight_names
from autoprune.errors import AutopruneError
from autoprune.models import ModelSpec, build_model


def test_pack_unpack_round_trip():
    t = torch.randn(5, 3, 3, 3)
    t[t.abs() < 0.8] = 0
    assert torch.equal(unpack_sparse(pack_sparse(t)), t)


def test_sparse_checkpoint_is_small_and_exact(tmp_path):
    spec = ModelSpec("vgg", 0.5, 1, 10)
    model = build_model(spec).eval()
    FineGrainedPruner(model, {n: 0.8 for n in weight_names(model)})
    dense_path = tmp_path / "dense.pt"
    torch.save(model.state_dict(), dense_path)
    path = save_checkpoint(model, tmp_path / "sparse.pt", spec, (1, 32, 32))
    ratio = path.stat().st_size / dense_path.stat().st_size
    print(f"compact sparse file: {path.stat().st_size} B = {ratio:.1%} of dense "
          f"{dense_path.stat().st_size} B")
    assert ratio <= 0.30
    loaded = load_checkpoint(path)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(loaded(x), model(x))
    torch.load(path, weights_only=True)  # plain tensors and containers only


def test_channel_checkpoint_replays_history(tmp_path):
    spec = ModelSpec("resnet20", 0.5, 1, 10)
    model = build_model(spec).eval()
    x = torch.randn(2, 1, 32, 32)
    pruned = channel_prune(model, 0.6, x).eval()
    path = save_checkpoint(pruned, tmp_path / "ch.pt", spec, (1, 32, 32))
    obj = torch.load(path, weights_only=True)
    assert obj["pruning_history"]
    loaded = load_checkpoint(path)
    assert torch.allclose(loaded(x), pruned(x), atol=1e-6)
    assert sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for p in pruned.parameters())


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(AutopruneError, match="bad.pt"):
        load_checkpoint(bad)
    buf = io.BytesIO()
    torch.save({"hello": 1}, buf)
    other = tmp_path / "other.pt"
    other.write_bytes(buf.getvalue())
    with pytest.raises(AutopruneError, match="not an autoprune checkpoint"):
        load_checkpoint(other)


CALLS: list[str] = []


def recording_model(in_channels: int = 1, num_classes: int = 10):
    CALLS.append("called")
    return build_model(ModelSpec("cnn", 0.5, in_channels, num_classes))


def test_checkpoint_never_runs_named_code_unless_trusted(tmp_path):
    spec = ModelSpec("tests.test_checkpoint:recording_model", 1.0, 1, 10)
    model = recording_model()
    CALLS.clear()
    path = save_checkpoint(model, tmp_path / "m.pt", spec, (1, 28, 28))
    with pytest.raises(AutopruneError, match="trust_code=True"):
        load_checkpoint(path)
    assert CALLS == []  # refused before importing or calling anything
    loaded = load_checkpoint(path, trust_code=True)
    assert CALLS == ["called"]
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))


def test_a_file_naming_os_getpid_is_refused(tmp_path):
    obj = torch.load(save_checkpoint(build_model(ModelSpec("cnn", 0.5, 1, 10)), tmp_path / "a.pt",
                                     ModelSpec("cnn", 0.5, 1, 10), (1, 28, 28)),
                     weights_only=True)
    obj["model_spec"]["name"] = "os:getpid"
    torch.save(obj, tmp_path / "evil.pt")
    with pytest.raises(AutopruneError, match="'os:getpid'"):
        load_checkpoint(tmp_path / "evil.pt")


def test_a_save_killed_midway_leaves_no_half_written_file(tmp_path, monkeypatch):
    import autoprune.cache as cache

    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    spec = ModelSpec("cnn", 0.5, 1, 10)
    good = save_checkpoint(model, tmp_path / "model.pt", spec, (1, 28, 28))
    before = good.read_bytes()
    real_save = torch.save

    def dies_midway(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as fh:  # half of the bytes, then the process dies
            fh.truncate(len(before) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(build_model(spec), good, spec, (1, 28, 28))
    assert good.read_bytes() == before  # the old, complete file is still there
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left over
    monkeypatch.undo()
    load_checkpoint(good)


def test_export_writes_are_atomic(tmp_path, monkeypatch):
    from autoprune import cache
    from autoprune.workflow import export

    target = tmp_path / "policy.json"
    target.write_text("old")

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.os, "replace", killed)  # every atomic writer renames here
    with pytest.raises(KeyboardInterrupt):
        export._atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [
        "policy.json"]
    export._atomic_write(target, b"new")
    assert target.read_text() == "new"


def test_a_failed_export_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    """export_model renames its file into place only once it has loaded and run it back."""
    from autoprune.engine import deploy

    target = tmp_path / "m.onnx"

    def broken_session(*_a, **_k):
        raise RuntimeError("onnxruntime could not load it")

    monkeypatch.setattr(deploy, "_session", broken_session)
    with pytest.raises(RuntimeError, match="could not load"):
        deploy.export_model(build_model(ModelSpec("cnn", 0.5, 1, 10)), target,
                            torch.randn(2, 1, 28, 28))
    assert list(tmp_path.iterdir()) == []
