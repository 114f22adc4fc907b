from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from autoprune.data import DEBIAN_FASHION_MNIST, DataSpec, load_data


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session caches under a temporary directory, never in ~/.cache."""
    monkeypatch.setenv("AUTOPRUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test in its own directory (studies/ and reports/ land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def synthetic_idx_root(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST-shaped data set whose class is written into the image.

    Class k lights up a 4-pixel-wide vertical bar at column 2 + 2k (plus noise), so even a tiny
    CNN learns it in a few steps.
    """
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 1200), ("t10k", 300)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, :, 2 + 2 * k : 6 + 2 * k] += 180
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="session")
def synthetic_data(synthetic_idx_root):
    return load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=200,
                              augment="none"))


def fashion_mnist_available() -> bool:
    return (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file()


@pytest.fixture(scope="session")
def fmnist():
    """The real Fashion-MNIST (installed by `make test` via scripts/ensure_data.sh)."""
    if not fashion_mnist_available():
        pytest.fail("Fashion-MNIST is missing: run scripts/ensure_data.sh (make test does).")
    return load_data(DataSpec("fashion-mnist", pad_to=32, val_size=5000))


FMNIST_SMALL = DataSpec("fashion-mnist", pad_to=32, val_size=5000, train_limit=20000)


@pytest.fixture(scope="session")
def trained_vgg():
    """A VGG (width 0.125) trained one epoch on 20,000 real Fashion-MNIST images (~87 %)."""
    from autoprune.models import ModelSpec
    from autoprune.train import TrainRecipe, get_baseline

    if not fashion_mnist_available():
        pytest.fail("Fashion-MNIST is missing: run scripts/ensure_data.sh (make test does).")
    data = load_data(FMNIST_SMALL)
    base = get_baseline(ModelSpec("vgg", 0.125, 1, 10), FMNIST_SMALL,
                        TrainRecipe(epochs=1, lr=0.1), data=data, progress=False)
    return base, data


@pytest.fixture(scope="session")
def postgres_url():
    """A private PostgreSQL server for the storage tests (or $AUTOPRUNE_TEST_POSTGRES)."""
    from tests.helpers import private_postgres

    try:
        with private_postgres("autoprune") as url:
            yield url
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
