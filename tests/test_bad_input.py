"""Every row of docs/bad-input.md: one sentence, exit code 2, no training started."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from autoprune.workflow.cli import main
from tests.helpers import tiny_raw, to_toml

TABLE = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"


def _rows() -> list[tuple[str, str, str, int]]:
    rows = []
    for line in TABLE.read_text().splitlines():
        m = re.fullmatch(r"\| (\d+) \| `([^`]+)` \| [^|]+ \| `([^`]+)` \| (\d+) \|", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
    return rows


ROWS = _rows()


def test_the_table_has_at_least_25_cases():
    assert len(ROWS) >= 25 and [int(r[0]) for r in ROWS] == list(range(1, len(ROWS) + 1))


@pytest.fixture
def no_training(monkeypatch):
    import importlib

    def refuse(*_a, **_k):
        raise AssertionError("training started before the bad input was reported")

    monkeypatch.setattr(importlib.import_module("autoprune.train"), "train", refuse)


@pytest.mark.parametrize("number, command, expected, code", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_row(number, command, expected, code, synthetic_idx_root, in_tmp,
                       no_training, capsys):
    raw = tiny_raw(synthetic_idx_root, search={"sweep": False})
    raw["name"] = "bad"
    study = in_tmp / "bad.toml"
    study.write_text(to_toml(raw))
    args = [a.replace("STUDY", str(study)).replace("DATA", str(synthetic_idx_root))
            for a in shlex.split(command)]
    got = _run(args + ["--quiet"] if args[0] != "profile" else args)
    err = capsys.readouterr().err.strip()
    assert got == code, err
    # argparse's own errors come after its usage lines; ours are the only line
    lines = [ln for ln in err.splitlines() if not ln.startswith(("usage:", " "))]
    assert len(lines) == 1 and expected in lines[0], err
    if command.split()[0] in ("report", "finalize"):
        assert not (in_tmp / "studies" / "bad" / "study.db").exists()


def _run(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse rejects some values itself, with exit code 2
        return int(exc.code)
