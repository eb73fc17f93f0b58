"""``PlaybackSession``: the headless remix engine the GUI and the CLI both drive (no Qt).

Opening a song plays its original mixture at once; a :class:`~engine.playback.background.BackgroundSeparation`
separates it region by region from the play position onwards (into the on-disk stem store), and each region
switches to the remixable stems, with a cross-fade, as soon as it is ready. The session composes parts that read
alone: the output (:class:`~engine.playback.output.OutputPath`: a device, or the silent clock), the deck (the
real-time mixer with its stems, mix and transport: :class:`~engine.playback.deck.Deck`), and the open song with its
separation (:class:`~engine.playback.song.OpenSong`). The mix is one :class:`~engine.playback.mix.MixState`,
applied in one call by :meth:`PlaybackSession.apply_mix`.

Control methods may be called from any (non-audio) thread; the GUI polls the read-only properties from a timer
(~30 Hz): :attr:`position_seconds`, :attr:`region_ready`, :attr:`levels`, :attr:`underruns`, :attr:`state`,
:attr:`message`, and :attr:`separation` (the stems, their progress, errors). Process-wide tuning is not the
session's business: see :func:`engine.playback.tuning.tune_process_for_playback`.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine import STEM_NAMES
from engine.errors import PlaybackError
from engine.playback import background
from engine.playback.background import BackgroundSeparation
from engine.playback.deck import Deck
from engine.playback.mix import MixState
from engine.playback.mixer import Mixer
from engine.playback.models import ModelResolver, ResolvedModel, model_input
from engine.playback.output import OutputPath
from engine.playback.song import OpenSong, SeparationSettings, load_song
from engine.playback.stream import AudioOutput, OutputState
from engine.separation.cache import DEFAULT_REGION_SAMPLES, StemCache
from engine.separation.runner import default_threads
from engine.separation.streaming import StreamingSeparator

if TYPE_CHECKING:
    from torch import nn

    from engine.audio import Audio
    from engine.playback.stretchpath import StretchPath

log = logging.getLogger(__name__)

#: What :meth:`PlaybackSession.close` promises (seconds): the separation's bound, then the output and the monitor.
CLOSE_BOUND = background.CLOSE_BOUND + 3.0

#: :attr:`PlaybackSession.message` while a song plays without a model.
NO_MODEL_MESSAGE = "no trained model installed: playing the original mix only"


def _forward(name: str, default: Callable[[], object]) -> property:
    """A read-only property giving the current separation's attribute ``name`` (``default()`` without one)."""
    def get(session: PlaybackSession) -> object:
        separation = session.separation
        return getattr(separation, name) if separation is not None else default()

    return property(get, doc=f":attr:`BackgroundSeparation.{name}` of the current separation.")


class SessionState(enum.StrEnum):
    """What the session is doing (``message`` says more when it is an error state)."""

    EMPTY = "empty"  #: no song open
    STOPPED = "stopped"
    PLAYING = "playing"
    PAUSED = "paused"
    NO_OUTPUT = "no-output"  #: a song is open but there is no audio output (see message); choose a device
    DEVICE_LOST = "device-lost"  #: the output vanished while playing; choose a device to resume


class PlaybackSession:
    """A song, its background separation, the mix, the real-time mixer and the audio output.

    Args:
        model: default model name for :meth:`open` (None: the catalogue's default).
        device: output device (index, name fragment or None for the system default).
        latency: "robust" (default, large blocks) or "low" (small blocks); see ``stream.LATENCY_PRESETS``.
        blocksize: frames per block, overriding the latency preset.
        worker_threads: torch threads of the separation worker (default: the one thread rule,
            :func:`~engine.separation.runner.default_threads`).
        cache: the stem store (default: ``StemCache()`` in the platform cache folder).
        open_output: open the audio output now (False: call :meth:`select_device` later, e.g. tests).
        worker_process: run the model in a child process (default; measured: fewer underruns, as the model can
            then never hold this process's GIL) rather than in a thread of this process.
        compute_device: where the model runs ("cpu", "cuda", "cuda:1", ...; None/"auto": the best available).
    """

    def __init__(
        self,
        model: str | None = None,
        device: int | str | None = None,
        latency: str = "robust",
        blocksize: int | None = None,
        worker_threads: int | None = None,
        cache: StemCache | None = None,
        open_output: bool = True,
        worker_process: bool = True,
        compute_device: str | None = None,
    ) -> None:
        self.model_name = model
        self.worker_process = worker_process
        self.worker_threads = worker_threads or default_threads()
        self.cache = cache or StemCache()
        self.compute_device = compute_device
        self.samplerate = 0  #: output rate (frames/s) of the mixer
        self.model_samplerate = 0
        self.duration_seconds = 0.0
        self.title = ""
        self._message = ""
        self._models = ModelResolver()
        self._deck = Deck()
        self._output = OutputPath(self._render, lambda: self.samplerate or 44100,
                                  lambda: self.mixer.n_out_channels if self.mixer is not None else 2,
                                  latency=latency, blocksize=blocksize)
        self._output.device_spec = device
        self._song: OpenSong | None = None
        self._generation = 0
        self._lock = threading.RLock()  # control side only; the callback never takes it
        self._closed = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="shotoku-playback-monitor", daemon=True)
        self._monitor.start()
        if open_output:
            self.select_device(device)

    # ------------------------------------------------------------------ output
    def _render(self, out: np.ndarray) -> None:  # audio thread
        self._deck.render(out)

    @property
    def mixer(self) -> Mixer | None:
        """The real-time mixer of the open song (rebuilt when the stems or the output change)."""
        return self._deck.mixer

    @property
    def stems(self) -> list[str]:
        """Stem names of the open song's model: the order of the mixer, the mix and the stem store."""
        return self._deck.stems

    @property
    def output(self) -> AudioOutput:
        """The audio output stream (its counters, device, latency, state)."""
        return self._output.stream

    def select_device(
        self, device: int | str | None = None, samplerate: int | None = None, latency: str | None = None
    ) -> bool:
        """(Re)open the audio output on ``device``; playback resumes where it was. False (and :attr:`message`) on failure.

        ``device``: an index, a device's name (an exact name wins over names that merely contain it) or a name
        fragment, or None for the system default. ``latency``: "robust" or "low" switches the preset
        (``stream.LATENCY_PRESETS``: PortAudio's latency hint and the frames per block) before reopening; None
        keeps the current one. Raises ValueError for an unknown latency name (and then changes nothing).
        """
        with self._lock:
            position = self.position_seconds
            try:
                rate = self._output.open(device, samplerate or self.model_samplerate or 44100, latency)
            except PlaybackError as err:
                self._message = str(err)
                return False
            self._message = ""
            mixer = self.mixer
            if mixer is None or rate != self.samplerate or self._output.n_channels != mixer.n_out_channels:
                self.samplerate = rate
                self._deck.rebuild(self._output.n_channels or 2, rate)
                if self._song is not None:
                    self._song.install(rate)
                    self._deck.resume_at(int(round(position * rate)))
            return True

    @property
    def device_spec(self) -> int | str | None:
        """The output device last asked for (:meth:`select_device`'s ``device``; None: the system default)."""
        return self._output.device_spec

    @property
    def latency(self) -> str:
        """The output's latency preset: "robust" or "low"."""
        return self.output.latency_mode

    def play_silently(self) -> None:
        """Close the audio output and play on the silent clock (no device; transport and meters still run)."""
        with self._lock:
            self._message = "audio output disabled"
            self._output.play_silently()

    # ------------------------------------------------------------------ songs
    def open(
        self,
        source: str | Path | Audio,
        model: str | nn.Module | None = None,
        play: bool = True,
        region_samples: int = DEFAULT_REGION_SAMPLES,
        references: dict[str, np.ndarray] | None = None,
        separate: bool = True,
    ) -> None:
        """Open a song and (by default) start playing its original mixture at once.

        Args:
            source: a file path, or an :class:`engine.audio.Audio` (``samples (n_channels, n_samples)``, ``samplerate``).
            model: a model name, a loaded model (nn.Module with ``sources``, ``samplerate``, ``segment_samples``),
                or None for the session's default. With no model given and none installed, the mixture plays
                alone and :attr:`message` says so.
            play: start playback immediately.
            region_samples: stem-store region length (model-rate samples).
            references: the song's true stems ``{name: (n_channels, n_samples)}`` at the source's rate; oracle
                models (``needs_references``) separate with them.
            separate: False plays the mixture only (no model), and :attr:`message` says so.
        Raises:
            ShotokuError (AudioLoadError, ModelLoadError, ...) when the song or model cannot be loaded, or an
            oracle model gets no references.
        """
        self.close_song()
        resolved = self._resolve(model) if separate else None
        samples, rate, title, references = load_song(
            source, int(resolved.model.samplerate) if resolved is not None else None, references)
        model_in = model_input(resolved, samples, references) if resolved is not None else None
        with self._lock:
            song = OpenSong(samples, rate, title, references, region_samples, self._deck, self._lock,
                            self._set_message)
            self._song, self.title = song, title
            self.model_samplerate, self.duration_seconds = rate, song.duration_seconds
            self._set_stems(list(resolved.model.sources) if resolved is not None else list(STEM_NAMES))
            self._message = "" if resolved is not None else NO_MODEL_MESSAGE
            song.install(self.samplerate)
            if play:
                self.play()
            if resolved is not None:
                assert model_in is not None
                self._separate(song, resolved, model_in)

    def change_model(self, model: str | nn.Module | None = None) -> None:
        """Re-separate the open song with ``model`` (None: the session default) while playback carries on.

        When the new model has the same stems, the old model's stems keep playing wherever the new model's are
        not ready yet (cross-faded to the new ones region by region; :attr:`previous_separation` shows them), so
        a muted stem stays muted; with other stems the mixer plays the original mix there. The new regions are
        ready at once, from the stem store, if this song was separated with that model before.
        Raises:
            ShotokuError: the model cannot be loaded, or it is an oracle and the song has no references.
        """
        resolved = self._resolve(model)
        song = self._song
        if song is None:
            return
        model_in = model_input(resolved, song.mixture, song.references) if resolved is not None else None
        with self._lock:
            if self._song is not song:
                return
            sources = list(resolved.model.sources) if resolved is not None else self.stems
            previous = song.detach(keep_stems=resolved is not None and sources == self.stems)
            self._message = "" if resolved is not None else NO_MODEL_MESSAGE
            if sources != self.stems:
                position = self._deck.position
                self._set_stems(sources)
                song.install(self.samplerate)
                self._deck.resume_at(position)
            else:
                song.install(self.samplerate, swap=True)
            if resolved is not None:
                assert model_in is not None
                self._separate(song, resolved, model_in, previous)
                previous = None  # the new separation closes it first, off this thread
        if previous is not None:
            previous.close()

    def set_compute_device(self, device: str | None) -> None:
        """Run separation on ``device`` ("cpu", "cuda:0", None/"auto"); re-separates the open song there."""
        self.compute_device = device
        self._models.forget()
        name = self.separation_model
        if self._song is not None and name is not None:
            self.change_model(name)

    def close_song(self, timeout: float = background.CLOSE_BOUND) -> bool:
        """Stop playback and the separation and release the song (the stem cache keeps what was separated).

        Returns within ``timeout`` seconds (default :data:`~engine.playback.background.CLOSE_BOUND`); True when
        the separation's threads and child process have ended (always, in process mode).
        """
        with self._lock:
            self._deck.want_play = False
            if self.mixer is not None:
                self.mixer.set_source(None)
            song, self._song = self._song, None
        if song is None:
            return True
        return song.close(timeout)  # joins the separation's threads; never under the lock (its opener may wait for it)

    def close(self, timeout: float = CLOSE_BOUND) -> bool:
        """Close the song, the output and the monitor thread: returns within ``timeout`` seconds (default
        :data:`CLOSE_BOUND`, whatever the machine's load), True when every thread and process this session
        started has ended (in process mode, the default, always: the separation's child is terminated, then
        killed, when it does not answer; it is never waited on for a model chunk)."""
        deadline = time.monotonic() + timeout
        self._closed.set()
        stopped = self.close_song(max(0.0, min(background.CLOSE_BOUND, deadline - time.monotonic() - 1.0)))
        self._output.close()
        self._deck.close()
        self._monitor.join(max(0.0, deadline - time.monotonic()))
        stopped = stopped and not self._monitor.is_alive() and not self._output.clock.running
        if not stopped:
            log.warning("the playback session did not stop every thread within %.1f s", timeout)
        return stopped

    def _resolve(self, model: str | nn.Module | None) -> ResolvedModel | None:
        return self._models.resolve(model, self.model_name, not self.worker_process, self.compute_device)

    def _set_stems(self, sources: list[str]) -> None:
        """New stem names: a mixer to match, every fader back at 0 dB (the master is kept)."""
        if self.samplerate == 0:
            self.samplerate = self.model_samplerate or 44100
        self._deck.set_stems(sources, self._output.n_channels or 2, self.samplerate)

    # ------------------------------------------------------------------ the separation
    def _separate(self, song: OpenSong, resolved: ResolvedModel, model_in: np.ndarray,
                  previous: BackgroundSeparation | None = None) -> None:
        self._generation += 1
        settings = SeparationSettings(self.cache, self.worker_process, self.worker_threads, self.compute_device)
        song.separate(self._generation, resolved, model_in, settings, previous)

    def _set_message(self, message: str) -> None:  # a background thread (the separation failed)
        self._message = message

    @property
    def separation(self) -> BackgroundSeparation | None:
        """The separation of the open song (None: none running, e.g. no model); its stems, progress and error."""
        song = self._song
        return song.separation if song is not None else None

    @property
    def previous_separation(self) -> BackgroundSeparation | None:
        """The replaced separation (closed) whose stems still play where the current one's are not ready, or None
        (no model change, or the new model has other stems). Its ``stems``, ``regions_ready``, ``region_samples``
        and ``model_name`` stay readable: the app keeps those lanes drawn until the new ones replace them."""
        song = self._song
        return song.previous_separation if song is not None else None

    @property
    def previous_region_ready(self) -> np.ndarray:
        """``(n_regions,)`` bool copy on :attr:`region_ready`'s grid: where the replaced model's stems can play
        (empty without a :attr:`previous_separation`)."""
        ready = self._song.fallback_ready if self._song is not None else None
        return ready.astype(bool) if ready is not None else np.zeros(0, dtype=bool)

    @property
    def separation_model(self) -> str | None:
        """The model separating the open song (None: none)."""
        separation = self.separation
        return separation.model_name if separation is not None else None

    @property
    def separation_generation(self) -> int:
        """Counts separations started (open, model or device change): a poller clears its stem views when it moves."""
        return self._generation

    # The separation as the app read it before :attr:`separation` existed; part D moves to ``separation``.
    separated_stems = _forward("stems", lambda: None)
    separation_ready = _forward("regions_ready", lambda: np.zeros(0, dtype=bool))
    separation_region_samples = _forward("region_samples", lambda: DEFAULT_REGION_SAMPLES)
    separation_done = _forward("done", lambda: False)
    separation_error = _forward("error", lambda: None)

    @property
    def worker(self) -> StreamingSeparator | None:
        """The current separation's streaming worker (diagnostics and tests)."""
        separation = self.separation
        return separation.worker if separation is not None else None

    # ------------------------------------------------------------------ the mix
    def apply_mix(self, state: MixState) -> None:
        """Play ``state`` from the next audio block: one mixer update, the gains ramp from the current ones.

        The session keeps a copy over its own :attr:`stems` (see :meth:`Deck.apply_mix
        <engine.playback.deck.Deck.apply_mix>`); faders at or below ``mix.MIN_DB`` are silence.
        """
        self._deck.apply_mix(state)

    @property
    def mix(self) -> MixState:
        """A copy of the mix playing (strips in :attr:`stems` order)."""
        return self._deck.mix

    def mix_gains(self) -> tuple[np.ndarray, float]:
        """``(gains (n_stems, 2) linear, master linear)`` exactly as playback applies :attr:`mix` (for the export)."""
        return self._deck.mix_gains()

    # ------------------------------------------------------------------ transport
    @property
    def playing(self) -> bool:
        """True while the transport runs (with or without an audio output)."""
        return self._deck.playing

    def play(self) -> None:
        self._deck.play()

    def pause(self) -> None:
        self._deck.pause()

    def stop(self) -> None:
        """Pause and go back to the start (of the loop, if one is set)."""
        self._deck.stop()

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` (sample-accurate, faded); separation work moves there too."""
        if self.mixer is None or self.samplerate == 0:
            return
        self._deck.seek(int(round(max(0.0, seconds) * self.samplerate)))
        separation = self.separation
        if separation is not None:
            separation.seek(int(round(max(0.0, seconds) * self.model_samplerate)))

    def set_loop(self, start_seconds: float | None, stop_seconds: float | None) -> None:
        """Loop the A-B region ``[start, stop)`` in seconds; None clears the loop."""
        if start_seconds is None or stop_seconds is None:
            self._deck.set_loop(None, None)
        else:
            self._deck.set_loop(int(round(start_seconds * self.samplerate)), int(round(stop_seconds * self.samplerate)))

    # ------------------------------------------------------------------ tempo and pitch
    def set_tempo(self, tempo: float) -> None:
        """Play at ``tempo`` (a ratio, 0.5-1.5: 50-150 %) without changing pitch; heard within 100 ms.

        Rubber Band stretches the remix outside the audio callback (see :mod:`engine.playback.stretchpath`);
        seek and loop stay in song time. Raises ValueError outside the range.
        """
        self._deck.set_tempo_pitch(tempo, self._deck.semitones)

    def set_transpose(self, semitones: float) -> None:
        """Transpose by ``semitones`` (-12..+12) without changing tempo; ValueError outside the range."""
        self._deck.set_tempo_pitch(self._deck.tempo, semitones)

    @property
    def tempo(self) -> float:
        """Playback speed as a ratio (1.0: as recorded)."""
        return self._deck.tempo

    @property
    def transpose(self) -> float:
        """Transposition in semitones."""
        return self._deck.semitones

    @property
    def stretch(self) -> StretchPath | None:
        """The tempo/pitch path (its ring, counters, error), or None before tempo or pitch first moved."""
        return self._deck.stretch

    # ------------------------------------------------------------------ what the GUI polls
    @property
    def position_seconds(self) -> float:
        """Play position (a pending seek's target while it fades)."""
        return self._deck.position / self.samplerate if self.samplerate else 0.0

    @property
    def state(self) -> SessionState:
        output = self._output.state
        if output == OutputState.DEVICE_LOST:
            return SessionState.DEVICE_LOST
        if output != OutputState.RUNNING:
            return SessionState.NO_OUTPUT
        mixer = self.mixer
        if mixer is None or mixer.source is None:
            return SessionState.EMPTY
        if mixer.playing:
            return SessionState.PLAYING
        return SessionState.PAUSED if self._deck.position > 0 and not mixer.at_end else SessionState.STOPPED

    @property
    def message(self) -> str:
        """The last error or notice, one line ("" when all is well): output problems first."""
        return self._message or self._output.message

    @property
    def region_seconds(self) -> float:
        """Length of one region of :attr:`region_ready`, in seconds."""
        src = self.mixer.source if self.mixer is not None else None
        return src.region_frames / self.samplerate if src is not None and self.samplerate else 0.0

    @property
    def region_ready(self) -> np.ndarray:
        """``(n_regions,)`` bool copy: True where the separated stems of that region are playing-ready."""
        source = self._song.source if self._song is not None else None
        ready = source.ready if source is not None else None
        return ready.astype(bool) if ready is not None else np.zeros(0, dtype=bool)

    @property
    def separated_fraction(self) -> float:
        ready = self.region_ready
        return float(ready.mean()) if ready.size else 0.0

    @property
    def levels(self) -> dict[str, float]:
        """Per-stem peak (linear, after the fader) of the last block."""
        return self._deck.levels

    @property
    def output_level(self) -> float:
        return self._deck.out_level

    @property
    def underruns(self) -> int:
        """Output underflows PortAudio reported since the output was opened."""
        return self.output.underruns

    # ------------------------------------------------------------------ monitor thread
    def _watch(self) -> None:
        while not self._closed.wait(0.1):
            try:
                before = self.output.state
                after = self.output.check()
                if after == OutputState.DEVICE_LOST and before != after:
                    log.warning("%s", self.output.message)
                self._deck.ran_out()
                mixer, separation = self.mixer, self.separation
                if separation is not None and mixer is not None and self.samplerate and self._deck.playing:
                    separation.follow(int(self._deck.position * self.model_samplerate / self.samplerate))
            except Exception:  # the monitor must survive anything
                log.exception("playback monitor")
                time.sleep(0.5)
