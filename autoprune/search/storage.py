"""Opening a study's storage from a URL, with the URL checked before anything is trained.

* ``sqlite:///PATH`` (the default, ``studies/<name>/study.db``): one process.
* ``journal:PATH``: several processes on one machine (Optuna's journal file).
* Any other RDB URL, e.g. ``postgresql://user@host/db``: several machines.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from autoprune.errors import AutopruneError

__all__ = ["check_storage_url", "open_storage"]

_IN_MEMORY = ("sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite://:memory:")


def check_storage_url(url: str) -> None:
    """Raise AutopruneError for a URL that cannot hold a study's trials."""
    if not url or url.strip() != url:
        raise AutopruneError(f"Storage URL {url!r} is empty or has surrounding spaces.")
    if url.startswith("journal:"):
        if not url[len("journal:"):]:
            raise AutopruneError("Storage URL 'journal:' names no file; use journal:PATH, "
                                 "e.g. journal:studies/NAME/journal.log.")
        return
    if url in _IN_MEMORY:
        raise AutopruneError(f"Storage URL {url!r} is an in-memory SQLite database: every "
                             f"trial would be lost at exit. Use sqlite:///PATH.")
    if "://" not in url:
        raise AutopruneError(f"Storage URL {url!r} is not a URL: use sqlite:///PATH, "
                             f"journal:PATH or postgresql://USER@HOST/DB.")


def open_storage(url: str, *, heartbeat: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring).

    Args:
        heartbeat: For a server database (not SQLite), let running trials beat, so that a
            dead worker's trial is failed and retried by whichever worker notices first.
    """
    check_storage_url(url)
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    # fail fast on a locked SQLite file instead of hanging
    kwargs = {"connect_args": {"timeout": 5}} if url.startswith("sqlite") else {}
    beat = {}
    if heartbeat and not url.startswith("sqlite"):
        from autoprune.search.workers import GRACE_PERIOD, HEARTBEAT_INTERVAL

        beat = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD,
                "heartbeat_stale_trial_callback":
                    optuna.storages.RetryHeartbeatStaleTrialCallback(3)}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **beat)
    except Exception as exc:  # noqa: BLE001 - every failure here is "cannot open storage"
        raise AutopruneError(f"Cannot open study storage {url!r}: "
                             f"{str(exc).splitlines()[0]}") from exc
