"""Datasets as in-memory tensors, deterministic splits and a fast batch loader.

Every data set is materialised once as a uint8 (or float) tensor ``N x C x H x W`` plus int64
labels; batches are cut, normalised and augmented in torch, with no per-image PIL decode.
The validation split is carved out of the training set under a seed; the test split is
kept apart for final numbers only.

Example:
    >>> bundle = load_data(DataSpec("fashion-mnist", pad_to=32))      # doctest: +SKIP
    >>> for x, y in bundle.loader("train", batch_size=128, seed=0):   # doctest: +SKIP
    ...     pass
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from autoprune.errors import ConfigError, DataNotFoundError

__all__ = ["DataSpec", "ArraySplit", "DataBundle", "Loader", "load_data", "DEBIAN_FASHION_MNIST"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_BUILTIN = ("fashion-mnist", "mnist", "cifar10")
_AUGMENTS = ("none", "flip", "crop", "flip+crop")
_INSTALL_HINT = (
    "install it with 'apt-get install -y dataset-fashion-mnist' (Debian), pass --data-root DIR "
    "holding the idx .gz files, or set AUTOPRUNE_DATA"
)


@dataclass(frozen=True)
class DataSpec:
    """What data to load and how to split it.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``cifar10``, ``imagefolder:PATH`` or a user entry
            point ``package.module:function`` returning ``(train_dataset, test_dataset)``.
        root: Directory holding the files; ``None`` searches the default places.
        val_size: Images carved out of the training set for validation.
        seed: Seed of the validation split.
        pad_to: Zero-pad images to this square size (e.g. 28 -> 32), ``None`` keeps them.
        augment: Training-only augmentation: ``none``, ``flip``, ``crop`` or ``flip+crop``.
        image_size: Resize for ``imagefolder`` data (square side).
        train_limit: Keep only the first N training images (after the validation split);
            for quick tests, ``None`` keeps all.
    """

    name: str = "fashion-mnist"
    root: str | None = None
    val_size: int = 5000
    seed: int = 0
    pad_to: int | None = None
    augment: str = "flip"
    image_size: int = 32
    train_limit: int | None = None

    def __post_init__(self) -> None:
        if self.augment not in _AUGMENTS:
            raise ConfigError(f"augment must be one of {_AUGMENTS}, got {self.augment!r}.")
        if self.val_size < 0:
            raise ConfigError(f"val_size cannot be negative but got {self.val_size}.")
        if self.pad_to is not None and self.pad_to <= 0:
            raise ConfigError(f"pad_to must be positive or None, got {self.pad_to}.")
        if self.train_limit is not None and self.train_limit <= 0:
            raise ConfigError(f"train_limit must be positive or None, got {self.train_limit}.")
        if self.name not in _BUILTIN and not self.name.startswith("imagefolder:") and (
            ":" not in self.name
        ):
            raise ConfigError(
                f"Unknown data set {self.name!r}: use one of {_BUILTIN}, 'imagefolder:PATH' "
                "or a 'package.module:function' entry point."
            )


@dataclass
class ArraySplit:
    """Images (uint8 or float in [0, 1]) and int64 labels of one split."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int | None, start: int = 0) -> ArraySplit:
        """Images ``start`` .. ``start + n`` (all from ``start`` when ``n`` is None)."""
        if start == 0 and (n is None or n >= len(self)):
            return self
        if start >= len(self):
            raise ConfigError(f"start={start} is beyond the split's {len(self)} images.")
        end = len(self) if n is None else start + n
        return ArraySplit(self.images[start:end], self.labels[start:end])


@dataclass
class DataBundle:
    """Train / validation / test splits plus what models need to know about them."""

    name: str
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "flip"
    fingerprint: str = field(default="")

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def input_size(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    def split(self, which: str) -> ArraySplit:
        if which not in ("train", "val", "test"):
            raise ConfigError(f"split must be 'train', 'val' or 'test', got {which!r}.")
        return getattr(self, which)

    def loader(
        self,
        which: str,
        batch_size: int = 256,
        *,
        shuffle: bool | None = None,
        augment: bool | None = None,
        seed: int = 0,
        limit: int | None = None,
        start: int = 0,
        device: torch.device | str = "cpu",
    ) -> Loader:
        """A batch iterator over one split; training defaults to shuffled and augmented."""
        is_train = which == "train"
        return Loader(
            self.split(which).subset(limit, start),
            batch_size,
            mean=self.mean,
            std=self.std,
            shuffle=is_train if shuffle is None else shuffle,
            augment=(self.augment if is_train else "none")
            if augment is None
            else (self.augment if augment else "none"),
            seed=seed,
            device=device,
        )


class Loader:
    """Deterministic batches from an :class:`ArraySplit`, normalised and augmented in torch.

    Epoch ``e`` of a loader with seed ``s`` always yields the same batches, so two trials that
    fine-tune with the same seed see the same data (common random numbers).
    """

    def __init__(
        self,
        split: ArraySplit,
        batch_size: int,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        augment: str = "none",
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}.")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.device = torch.device(device)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.split) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        n = len(self.split)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.split.images[idx]
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            x = self._augment(x, gen)
            x = (x - self._mean) / self._std
            y = self.split.labels[idx]
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.augment == "none":
            return x
        b, c, h, w = x.shape
        if "crop" in self.augment:
            pad = 2
            xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
            dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
            rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
            x = xp[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None],
                   rows, cols]
        if "flip" in self.augment:
            flip = torch.rand(b, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


# --------------------------------------------------------------------------- loading


def load_data(spec: DataSpec) -> DataBundle:
    """Load a data set, carve the validation split and compute normalisation statistics.

    Raises:
        DataNotFoundError: The files are nowhere to be found; the message says where it
            looked and how to install them.
    """
    if spec.name in ("fashion-mnist", "mnist"):
        (tr_x, tr_y), (te_x, te_y) = _load_idx_dataset(spec.name, spec.root)
        num_classes = 10
    elif spec.name == "cifar10":
        (tr_x, tr_y), (te_x, te_y) = _load_cifar10(spec.root)
        num_classes = 10
    elif spec.name.startswith("imagefolder:"):
        (tr_x, tr_y), (te_x, te_y), num_classes = _load_imagefolder(
            spec.name.split(":", 1)[1], spec.image_size
        )
    else:
        (tr_x, tr_y), (te_x, te_y), num_classes = _load_entry_point(spec.name)

    if spec.pad_to is not None:
        tr_x, te_x = _pad_to(tr_x, spec.pad_to), _pad_to(te_x, spec.pad_to)

    n = tr_x.shape[0]
    if spec.val_size >= n:
        raise ConfigError(f"val_size={spec.val_size} leaves no training images out of {n}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
    val_idx, train_idx = perm[: spec.val_size], perm[spec.val_size :]
    if spec.train_limit is not None:
        train_idx = train_idx[: spec.train_limit]
    train = ArraySplit(tr_x[train_idx], tr_y[train_idx])
    val = ArraySplit(tr_x[val_idx], tr_y[val_idx])
    test = ArraySplit(te_x, te_y)

    scale = 255.0 if train.images.dtype == torch.uint8 else 1.0
    sample = train.images[:20000].float() / scale
    mean = tuple(round(float(v), 4) for v in sample.mean(dim=(0, 2, 3)))
    std = tuple(round(float(v), 4) for v in sample.std(dim=(0, 2, 3)).clamp_min(1e-3))
    bundle = DataBundle(spec.name, train, val, test, num_classes, mean, std, spec.augment)
    bundle.fingerprint = _fingerprint(spec, bundle)
    return bundle


def _fingerprint(spec: DataSpec, bundle: DataBundle) -> str:
    h = hashlib.sha1()
    for split in (bundle.train, bundle.val, bundle.test):
        h.update(split.images.contiguous().numpy().tobytes())
        h.update(split.labels.numpy().tobytes())
    h.update(repr((spec.val_size, spec.seed, spec.pad_to, spec.augment)).encode())
    return h.hexdigest()[:16]


def _pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[2:]
    if h > size or w > size:
        raise ConfigError(f"pad_to={size} is smaller than the images ({h}x{w}).")
    top, left = (size - h) // 2, (size - w) // 2
    return torch.nn.functional.pad(x, (left, size - w - left, top, size - h - top))


def _candidate_roots(name: str, root: str | None) -> list[Path]:
    if root is not None:
        return [Path(root)]
    roots = []
    if os.environ.get("AUTOPRUNE_DATA"):
        roots.append(Path(os.environ["AUTOPRUNE_DATA"]))
    if name == "fashion-mnist":
        roots.append(DEBIAN_FASHION_MNIST)
    roots.append(_download_root())
    return roots


def _download_root() -> Path:
    return Path(os.environ.get("AUTOPRUNE_CACHE", Path.home() / ".cache" / "autoprune")) / "data"


def _find_idx_dir(base: Path, name: str) -> Path | None:
    sub = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}[name]
    for d in (base, base / sub / "raw", base / name):
        if all(_idx_path(d, f) is not None for f in _IDX_FILES["train"] + _IDX_FILES["test"]):
            return d
    return None


def _idx_path(d: Path, stem: str) -> Path | None:
    for p in (d / f"{stem}.gz", d / stem):
        if p.is_file():
            return p
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a numpy array, checking its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataNotFoundError(f"Cannot read idx file {path}: {exc}.") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataNotFoundError(f"{path} is not an unsigned-byte idx file (bad header).")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataNotFoundError(f"{path} is truncated: expected {dims}, found {data.size} bytes.")
    return data.reshape(dims)


def _load_idx_dataset(name: str, root: str | None):
    looked = []
    for base in _candidate_roots(name, root):
        looked.append(str(base))
        d = _find_idx_dir(base, name)
        if d is not None:
            return tuple(_read_idx_pair(d, split) for split in ("train", "test"))
    if root is None and _try_download(name):
        d = _find_idx_dir(_download_root(), name)
        if d is not None:
            return tuple(_read_idx_pair(d, split) for split in ("train", "test"))
    hint = _INSTALL_HINT if name == "fashion-mnist" else (
        "pass --data-root DIR holding the idx .gz files or set AUTOPRUNE_DATA"
    )
    raise DataNotFoundError(
        f"{name} data not found (looked in {', '.join(looked)}; download impossible offline): "
        f"{hint}."
    )


def _read_idx_pair(d: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    img_stem, lbl_stem = _IDX_FILES[split]
    images = read_idx(_idx_path(d, img_stem))
    labels = read_idx(_idx_path(d, lbl_stem))
    if images.shape[0] != labels.shape[0]:
        raise DataNotFoundError(f"{d}: {split} images and labels differ in count.")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _try_download(name: str) -> bool:
    """Use torchvision's downloader; False when offline or torchvision is missing."""
    try:
        from torchvision import datasets
    except ImportError:
        return False
    cls = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}[name]
    try:
        for train in (True, False):
            getattr(datasets, cls)(str(_download_root()), train=train, download=True)
    except Exception:  # noqa: BLE001 - any network failure means "not available"
        return False
    return True


def _load_cifar10(root: str | None):
    looked = []
    for base in _candidate_roots("cifar10", root):
        for d in (base / "cifar-10-batches-py", base):
            looked.append(str(d))
            if (d / "data_batch_1").is_file() and (d / "test_batch").is_file():
                return _read_cifar_dir(d)
    if root is None and _try_download("cifar10"):
        return _read_cifar_dir(_download_root() / "cifar-10-batches-py")
    raise DataNotFoundError(
        f"cifar10 data not found (looked in {', '.join(looked)}); pass --data-root DIR holding "
        "cifar-10-batches-py/ (torchvision layout)."
    )


def _read_cifar_dir(d: Path):
    def read(files):
        xs, ys = [], []
        for f in files:
            with open(d / f, "rb") as fh:
                entry = pickle.load(fh, encoding="latin1")
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(entry["labels"])
        return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.int64)

    return read([f"data_batch_{i}" for i in range(1, 6)]), read(["test_batch"])


def _load_imagefolder(path: str, size: int):
    from torchvision import datasets, transforms

    base = Path(path)
    test_dir = next((base / s for s in ("test", "val") if (base / s).is_dir()), None)
    if not (base / "train").is_dir() or test_dir is None:
        raise DataNotFoundError(
            f"ImageFolder data at {base} needs train/ and test/ (or val/) subfolders with one "
            "folder per class."
        )
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])

    def read(d: Path):
        ds = datasets.ImageFolder(str(d), transform=tf)
        xs = torch.stack([ds[i][0] for i in range(len(ds))])
        return xs, torch.tensor(ds.targets, dtype=torch.int64), len(ds.classes)

    tr_x, tr_y, k = read(base / "train")
    te_x, te_y, _ = read(test_dir)
    return (tr_x, tr_y), (te_x, te_y), k


def _load_entry_point(target: str):
    fn = resolve_entry_point(target)
    train_ds, test_ds = fn()

    def materialise(ds):
        xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
        x = torch.stack([torch.as_tensor(v) for v in xs])
        return x, torch.as_tensor(ys, dtype=torch.int64)

    tr, te = materialise(train_ds), materialise(test_ds)
    return tr, te, int(max(tr[1].max(), te[1].max())) + 1


def resolve_entry_point(target: str):
    """Import ``package.module:function`` and return the function."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"Entry point must look like 'package.module:function', got {target!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Cannot import module {module_name!r} of entry point {target!r}: "
                          f"{exc}.") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"Entry point {target!r}: {module_name} has no callable {attr!r}.")
    return fn
