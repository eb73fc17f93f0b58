"""``Deck``: the real-time mixer, the transport over it (play, pause, stop, seek, loop) and its mix (no Qt).

A deck holds the current :class:`~engine.playback.mixer.Mixer` (rebuilt when the stems or the output change), the
stem names, the :class:`~engine.playback.mix.MixState` it plays and what the listener wants (playing or not), so a
rebuilt mixer or a reopened device carries on where it was, with the same mix. As in Mixxx's deck, the per-stem
controls are addressed by name and the mixer ramps every change from the previous block's value.
:meth:`Deck.render` is the audio callback's entry: it reads the mixer once and renders it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.playback.mix import MixState, StripState, resolve_gains
from engine.playback.mixer import Mixer, MixerSource
from engine.playback.stretch import check_semitones, check_tempo, is_neutral
from engine.playback.stretchpath import StretchPath

#: The largest block the mixer renders (bigger blocks are zero-filled and counted as starved).
MAX_BLOCK = 8192


class Deck:
    """Stems, mix and transport over one mixer at a time; every method but :meth:`render` is control side."""

    def __init__(self) -> None:
        self.mixer: Mixer | None = None
        self.stems: list[str] = []  #: stem names, in the mixer's order
        self.want_play = False  #: the listener pressed play (kept across mixer rebuilds and device changes)
        self._mix = MixState()
        self.tempo = 1.0  #: playback speed (ratio), kept across rebuilds
        self.semitones = 0.0  #: transposition, kept across rebuilds
        self._path: StretchPath | None = None  # tempo/pitch around the mixer, created when first asked for
        self._samplerate = 44100

    # ------------------------------------------------------------------ audio thread
    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` ``(n_frames, n_channels)`` float32 with the next block (silence without a mixer)."""
        path = self._path
        if path is not None:
            path.render(out)
            return
        mixer = self.mixer
        if mixer is None:
            out.fill(0.0)
        else:
            mixer.render(out)

    # ------------------------------------------------------------------ control side
    def set_stems(self, stems: list[str], n_out_channels: int, samplerate: int) -> bool:
        """Play ``stems`` from now on: if they differ (or there is no mixer yet), a new mixer, and the mix goes
        back to every fader at 0 dB (the master is kept). Returns whether anything changed."""
        if stems == self.stems and self.mixer is not None:
            return False
        self.stems = list(stems)
        self._mix = MixState(MixState.default(self.stems).strips, self._mix.master_db)
        self.rebuild(n_out_channels, samplerate)
        return True

    def rebuild(self, n_out_channels: int, samplerate: int) -> Mixer:
        """A new mixer for the same stems and mix (no source yet: give it one, then :meth:`resume_at`)."""
        path, self._path = self._path, None
        if path is not None:
            path.close()
        self.mixer = Mixer(max(1, len(self.stems)), n_out_channels, max_block=MAX_BLOCK, samplerate=samplerate)
        self._samplerate = samplerate
        if not is_neutral(self.tempo, self.semitones):
            self._start_path()
        self._push_mix()
        return self.mixer

    # ------------------------------------------------------------------ tempo and pitch
    def set_tempo_pitch(self, tempo: float, semitones: float) -> None:
        """Play at ``tempo`` (ratio, 0.5-1.5) transposed by ``semitones`` (-12..+12); ValueError outside."""
        self.tempo, self.semitones = check_tempo(tempo), check_semitones(semitones)
        if self._path is None and self.mixer is not None and not is_neutral(self.tempo, self.semitones):
            self._start_path()
        if self._path is not None:
            self._path.set(self.tempo, self.semitones)

    def _start_path(self) -> None:
        assert self.mixer is not None
        path = StretchPath(self.mixer, self._samplerate)
        path.set(self.tempo, self.semitones)
        self._path = path

    @property
    def stretch(self) -> StretchPath | None:
        """The tempo/pitch path (None until tempo or pitch first left neutral)."""
        return self._path

    def close(self) -> None:
        """Stop the tempo/pitch worker (if any)."""
        path, self._path = self._path, None
        if path is not None:
            path.close()

    def _mixers(self) -> list[Mixer]:
        """The mixers transport and mix requests go to: the direct one and, with tempo/pitch, the feed."""
        mixer = self.mixer
        if mixer is None:
            return []
        path = self._path
        return [mixer, path.feed] if path is not None and path.direct is mixer else [mixer]

    def _transport(self) -> Mixer | None:
        """The mixer whose transport is audible."""
        path = self._path
        return path.transport if path is not None and path.direct is self.mixer else self.mixer

    def install(self, source: MixerSource | None, swap: bool = False, handover: bool = False) -> None:
        """Play ``source``; ``swap``: the same song with more data (position and transport carry on);
        ``handover``: its fallback is the stems the current source plays (see ``Mixer.swap_source``)."""
        mixer = self.mixer
        assert mixer is not None
        current = mixer.source
        if swap and source is not None and current is not None and current.n_frames == source.n_frames:
            mixer.swap_source(source, handover)
        else:
            mixer.set_source(source)
        path = self._path
        if path is not None:  # the feed follows (it renders the same song in song time)
            feed = path.feed
            if swap and source is not None and feed.source is not None and feed.source.n_frames == source.n_frames:
                feed.swap_source(source, handover)
            else:
                feed.set_source(source)

    def resume_at(self, frame: int) -> None:
        """Put a new mixer (or source) at ``frame`` and playing again if the listener wanted it."""
        for mixer in self._mixers():
            mixer.request_seek(frame)
            if self.want_play:
                mixer.request_play()

    def play(self) -> None:
        """Play (from the start of the loop, or of the song, if it had reached the end)."""
        self.want_play = True
        audible = self._transport()
        if audible is not None and audible.source is not None:
            at_end = audible.at_end
            for mixer in self._mixers():
                if at_end:
                    mixer.request_seek(mixer.loop[0] if mixer.loop else 0)
                mixer.request_play()

    def pause(self) -> None:
        self.want_play = False
        for mixer in self._mixers():
            mixer.request_pause()

    def stop(self) -> None:
        """Pause and go back to the start (of the loop, if one is set)."""
        self.pause()
        for mixer in self._mixers():
            loop = mixer.loop
            mixer.request_seek(loop[0] if loop else 0)

    def seek(self, frame: int) -> None:
        """Jump to ``frame`` (output rate; faded)."""
        for mixer in self._mixers():
            mixer.request_seek(frame)

    def set_loop(self, start: int | None, stop: int | None) -> None:
        """Loop ``[start, stop)`` frames (None clears it)."""
        for mixer in self._mixers():
            mixer.set_loop(start, stop)

    # ------------------------------------------------------------------ the mix
    def apply_mix(self, state: MixState) -> None:
        """Play ``state`` from the next block: one mixer update, the gains ramp from the current ones.

        The deck keeps a copy over its own :attr:`stems`: a stem ``state`` has no strip for keeps the strip it
        had, strips of other stems are dropped (a console showing another model's stems changes nothing it does
        not know).
        """
        current = self._mix.strips
        self._mix = MixState({name: replace(state.strips.get(name) or current.get(name) or StripState())
                              for name in self.stems}, float(state.master_db))
        self._push_mix()

    @property
    def mix(self) -> MixState:
        """A copy of the mix playing (strips in :attr:`stems` order)."""
        return self._mix.copy()

    def mix_gains(self) -> tuple[np.ndarray, float]:
        """``(gains (n_stems, 2), master)`` linear, as :func:`~engine.playback.mix.resolve_gains` gives them."""
        return resolve_gains(self._mix, self.stems)

    def _push_mix(self) -> None:
        for mixer in self._mixers():
            if mixer.n_stems == len(self.stems):
                mixer.set_gains(*self.mix_gains())

    # ------------------------------------------------------------------ read side
    @property
    def position(self) -> int:
        """Play position in frames (a pending seek's target while it fades; the song frame heard, with tempo)."""
        mixer = self.mixer
        if mixer is None:
            return 0
        path = self._path
        if path is not None and path.direct is mixer:
            return path.song_position
        pending = mixer.seek_pending
        return pending if pending is not None else mixer.position

    @property
    def playing(self) -> bool:
        mixer = self._transport()
        return bool(mixer is not None and mixer.playing)

    @property
    def out_level(self) -> float:
        """Output peak of the last block (the feed's, in song time, while tempo/pitch plays)."""
        mixer = self._transport()
        return float(mixer.out_level) if mixer is not None else 0.0

    @property
    def levels(self) -> dict[str, float]:
        """Per-stem peak (linear, after the fader) of the last block."""
        mixer = self._transport()
        if mixer is None:
            return {}
        return {s: float(v) for s, v in zip(self.stems, mixer.levels, strict=False)}

    def ran_out(self) -> bool:
        """True when the song reached its end (no loop) while the listener wanted it to play; forgets the wish."""
        mixer = self._transport()
        if mixer is not None and mixer.at_end and self.want_play and mixer.loop is None:
            self.want_play = False
            return True
        return False
