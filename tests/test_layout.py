"""The package's shape: imports run one way (engine <- search <- workflow) and no module
reaches into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "autoprune"
FOUNDATIONS = {"errors", "cache", "data", "models", "train"}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path):
    """(imported module, names) of every absolute import, including those inside functions."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "api"
    return parts[1] if parts[1] in ("engine", "search", "workflow") else "foundation"


ALLOWED = {  # layer -> the autoprune layers it may import
    "foundation": {"foundation"},
    "engine": {"foundation", "engine"},
    "search": {"foundation", "engine", "search"},
    "workflow": {"foundation", "engine", "search", "workflow"},
    "api": {"foundation", "engine", "search", "workflow"},
}


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v))
def test_imports_run_one_way_and_use_public_names(module, path):
    layer = _layer(module)
    for target, names in _imports(path):
        if layer == "engine":
            assert target.split(".")[0] not in ("optuna", "pandas"), (module, target)
        if not target.startswith("autoprune"):
            continue
        assert _layer(target) in ALLOWED[layer], f"{module} imports {target}"
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{module} imports private names {private} from {target}"


def test_foundations_are_where_the_architecture_says():
    top = {p.stem for p in PKG.glob("*.py")} - {"__init__", "__main__"}
    assert top == FOUNDATIONS
    assert {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "engine", "search", "workflow"}
