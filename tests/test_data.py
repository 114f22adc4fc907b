from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest
import torch

from autoprune.data import DataSpec, load_data, read_idx
from autoprune.errors import DataNotFoundError
from autoprune.workflow.cli import main


def test_idx_reader_and_splits(synthetic_idx_root):
    spec = DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=200, seed=3)
    a, b = load_data(spec), load_data(spec)
    assert a.train.images.shape == (1000, 1, 28, 28) and a.train.images.dtype == torch.uint8
    assert len(a.val) == 200 and len(a.test) == 300
    assert torch.equal(a.val.labels, b.val.labels) and a.fingerprint == b.fingerprint
    other = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=200,
                               seed=4))
    assert not torch.equal(a.val.images, other.val.images)
    assert a.fingerprint != other.fingerprint


def test_validation_is_disjoint_from_training(synthetic_idx_root):
    data = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=200))
    train_rows = {bytes(x.numpy()) for x in data.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in data.val.images)


def test_padding_and_normalisation(synthetic_idx_root):
    data = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=100,
                              pad_to=32))
    assert data.input_size == (1, 32, 32)
    assert data.train.images[:, :, :2, :].sum() == 0  # the padded border is zero
    x, _ = next(iter(data.loader("train", 256, augment=False)))
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1


def test_loader_is_deterministic_and_augments_train_only(synthetic_idx_root):
    data = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=100,
                              augment="flip+crop"))
    x1, y1 = next(iter(data.loader("train", 64, seed=7)))
    x2, y2 = next(iter(data.loader("train", 64, seed=7)))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = next(iter(data.loader("train", 64, seed=8)))
    assert not torch.equal(x1, x3)
    v1, _ = next(iter(data.loader("val", 64)))
    v2, _ = next(iter(data.loader("val", 64, seed=99)))
    assert torch.equal(v1, v2)


def test_missing_data_one_sentence_exit_2(tmp_path, capsys):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_data(DataSpec("fashion-mnist", root=str(tmp_path)))
    assert main(["train", "--data-root", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not found" in err and str(tmp_path) in err and "dataset-fashion-mnist" in err


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    with pytest.raises(DataNotFoundError, match="truncated"):
        read_idx(path)


def test_bad_data_spec_values():
    with pytest.raises(ValueError, match="'blur'"):
        DataSpec(augment="blur")
    with pytest.raises(ValueError, match="'svhn'"):
        DataSpec("svhn")


def test_real_fashion_mnist_shapes(fmnist):
    assert len(fmnist.train) == 55000 and len(fmnist.val) == 5000 and len(fmnist.test) == 10000
    assert fmnist.input_size == (1, 32, 32) and fmnist.num_classes == 10
    assert set(fmnist.test.labels.tolist()) == set(range(10))


def test_mnist_cifar_and_imagefolder_layouts(tmp_path, synthetic_idx_root):
    import pickle
    import shutil

    import numpy as np
    from PIL import Image

    mnist = tmp_path / "MNIST" / "raw"
    mnist.mkdir(parents=True)
    for f in synthetic_idx_root.iterdir():
        shutil.copy(f, mnist / f.name)
    data = load_data(DataSpec("mnist", root=str(tmp_path), val_size=100))
    assert data.input_size == (1, 28, 28) and len(data.test) == 300

    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(cifar / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8),
                         "labels": rng.integers(0, 10, 20).tolist()}, f)
    data = load_data(DataSpec("cifar10", root=str(tmp_path), val_size=10))
    assert data.input_size == (3, 32, 32) and len(data.train) == 90 and len(data.test) == 20

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            d = tmp_path / "folder" / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
                    d / f"{i}.png")
    data = load_data(DataSpec(f"imagefolder:{tmp_path / 'folder'}", val_size=2, image_size=16))
    assert data.input_size == (3, 16, 16) and data.num_classes == 2 and len(data.train) == 4
    with pytest.raises(DataNotFoundError, match="train/"):
        load_data(DataSpec(f"imagefolder:{tmp_path / 'nowhere'}"))


def tiny_datasets():
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(30) % 3
    train = torch.utils.data.TensorDataset(x[:20], y[:20])
    test = torch.utils.data.TensorDataset(x[20:], y[20:])
    return train, test


def test_user_entry_point_datasets():
    data = load_data(DataSpec("tests.test_data:tiny_datasets", val_size=5, pad_to=None))
    assert data.num_classes == 3 and len(data.train) == 15 and data.input_size == (1, 8, 8)


def _png_folder(root, images, labels, split):
    from PIL import Image

    for i, (img, y) in enumerate(zip(images, labels)):
        d = root / split / f"class_{int(y)}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.numpy()).save(d / f"{i:05d}.png")


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_imagefolder_matches_in_memory(tmp_path, synthetic_idx_root, workers):
    """The same PNG folder streamed through DataLoader workers and loaded into memory gives
    the same splits, statistics and batches (shuffled, augmented training batches included)."""
    src = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=0 + 1))
    _png_folder(tmp_path, src.train.images[:90, 0], src.train.labels[:90], "train")
    _png_folder(tmp_path, src.test.images[:30, 0], src.test.labels[:30], "test")
    spec = dict(name=f"imagefolder:{tmp_path}", val_size=20, image_size=20, pad_to=24,
                augment="flip+crop")
    streamed = load_data(DataSpec(**spec, workers=workers))
    memory = load_data(DataSpec(**spec, stream=False))
    from autoprune.data import ArraySplit, StreamSplit

    assert isinstance(streamed.train, StreamSplit) and isinstance(memory.train, ArraySplit)
    assert streamed.input_size == memory.input_size == (3, 24, 24)
    assert streamed.num_classes == memory.num_classes
    assert [len(s) for s in (streamed.train, streamed.val, streamed.test)] == [70, 20, 30]
    assert np.allclose(streamed.mean, memory.mean, atol=2e-4)
    assert np.allclose(streamed.std, memory.std, atol=2e-4)
    streamed.mean, streamed.std = memory.mean, memory.std  # rounding of the 4th decimal
    for which, kw in (("train", {"seed": 3}), ("val", {}), ("test", {"limit": 25, "start": 2})):
        a = list(streamed.loader(which, 16, **kw))
        b = list(memory.loader(which, 16, **kw))
        assert len(a) == len(b) > 1
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(ya, yb) and torch.allclose(xa, xb, atol=1e-6)
    assert torch.equal(streamed.val.labels, memory.val.labels)


def test_streamed_data_trains_and_evaluates(tmp_path, synthetic_idx_root):
    from autoprune.models import ModelSpec, build_model
    from autoprune.train import evaluate

    src = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=1))
    _png_folder(tmp_path, src.train.images[:60, 0], src.train.labels[:60], "train")
    pick = torch.cat([torch.nonzero(src.test.labels == k)[:2, 0] for k in range(10)])
    _png_folder(tmp_path, src.test.images[pick, 0], src.test.labels[pick], "test")
    streamed = load_data(DataSpec(f"imagefolder:{tmp_path}", val_size=10, image_size=16,
                                  workers=1))
    memory = load_data(DataSpec(f"imagefolder:{tmp_path}", val_size=10, image_size=16,
                                stream=False))
    memory.mean, memory.std = streamed.mean, streamed.std
    model = build_model(ModelSpec("cnn", width=0.25, in_channels=3,
                                  num_classes=streamed.num_classes)).eval()
    assert evaluate(model, streamed, "test", device="cpu") == \
        evaluate(model, memory, "test", device="cpu")


def test_scan_in_processes_reads_streamed_data(tmp_path, synthetic_idx_root):
    """A channel scan in 2 joblib processes over a streamed image folder gives the numbers
    of a scan in one process over the same folder loaded into memory."""
    from autoprune.models import ModelSpec, build_model
    from autoprune.search.sensitivity import ScanSettings, sensitivity_scan

    src = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=1))
    _png_folder(tmp_path / "f", src.train.images[:80, 0], src.train.labels[:80], "train")
    _png_folder(tmp_path / "f", src.train.images[80:160, 0], src.train.labels[80:160], "test")
    kw = dict(name=f"imagefolder:{tmp_path / 'f'}", val_size=30, image_size=16)
    streamed = load_data(DataSpec(**kw))
    memory = load_data(DataSpec(**kw, stream=False))
    memory.mean, memory.std, memory.fingerprint = streamed.mean, streamed.std, "memory"
    torch.manual_seed(0)
    model = build_model(ModelSpec("cnn", width=0.25, in_channels=3, num_classes=10)).eval()
    s = ScanSettings(mode="channel", ratios=(0.0, 0.5), val_limit=30, recalibrate=32)
    a = sensitivity_scan(model, streamed, dataclasses.replace(s, jobs=2), device="cpu",
                         progress=False)
    b = sensitivity_scan(model, memory, dataclasses.replace(s, jobs=1), device="cpu",
                         progress=False)
    assert a.table["accuracy"].tolist() == b.table["accuracy"].tolist()
    assert len(a.table) >= 4
