"""``AnalysisWorker``: the song's tempo and key, detected in the background when it opens (cached, see
:mod:`engine.analysis`)."""

from __future__ import annotations

import numpy as np

from app.workers import Worker
from engine.analysis import SongAnalysis, analyse_cached


class AnalysisWorker(Worker):
    """BPM and key of ``mixture`` ``(n_channels, n_samples)`` at ``samplerate``; ``succeeded`` carries a
    :class:`~engine.analysis.SongAnalysis`. ``song_id`` tells the controller which song it was for."""

    def __init__(self, mixture: np.ndarray, samplerate: int, song_id: object) -> None:
        super().__init__()
        self.mixture, self.samplerate, self.song_id = mixture, int(samplerate), song_id

    def work(self) -> SongAnalysis:
        self.progress.emit(0.0, "Detecting tempo and key…")
        return analyse_cached(self.mixture, self.samplerate, cancel=self.cancel_event)
