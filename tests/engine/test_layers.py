"""The engine's dependency direction (docs/ARCHITECTURE.md, 'Layers'), read from the source with :mod:`ast`.

models -> separation -> playback; nothing under ``engine/models/`` imports separation, playback or train, and
nothing under ``engine/`` but ``engine/cli/`` (and the ``python -m engine`` entry point) imports ``engine.cli``.
Imports inside functions and under ``TYPE_CHECKING`` count.
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, wherever the import sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(ENGINE.parent)} imports {name}"
        for path in files
        for name in imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_models_import_no_separation_playback_or_train():
    files = sorted((ENGINE / "models").rglob("*.py"))
    assert files
    assert offenders(files, ("engine.separation", "engine.playback", "engine.train", "engine.cli")) == []


def test_only_the_cli_imports_the_cli():
    files = [p for p in ENGINE.rglob("*.py") if (ENGINE / "cli") not in p.parents and p != ENGINE / "__main__.py"]
    assert offenders(files, ("engine.cli",)) == []
