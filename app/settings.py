"""The app's remembered settings (QSettings, INI file in the user's config folder).

The file lives in :func:`engine.paths.config_dir` (``SHOTOKU_CONFIG`` overrides it), so tests point it at a
temporary folder by setting that variable.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from engine.paths import config_dir
from engine.playback.stream import LATENCY_PRESETS

ORGANIZATION = "Shotoku"
APPLICATION = "Shotoku"
MAX_RECENT = 10


class AppSettings:
    """Typed access to what the app remembers between runs: recent files, last folder, model, devices, layout."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (config_dir() / "shotoku.ini")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    # -- files --------------------------------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        """Most recent first; files that no longer exist are left out."""
        value = self.qsettings.value("files/recent", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if p and Path(p).is_file()][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != path]
        self.qsettings.setValue("files/recent", [path, *items][:MAX_RECENT])
        self.set_last_folder(str(Path(path).parent))

    def last_folder(self) -> str:
        return str(self.qsettings.value("files/last_folder", str(Path.home())))

    def set_last_folder(self, folder: str) -> None:
        self.qsettings.setValue("files/last_folder", folder)

    def first_start(self) -> bool:
        """True until :meth:`mark_started` has been called once."""
        return str(self.qsettings.value("app/started", "false")).lower() != "true"

    def mark_started(self) -> None:
        self.qsettings.setValue("app/started", "true")

    def play_on_open(self) -> bool:
        """A song starts playing as soon as it is opened (the default; File > Play when opened turns it off)."""
        return str(self.qsettings.value("files/play_on_open", "true")).lower() != "false"

    def set_play_on_open(self, on: bool) -> None:
        self.qsettings.setValue("files/play_on_open", "true" if on else "false")

    # -- model and device ---------------------------------------------------------------------------------------
    def model_name(self) -> str | None:
        value = self.qsettings.value("separation/model", None)
        return str(value) if value else None

    def set_model_name(self, name: str) -> None:
        self.qsettings.setValue("separation/model", name)

    def device(self) -> str:
        return str(self.qsettings.value("separation/device", "auto"))

    def set_device(self, device: str) -> None:
        self.qsettings.setValue("separation/device", device)

    # -- audio output -------------------------------------------------------------------------------------------
    def audio_output(self) -> str:
        """The output device's name the musician chose ("" for the system default)."""
        return str(self.qsettings.value("audio/output", "") or "")

    def set_audio_output(self, name: str) -> None:
        self.qsettings.setValue("audio/output", name)

    def audio_latency(self) -> str:
        """"robust" (larger buffers, the default) or "low" (see ``engine.playback.stream.LATENCY_PRESETS``)."""
        value = str(self.qsettings.value("audio/latency", "robust"))
        return value if value in LATENCY_PRESETS else "robust"

    def set_audio_latency(self, latency: str) -> None:
        if latency not in LATENCY_PRESETS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_PRESETS)}")
        self.qsettings.setValue("audio/latency", latency)

    # -- view and layout ----------------------------------------------------------------------------------------
    def log_frequency(self) -> bool:
        return str(self.qsettings.value("view/log_frequency", "true")).lower() == "true"

    def set_log_frequency(self, on: bool) -> None:
        self.qsettings.setValue("view/log_frequency", "true" if on else "false")

    def window_geometry(self) -> QByteArray | None:
        value = self.qsettings.value("window/geometry", None)
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.qsettings.value("window/state", None)
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)

    def sync(self) -> None:
        self.qsettings.sync()
