"""Content-hash cache keys, atomic writes and corruption-tolerant reads; and giving the
process's freed heap back to the operating system.

Every expensive stage (baseline training, sensitivity scans, latency tables) stores its output
under a key hashed from everything it depends on: weights, a data fingerprint, settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["cache_dir", "hash_key", "hash_state_dict", "atomic_path", "atomic_torch_save",
           "safe_torch_load",
           "release_heap"]


@cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_heap() -> bool:
    """Give freed heap memory back to the OS (glibc's ``malloc_trim(0)``; elsewhere a no-op);
    True when some was returned.

    A search allocates and frees hundreds of megabytes per trial (pruned copies, fine-tune
    activations, DataLoader batches); glibc keeps much of it in its arenas, so RSS creeps up
    over a long study although no object leaks (``reports/benchmarks/rss.md``).
    """
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def cache_dir(sub: str = "") -> Path:
    """``$AUTOPRUNE_CACHE`` or ``~/.cache/autoprune``, plus ``sub``; created on demand."""
    base = Path(os.environ.get("AUTOPRUNE_CACHE", Path.home() / ".cache" / "autoprune"))
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def hash_state_dict(model: nn.Module | dict) -> str:
    """Hash of a model's weights and buffers (names, shapes and exact values)."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    h = hashlib.sha1()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` when the block ends
    without an error, removed otherwise: a reader (or a crash) never sees half a file.

    Example:
        >>> with atomic_path(Path("model.onnx")) as tmp:  # doctest: +SKIP
        ...     tmp.write_bytes(data)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def safe_torch_load(path: Path, required: tuple[str, ...] = ()) -> dict | None:
    """Load a cached dict; ``None`` (with a warning) when missing, unreadable or incomplete."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed
        warnings.warn(f"Cache entry {path} is corrupted ({type(exc).__name__}); recomputing.",
                      stacklevel=2)
        return None
    if not isinstance(obj, dict) or any(k not in obj for k in required):
        warnings.warn(f"Cache entry {path} is incomplete; recomputing.", stacklevel=2)
        return None
    return obj
