"""The study's shared artifacts: the baseline weights and the sensitivity scan, stored with the
study through Optuna's artifact store, so a worker on another machine downloads them instead of
retraining the baseline and recomputing the scan.

The coordinator publishes them once; the weights' hash is recorded, and a study refuses to
continue with a baseline whose weights differ from the one its trials were scored with.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import optuna

from autoprune.cache import hash_state_dict
from autoprune.errors import ConfigError
from autoprune.search.config import StudyConfig
from autoprune.search.workspace import Workspace

__all__ = ["artifact_store", "publish", "fetch", "check_baseline"]

_KEY = "artifacts"


def artifact_store(cfg: StudyConfig):
    """The study's artifact store: a shared directory, or S3 for ``s3://bucket/prefix``."""
    where = cfg.search.artifacts or str(cfg.run_dir / "artifacts")
    if where.startswith("s3://"):
        try:
            import boto3
        except ImportError:
            raise ConfigError(f"search.artifacts={where!r} needs boto3: pip install boto3."
                              ) from None
        from optuna.artifacts import Boto3ArtifactStore

        bucket, _, prefix = where[len("s3://"):].partition("/")
        return _Prefixed(Boto3ArtifactStore(bucket, client=boto3.client("s3")), prefix)
    from optuna.artifacts import FileSystemArtifactStore

    Path(where).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(where)


class _Prefixed:
    """An artifact store whose ids live under a key prefix."""

    def __init__(self, store, prefix: str) -> None:
        self.store, self.prefix = store, prefix.strip("/")

    def _key(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def open_reader(self, artifact_id: str):
        return self.store.open_reader(self._key(artifact_id))

    def write(self, artifact_id: str, content_body) -> None:
        self.store.write(self._key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self._key(artifact_id))


def _recorded(study: optuna.Study) -> dict:
    return dict(study.user_attrs.get(_KEY, {}))


def check_baseline(study: optuna.Study, ws: Workspace) -> str:
    """Record the baseline's weights hash on first use; refuse a different baseline later."""
    h = hash_state_dict(ws.baseline.model)
    known = _recorded(study).get("baseline", {}).get("hash")
    if known is not None and known != h:
        raise ConfigError(
            f"The baseline's weights ({h}) differ from the ones study {study.study_name!r} "
            f"was scored with ({known}), e.g. after retraining: its trials would not be "
            f"comparable. Use a new study name (--set name=NEW).")
    return h


def publish(study: optuna.Study, ws: Workspace, scan_mode: str, baseline_hash: str) -> None:
    """Upload the baseline (weights hash from :func:`check_baseline`) and the scan once
    (coordinator)."""
    cfg = ws.cfg
    rec = _recorded(study)
    store = None
    items = {"baseline": (ws.baseline_path, baseline_hash),
             f"scan:{scan_mode}": (Path(ws.scan(scan_mode).path), None)}
    for name, (path, h) in items.items():
        if name in rec:
            continue
        store = store or artifact_store(cfg)
        artifact_id = optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path),
                                                       study_or_trial=study)
        rec[name] = {"id": artifact_id, "file": path.name, "hash": h}
        study.set_user_attr(_KEY, rec)


def fetch(study: optuna.Study, ws: Workspace, scan_mode: str) -> list[str]:
    """Download the published baseline and scan into this machine's cache where missing
    (worker); returns what was downloaded."""
    rec = _recorded(study)
    got = []
    if "baseline" in rec and not ws.baseline_path.is_file():
        _download(ws.cfg, rec["baseline"]["id"], ws.baseline_path)
        got.append("baseline")
    key = f"scan:{scan_mode}"
    if key in rec:
        path = ws.scan_path(scan_mode)
        if not path.is_file():
            _download(ws.cfg, rec[key]["id"], path)
            got.append(key)
    return got


def _download(cfg: StudyConfig, artifact_id: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".download")
    os.close(fd)
    os.remove(tmp)
    try:
        optuna.artifacts.download_artifact(artifact_store=artifact_store(cfg), file_path=tmp,
                                           artifact_id=artifact_id)
        shutil.move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
