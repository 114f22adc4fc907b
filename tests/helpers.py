"""Helpers shared by the tests (and the benchmarks): a tiny study on the synthetic data,
written as TOML; a private PostgreSQL server."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def tiny_raw(root, **sections) -> dict:
    raw = {
        "model": {"name": "cnn", "width": 0.5},
        "data": {"name": "fashion-mnist", "root": str(root), "val_size": 200, "pad_to": 0,
                 "augment": "none"},
        "baseline": {"epochs": 2, "lr": 0.05, "batch_size": 64},
        "search": {"mode": "fine", "trials": 8, "prior": "lamp", "sampler": "tpe"},
        "budget": {"size": 0.3},
        "proxy": {"steps": 3, "val_limit": 100, "recalibrate": 64, "confirm_top": 2,
                  "confirm_seeds": 2, "confirm_val": 100},
        "scan": {"ratios": [0.0, 0.5, 0.9], "val_limit": 100},
        "latency": {"min_run_time": 0.01},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw


def to_toml(raw: dict) -> str:
    lines = [f"name = {raw['name']!r}"] if "name" in raw else []
    for section, values in raw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            for k, v in values.items():
                if isinstance(v, bool):
                    v = str(v).lower()
                elif isinstance(v, str):
                    v = f'"{v}"'
                lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def private_postgres(dbname: str, max_connections: int = 100) -> Iterator[str]:
    """``$AUTOPRUNE_TEST_POSTGRES``, or a PostgreSQL server of its own on a temporary
    directory and a free loopback port (Debian's server binaries), stopped afterwards."""
    url = os.environ.get("AUTOPRUNE_TEST_POSTGRES")
    if url:
        yield url
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise FileNotFoundError("PostgreSQL server binaries are missing: run "
                                "scripts/ensure_postgres.sh (make test does).")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="autoprune-pg-"))
    prefix = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd):
        subprocess.run(prefix + [str(c) for c in cmd], check=True, capture_output=True)

    run(bindir / "initdb", "-D", base / "data", "-A", "trust", "-U", "postgres")
    run(bindir / "pg_ctl", "-D", base / "data", "-l", base / "log", "-w", "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections="
        f"{max_connections}", "start")
    try:
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", dbname)
        yield f"postgresql://postgres@127.0.0.1:{port}/{dbname}"
    finally:
        run(bindir / "pg_ctl", "-D", base / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
