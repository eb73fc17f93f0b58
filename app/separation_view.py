"""The main window's view of the separation the playback session runs: stem lanes, hatching, progress, status.

A mixin of :class:`app.main_window.MainWindow`; its slots take the :class:`app.playback.SessionPoller` signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.playback import SessionPoller
    from engine.playback.session import PlaybackSession


class SeparationView:
    """Separation state of the open song, read from the session, shown in the lanes and the status bar."""

    playback: PlaybackSession
    poller: SessionPoller

    @property
    def stems(self) -> np.ndarray | None:
        """The separated stems ``(n_stems, 2, n_samples)`` (read-only, the session's stem store)."""
        return self.playback.separated_stems

    @property
    def ready(self) -> np.ndarray:
        """``(n_regions,)`` bool: regions of :attr:`stems` that are separated."""
        return self.playback.separation_ready

    @property
    def separation_done(self) -> bool:
        """Every region is separated and its spectrogram drawn."""
        return (self.poller.done and self.poller.generation == self.playback.separation_generation
                and self.playback.separation_done)

    @property
    def separating(self) -> bool:
        """A separation is under way (not done, not failed)."""
        return (self.song is not None and self.playback.separation_model is not None and not self.separation_done
                and self.playback.separation_error is None)

    def _show_separation_state(self) -> None:
        """Hatch text, progress bar and status line for the separation the session is (or is not) running."""
        if self.song is None:
            return
        if self.playback.separation_model is None:
            self.spectrograms.clear_stems()
            self.spectrograms.set_separated_until(0.0, "not separated: no trained model installed")
            self.statusBar().showMessage("No trained model installed yet: playing the original mix (see Models…)",
                                         20000)
            self.progress.hide()

    def _on_separation_started(self) -> None:
        self.spectrograms.clear_stems()
        self.spectrograms.set_separated_until(0.0, "separating…")
        self.model_label.setText(f"Model: {self.playback.separation_model}")
        self.progress.setValue(0)
        self.progress.setFormat(f"Separating with {self.playback.separation_model} %p%")
        self.progress.show()

    def _on_separation_failed(self, message: str) -> None:
        self.progress.hide()
        self.spectrograms.set_unseparated(self.poller.unseparated_spans(), "not separated")
        self.show_error("Separation failed", message)

    def _on_columns_ready(self, first_frame: int, columns: dict) -> None:
        for name, cols in columns.items():
            self.spectrograms.set_columns(name, first_frame, cols)

    def _on_separation_progress(self, fraction: float) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.spectrograms.set_unseparated(self.poller.unseparated_spans())

    def _on_separated(self, model: str) -> None:
        self.progress.hide()
        self.spectrograms.set_unseparated(self.poller.unseparated_spans())
        self.statusBar().showMessage(f"Separated with {model}", 5000)

