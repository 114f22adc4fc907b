from __future__ import annotations

import pytest

from autoprune.errors import AutopruneError
from autoprune.search.storage import check_storage_url, open_storage


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "journal:",
                                 "", " sqlite:///a.db", "studies/x.db"])
def test_bad_urls_are_refused_with_the_url(url):
    with pytest.raises(AutopruneError, match="journal:" if url == "journal:" else "Storage URL"):
        check_storage_url(url)


def test_sqlite_and_journal_open_and_create_their_directory(tmp_path):
    import optuna

    db = tmp_path / "a" / "study.db"
    s = open_storage(f"sqlite:///{db}")
    assert isinstance(s, optuna.storages.RDBStorage) and db.is_file()
    j = tmp_path / "b" / "journal.log"
    assert isinstance(open_storage(f"journal:{j}"), optuna.storages.JournalStorage)
    assert j.parent.is_dir()


def test_unreachable_database_is_one_clear_error():
    with pytest.raises(AutopruneError, match="Cannot open study storage 'nosuchdb://x'"):
        open_storage("nosuchdb://x")
