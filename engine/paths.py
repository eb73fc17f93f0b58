"""Where Shotoku's files live: bundled resources, the user's cache and settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "Shotoku"


def resources_dir() -> Path:
    """The bundled ``resources/`` folder (source checkout, installed package, or PyInstaller bundle).

    ``SHOTOKU_RESOURCES`` overrides it (tests use this to point at temporary registries).
    """
    override = os.environ.get("SHOTOKU_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def models_dir() -> Path:
    """Folder of model cards: ``resources/models/<name>/card.json``."""
    return resources_dir() / "models"


def demo_song() -> Path:
    """The bundled demo song's mixture file."""
    return resources_dir() / "demo" / "mixture.flac"


def cache_dir() -> Path:
    """The user's cache folder for separated stems (``SHOTOKU_CACHE`` overrides it)."""
    override = os.environ.get("SHOTOKU_CACHE")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))


def config_dir() -> Path:
    """The user's settings folder (``SHOTOKU_CONFIG`` overrides it)."""
    override = os.environ.get("SHOTOKU_CONFIG")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """The user's data folder: adapted models and adaptation jobs (``SHOTOKU_DATA`` overrides it)."""
    override = os.environ.get("SHOTOKU_DATA")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def user_models_dir() -> Path:
    """Folder of the user's own models (``shotoku adapt``): ``<data_dir>/models/<name>/card.json``."""
    return data_dir() / "models"
