"""Fixtures shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.separation.cache import StemCache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StemCache:
    """A stem cache in the test's own folder (``SHOTOKU_CACHE`` points there too); shadows pytest's ``cache``."""
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path / "cache"))
    return StemCache()
