"""Datasets, deterministic splits and a fast batch loader.

The built-in sets (Fashion-MNIST, MNIST, CIFAR-10) are materialised once as a uint8 tensor
``N x C x H x W`` plus int64 labels (:class:`ArraySplit`); ``imagefolder:PATH`` and entry-point
data sets are streamed (:class:`StreamSplit`): images are decoded, resized and padded per item
by torchvision transforms in :class:`torch.utils.data.DataLoader` worker processes, so a data
set larger than memory works (``data.stream = false`` materialises them instead). Either way
batches are normalised and augmented (training only) in torch by the same code, so a streamed
and a materialised copy of one data set give identical batches. The validation split is carved
out of the training set under a seed; the test split is kept apart for final numbers only.

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
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from autoprune.cache import release_heap
from autoprune.errors import ConfigError, DataNotFoundError

__all__ = ["DataSpec", "ArraySplit", "StreamSplit", "DataBundle", "Loader", "load_data",
           "DEBIAN_FASHION_MNIST"]

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
        stream: ``imagefolder`` / entry-point data: read images from their files batch by
            batch (True, the default) or load them all into memory first (False). The
            built-in sets are always in memory.
        workers: DataLoader worker processes decoding streamed images (0: in the main
            process).
    """

    name: str = "fashion-mnist"
    root: str | None = None
    val_size: int = 5000
    seed: int = 0
    pad_to: int | None = None
    augment: str = "flip"
    image_size: int = 32
    train_limit: int | None = None
    stream: bool = True
    workers: int = 2

    def __post_init__(self) -> None:
        if self.workers < 0 or self.image_size <= 0:
            raise ConfigError(f"data.workers must be >= 0 and data.image_size positive, got "
                              f"{self.workers}, {self.image_size}.")
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


def _part(size: int, n: int | None, start: int) -> slice | None:
    """The slice ``start`` .. ``start + n`` of a split of ``size`` images; None for all."""
    if start == 0 and (n is None or n >= size):
        return None
    if start >= size:
        raise ConfigError(f"start={start} is beyond the split's {size} images.")
    return slice(start, size if n is None else start + n)


@dataclass
class ArraySplit:
    """Images (uint8 or float in [0, 1]) and int64 labels of one split."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int | None, start: int = 0) -> ArraySplit:
        """Images ``start`` .. ``start + n`` (all from ``start`` when ``n`` is None)."""
        part = _part(len(self), n, start)
        return self if part is None else ArraySplit(self.images[part], self.labels[part])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.images.shape[1:])


class _Items(torch.utils.data.Dataset):
    """A user's data set seen as ``(uint8 or float C x H x W tensor, int label)`` items, padded
    to ``pad_to``: what a :class:`StreamSplit` reads. Picklable for worker processes."""

    def __init__(self, dataset, pad_to: int | None = None) -> None:
        self.dataset = dataset
        self.pad_to = pad_to

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y = self.dataset[int(i)]
        if not isinstance(x, torch.Tensor):
            from torchvision.transforms.functional import pil_to_tensor

            x = pil_to_tensor(x) if hasattr(x, "mode") else torch.as_tensor(np.asarray(x))
        if x.ndim == 2:
            x = x[None]
        if self.pad_to is not None:
            x = _pad_to(x[None], self.pad_to)[0]
        return x, int(y)

    def label(self, i: int) -> int:
        targets = getattr(self.dataset, "targets", None)
        return int(targets[i]) if targets is not None else int(self.dataset[int(i)][1])


@dataclass
class StreamSplit:
    """One split of a data set read from its files on demand: the items ``indices`` of
    ``items``. Behaves like :class:`ArraySplit` for the loader (``len``, ``subset``)."""

    items: _Items
    indices: torch.Tensor
    workers: int = 2

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def subset(self, n: int | None, start: int = 0) -> StreamSplit:
        """Images ``start`` .. ``start + n`` (all from ``start`` when ``n`` is None)."""
        part = _part(len(self), n, start)
        return self if part is None else StreamSplit(self.items, self.indices[part],
                                                     self.workers)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([self.items.label(int(i)) for i in self.indices], dtype=torch.int64)

    @cached_property
    def sample_shape(self) -> tuple[int, ...]:
        """Read from the first image once: ``input_size`` is asked for on every trial."""
        return tuple(int(v) for v in self.items[int(self.indices[0])][0].shape)

    def batches(self, order: torch.Tensor, batch_size: int):
        """``(images, labels)`` batches of the split's positions ``order``, decoded by
        DataLoader workers, in order."""
        chunks = [self.indices[order[s:s + batch_size]].tolist()
                  for s in range(0, len(order), batch_size)]
        loader = torch.utils.data.DataLoader(self.items, batch_sampler=chunks,
                                             num_workers=self.workers,
                                             persistent_workers=False)
        yield from loader


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
        return self.input_size[0]

    @property
    def input_size(self) -> tuple[int, int, int]:
        c, h, w = self.train.sample_shape
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
        self.streamed = isinstance(split, StreamSplit)
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
        if self.streamed:
            raw = self.split.batches(order, self.batch_size)
        else:
            raw = ((self.split.images[idx], self.split.labels[idx])
                   for idx in order.split(self.batch_size))
        for x, y in raw:
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            x = self._augment(x, gen)
            x = (x - self._mean) / self._std
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
    else:
        if spec.name.startswith("imagefolder:"):
            train_ds, test_ds, num_classes = _imagefolder(spec.name.split(":", 1)[1],
                                                          spec.image_size)
        else:
            train_ds, test_ds, num_classes = _entry_point(spec.name)
        items = (_Items(train_ds, spec.pad_to), _Items(test_ds, spec.pad_to))
        if spec.stream:
            return _stream_bundle(spec, *items, num_classes)
        (tr_x, tr_y), (te_x, te_y) = _materialise(items[0]), _materialise(items[1])
        return _bundle(spec, tr_x, tr_y, te_x, te_y, num_classes)

    if spec.pad_to is not None:
        tr_x, te_x = _pad_to(tr_x, spec.pad_to), _pad_to(te_x, spec.pad_to)
    return _bundle(spec, tr_x, tr_y, te_x, te_y, num_classes)


#: Training images the normalisation statistics are computed on (the first ones).
_STATS_SAMPLE = 20000


def _split_indices(spec: DataSpec, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation and training positions in the training set, under the split's seed."""
    if spec.val_size >= n:
        raise ConfigError(f"val_size={spec.val_size} leaves no training images out of {n}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
    val_idx, train_idx = perm[: spec.val_size], perm[spec.val_size :]
    if spec.train_limit is not None:
        train_idx = train_idx[: spec.train_limit]
    return val_idx, train_idx


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sample = images.float() / (255.0 if images.dtype == torch.uint8 else 1.0)
    mean = tuple(round(float(v), 4) for v in sample.mean(dim=(0, 2, 3)))
    std = tuple(round(float(v), 4) for v in sample.std(dim=(0, 2, 3)).clamp_min(1e-3))
    return mean, std


def _bundle(spec, tr_x, tr_y, te_x, te_y, num_classes) -> DataBundle:
    val_idx, train_idx = _split_indices(spec, tr_x.shape[0])
    train = ArraySplit(tr_x[train_idx], tr_y[train_idx])
    val = ArraySplit(tr_x[val_idx], tr_y[val_idx])
    test = ArraySplit(te_x, te_y)
    mean, std = _stats(train.images[:_STATS_SAMPLE])
    bundle = DataBundle(spec.name, train, val, test, num_classes, mean, std, spec.augment)
    h = hashlib.sha1()
    for split in (bundle.train, bundle.val, bundle.test):
        h.update(split.images.contiguous().numpy().tobytes())
        h.update(split.labels.numpy().tobytes())
    h.update(repr((spec.val_size, spec.seed, spec.pad_to, spec.augment)).encode())
    bundle.fingerprint = h.hexdigest()[:16]
    return bundle


def _stream_bundle(spec: DataSpec, train_items: _Items, test_items: _Items,
                   num_classes: int) -> DataBundle:
    """Splits that read their images on demand; statistics over the same first training
    images as the in-memory path, so both give the same batches."""
    val_idx, train_idx = _split_indices(spec, len(train_items))
    train = StreamSplit(train_items, train_idx, spec.workers)
    val = StreamSplit(train_items, val_idx, spec.workers)
    test = StreamSplit(test_items, torch.arange(len(test_items)), spec.workers)
    first = train.subset(_STATS_SAMPLE)
    sums, total = None, 0
    for x, _ in first.batches(torch.arange(len(first)), 64):
        x = x.float() / (255.0 if x.dtype == torch.uint8 else 1.0)
        part = torch.stack([x.sum(dim=(0, 2, 3), dtype=torch.float64),
                            (x * x).sum(dim=(0, 2, 3), dtype=torch.float64)])
        sums = part if sums is None else sums + part
        total += x.shape[0] * x.shape[2] * x.shape[3]
    release_heap()  # the pass's freed batches back to the OS
    mean_t = sums[0] / total
    std_t = ((sums[1] - total * mean_t ** 2) / (total - 1)).clamp_min(0).sqrt()
    mean = tuple(round(float(v), 4) for v in mean_t)
    std = tuple(round(float(v), 4) for v in std_t.float().clamp_min(1e-3))
    bundle = DataBundle(spec.name, train, val, test, num_classes, mean, std, spec.augment)
    h = hashlib.sha1()
    for items in (train_items, test_items):
        h.update(_describe(items.dataset).encode())
    h.update(repr((spec.val_size, spec.seed, spec.pad_to, spec.augment, spec.image_size,
                   spec.train_limit)).encode())
    bundle.fingerprint = h.hexdigest()[:16]
    return bundle


def _describe(dataset) -> str:
    """What identifies a streamed data set without reading every image: the files (path
    relative to the root, size, class) of an ImageFolder; else the length and a hash of a few
    items."""
    samples = getattr(dataset, "samples", None)
    root = getattr(dataset, "root", "")
    if samples is not None:
        return repr([(os.path.relpath(p, root), os.path.getsize(p), y) for p, y in samples])
    h = hashlib.sha1(str(len(dataset)).encode())
    for i in sorted({0, len(dataset) // 2, len(dataset) - 1}):
        x, y = dataset[i]
        h.update(np.asarray(x).tobytes() + str(y).encode())
    return h.hexdigest()


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


def _imagefolder(path: str, size: int):
    """``train/`` and ``test/`` (or ``val/``) ImageFolder data sets, each image resized to
    ``size`` x ``size`` and converted to a uint8 tensor when read."""
    from torchvision import datasets, transforms

    base = Path(path)
    test_dir = next((base / s for s in ("test", "val") if (base / s).is_dir()), None)
    if not (base / "train").is_dir() or test_dir is None:
        raise DataNotFoundError(
            f"ImageFolder data at {base} needs train/ and test/ (or val/) subfolders with one "
            "folder per class."
        )
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])
    train = datasets.ImageFolder(str(base / "train"), transform=tf)
    test = datasets.ImageFolder(str(test_dir), transform=tf)
    if train.classes != test.classes:
        raise DataNotFoundError(f"ImageFolder data at {base}: train/ has classes "
                                f"{train.classes[:5]}..., {test_dir.name}/ has "
                                f"{test.classes[:5]}...; they must be the same.")
    return train, test, len(train.classes)


def _entry_point(target: str):
    """A user's ``(train_dataset, test_dataset)``; the class count is ``len(classes)`` when
    the training set has ``classes``, else read from the labels (``targets`` if present, else
    every item: slow for a large set, so give it ``classes`` or ``targets``)."""
    train_ds, test_ds = resolve_entry_point(target)()
    classes = getattr(train_ds, "classes", None)
    if classes is not None:
        return train_ds, test_ds, len(classes)
    labels = [_Items(ds).label(i) for ds in (train_ds, test_ds) for i in range(len(ds))]
    return train_ds, test_ds, max(labels) + 1


def _materialise(items: _Items) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(items[i] for i in range(len(items))), strict=True)
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.int64)


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
