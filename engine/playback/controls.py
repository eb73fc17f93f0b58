"""The mixer strip controls of a :class:`~engine.playback.session.PlaybackSession`: faders, mute, solo, pan, master.

The session keeps the control values (dB, flags, pans) and hands the mixer the resolved linear gains
(:func:`engine.playback.mixer.resolve_gains`) whenever one changes. :meth:`StripControls.mix_gains` gives the same
resolution for offline rendering (an export of the remix sounds exactly like playback).
"""

from __future__ import annotations

import numpy as np

from engine.playback.mixer import Mixer, db_to_gain, resolve_gains


class StripControls:
    """Mixin: per-stem strip controls over ``self.stems`` (names) and ``self.mixer`` (a :class:`Mixer` or None)."""

    stems: list[str]
    mixer: Mixer | None

    def _reset_controls(self) -> None:
        """Every fader at 0 dB, nothing muted or soloed, pans centred (the master is kept)."""
        n = len(self.stems)
        self._gains_db = np.zeros(n)
        self._mutes = np.zeros(n, dtype=bool)
        self._solos = np.zeros(n, dtype=bool)
        self._pans = np.zeros(n)
        if not hasattr(self, "_master_db"):
            self._master_db = 0.0

    def _index(self, stem: str) -> int:
        try:
            return self.stems.index(stem)
        except ValueError:
            raise ValueError(f"unknown stem {stem!r}; stems: {', '.join(self.stems)}") from None

    def mix_gains(self) -> tuple[np.ndarray, float]:
        """``(gains (n_stems, 2) linear, master linear)`` exactly as playback applies them (mute, solo, pan)."""
        return resolve_gains(self._gains_db, self._mutes, self._solos, self._pans), db_to_gain(self._master_db)

    def _apply_controls(self) -> None:
        if self.mixer is None or len(self._gains_db) != self.mixer.n_stems:
            return
        gains, master = self.mix_gains()
        self.mixer.set_stem_gains(gains)
        self.mixer.master_target = master

    def set_gain_db(self, stem: str, db: float) -> None:
        """Fader of ``stem`` in dB (``-inf`` silences it). Acts on separated regions."""
        self._gains_db[self._index(stem)] = float(db)
        self._apply_controls()

    def set_mute(self, stem: str, muted: bool) -> None:
        """Mute ``stem`` (a muted stem is silent even when soloed)."""
        self._mutes[self._index(stem)] = bool(muted)
        self._apply_controls()

    def set_solo(self, stem: str, soloed: bool) -> None:
        """Solo ``stem``: while any stem is soloed, only soloed stems sound."""
        self._solos[self._index(stem)] = bool(soloed)
        self._apply_controls()

    def set_pan(self, stem: str, pan: float) -> None:
        """Balance of ``stem`` from -1 (left) to 1 (right)."""
        self._pans[self._index(stem)] = float(np.clip(pan, -1.0, 1.0))
        self._apply_controls()

    def set_master_gain_db(self, db: float) -> None:
        """Master gain in dB, after the stems and before the soft limiter."""
        self._master_db = float(db)
        self._apply_controls()

    def gains_db(self) -> dict[str, float]:
        """Fader positions by stem name."""
        return {s: float(g) for s, g in zip(self.stems, self._gains_db, strict=True)}
