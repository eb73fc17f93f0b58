"""``PlaybackSession``: the headless remix engine the GUI and the CLI both drive (no Qt).

Opening a song plays its original mixture at once; a background worker separates it region by region from the
play position onwards (into the on-disk stem store), and each region switches to the remixable stems, with a
cross-fade, as soon as it is ready. Control methods may be called from any (non-audio) thread; the GUI polls the
read-only properties from a timer (~30 Hz): :attr:`position_seconds`, :attr:`region_ready`, :attr:`levels`,
:attr:`underruns`, :attr:`state`, :attr:`message`, and the separated stems (:attr:`separated_stems`,
:attr:`separation_ready`, :attr:`separation_done`). Without an audio output a silent clock
(:mod:`engine.playback.silent`) renders the mixer at real-time rate, so the transport and meters still run.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from engine import STEM_NAMES
from engine.errors import PlaybackError, ShotokuError
from engine.playback.controls import StripControls
from engine.playback.mixer import Mixer, MixerSource
from engine.playback.models import ResolvedModel
from engine.playback.ratematch import RegionResampler
from engine.playback.separating import NO_MODEL_MESSAGE, SongSeparation
from engine.playback.silent import SilentClock
from engine.playback.stream import (
    LATENCY_PRESETS,
    AudioOutput,
    OutputState,
    list_output_devices,
    refresh_devices,
)
from engine.separation.cache import DEFAULT_REGION_SAMPLES, StemCache, StemEntry
from engine.separation.streaming import StreamingSeparator, default_worker_threads

if TYPE_CHECKING:
    from torch import nn

    from engine.audio import Audio

log = logging.getLogger(__name__)


class SessionState(enum.StrEnum):
    """What the session is doing (``message`` says more when it is an error state)."""

    EMPTY = "empty"  #: no song open
    STOPPED = "stopped"
    PLAYING = "playing"
    PAUSED = "paused"
    NO_OUTPUT = "no-output"  #: a song is open but there is no audio output (see message); choose a device
    DEVICE_LOST = "device-lost"  #: the output vanished while playing; choose a device to resume


class PlaybackSession(SongSeparation, StripControls):
    """A song, its streaming separation, the real-time mixer and the audio output.

    Args:
        model: default model name for :meth:`open` (None: the registry's default).
        device: output device (index, name fragment or None for the system default).
        latency: "robust" (default, large blocks) or "low" (small blocks); see ``stream.LATENCY_PRESETS``.
        blocksize: frames per block, overriding the latency preset.
        worker_threads: torch threads of the separation worker (default: cores - 1, at least 1).
        cache: the stem store (default: ``StemCache()`` in the platform cache folder).
        open_output: open the audio output now (False: call :meth:`select_device` later, e.g. tests).
        gil_switch_interval: if set, ``sys.setswitchinterval`` value (seconds) applied while the session lives:
            the audio callback is Python and needs the GIL each block; numpy releases and re-takes it inside the
            mixer, and a busy thread holds it up to this long before handing it back (Python's default: 5 ms).
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
        gil_switch_interval: float | None = 0.001,
        worker_process: bool = True,
        compute_device: str | None = None,
    ) -> None:
        self.worker_process = worker_process
        self._saved_switch_interval = sys.getswitchinterval()
        if gil_switch_interval is not None:
            sys.setswitchinterval(gil_switch_interval)
        self.model_name = model
        self.worker_threads = worker_threads or default_worker_threads()
        self.cache = cache or StemCache()
        self.output = AudioOutput(self._render, latency=latency, blocksize=blocksize)
        self.mixer: Mixer | None = None
        self.stems: list[str] = []
        self.samplerate = 0  #: output rate (frames/s) of the mixer
        self.model_samplerate = 0
        self.duration_seconds = 0.0
        self.title = ""
        self._message = ""
        self._device = device
        self._master_db = 0.0
        self._reset_controls()
        self.compute_device = compute_device
        self._references: dict[str, np.ndarray] | None = None
        self._opener: threading.Thread | None = None
        self._generation = 0
        self._clock = SilentClock(self._render, lambda: self.samplerate or 44100,
                                  lambda: self.mixer.n_out_channels if self.mixer is not None else 2)
        self._mix_model_rate: np.ndarray | None = None
        self._entry: StemEntry | None = None
        self._worker: StreamingSeparator | None = None
        self._resampler: RegionResampler | None = None
        self._ready: np.ndarray | None = None
        self._model: ResolvedModel | None = None
        self._model_key: str | None = None
        self.separation_model: str | None = None  #: the model separating the open song (None: none)
        self._region_samples = DEFAULT_REGION_SAMPLES
        self._lock = threading.RLock()  # control side only; the callback never takes it
        self._closed = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="shotoku-playback-monitor", daemon=True)
        self._monitor.start()
        self._want_play = False
        if open_output:
            self.select_device(device)

    # ------------------------------------------------------------------ output
    def _render(self, out: np.ndarray) -> None:  # audio thread
        mixer = self.mixer
        if mixer is None:
            out.fill(0.0)
        else:
            mixer.render(out)

    def select_device(
        self, device: int | str | None = None, samplerate: int | None = None, latency: str | None = None
    ) -> bool:
        """(Re)open the audio output on ``device``; playback resumes where it was. False (and :attr:`message`) on failure.

        ``device``: an index, a device's name (an exact name wins over names that merely contain it) or a name
        fragment, or None for the system default. ``latency``: "robust" or "low" switches the preset
        (``stream.LATENCY_PRESETS``: PortAudio's latency hint and the frames per block) before reopening; None
        keeps the current one. Raises ValueError for an unknown latency name (and then changes nothing).
        """
        if latency is not None and latency not in LATENCY_PRESETS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_PRESETS)}, not {latency!r}")
        with self._lock:
            self._device = device
            position = self.position_seconds
            self.output.close()
            self._clock.stop()
            if latency is not None:
                self.output.latency_mode = latency
                self.output.blocksize = LATENCY_PRESETS[latency][1]
            preferred = samplerate or self.model_samplerate or 44100
            try:
                refresh_devices()
                if isinstance(device, str) and not device.isdigit():
                    # indices change when PortAudio re-initialises; names stay, but one may contain another
                    device = next((d.index for d in list_output_devices() if d.name.lower() == device.lower()),
                                  device)
                rate = self.output.open(device, preferred, channels=2)
            except PlaybackError as err:
                self._message = str(err)
                if not self._closed.is_set():
                    self._clock.start()
                return False
            self._message = ""
            if self.mixer is None or rate != self.samplerate or self.output.n_channels != self.mixer.n_out_channels:
                self.samplerate = rate
                self._build_mixer()
                if self._mix_model_rate is not None:
                    self._install_source()
                    self.mixer.request_seek(int(round(position * rate)))
                    self._apply_controls()
                    if self._want_play:
                        self.mixer.request_play()
            return True

    @property
    def device_spec(self) -> int | str | None:
        """The output device last asked for (:meth:`select_device`'s ``device``; None: the system default)."""
        return self._device

    @property
    def latency(self) -> str:
        """The output's latency preset: "robust" or "low"."""
        return self.output.latency_mode

    def _build_mixer(self) -> None:
        n_stems = max(1, len(self.stems))
        mixer = Mixer(n_stems, self.output.n_channels or 2, max_block=8192, samplerate=self.samplerate or 44100)
        self.mixer = mixer

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
        if isinstance(source, str | Path):
            from engine.audio import load_audio

            rate = int(resolved.model.samplerate) if resolved is not None else 44100
            source_rate = rate
            samples, self.title = load_audio(source, samplerate=rate, n_channels=2).samples, Path(source).name
        else:
            source_rate = int(source.samplerate)
            rate = int(resolved.model.samplerate) if resolved is not None else source_rate
            samples = np.asarray(source.samples, dtype=np.float32)
            if source_rate != rate:
                samples = soxr.resample(samples.T, source_rate, rate, quality="HQ").T
            self.title = str(getattr(source, "path", None) or "audio")
        if samples.ndim != 2 or samples.shape[0] not in (1, 2) or samples.shape[1] == 0:
            raise ShotokuError(f"{self.title}: expected (n_channels, n_samples) audio, got {samples.shape}")
        if samples.shape[0] == 1:
            samples = np.repeat(samples, 2, axis=0)
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if references is not None and source_rate != rate:
            references = {k: soxr.resample(np.asarray(v, np.float32).T, source_rate, rate, "HQ").T
                          for k, v in references.items()}
        model_in = self._model_input(resolved, samples, references)
        with self._lock:
            self._mix_model_rate = samples
            self._references = references
            self.model_samplerate = rate
            self.duration_seconds = samples.shape[1] / rate
            self._set_stems(list(resolved.model.sources) if resolved is not None else list(STEM_NAMES))
            self._message = "" if resolved is not None else NO_MODEL_MESSAGE
            self._region_samples = region_samples
            self._entry = None
            self._install_source()
            self._apply_controls()
            if play:
                self.play()
            if resolved is not None:
                self._launch(resolved, samples, model_in)

    def _install_source(self, swap: bool = False) -> None:
        """Give the mixer the current song at the output rate (stems as far as they are ready).

        ``swap``: the same song with more data (stems): keep position and transport (see ``Mixer.swap_source``).
        """
        mix = self._mix_model_rate
        assert mix is not None and self.mixer is not None
        if self._resampler is not None:
            self._resampler.close()
            self._resampler = None
        if self.samplerate == self.model_samplerate:
            mixture = mix
            stems = self._entry.stems if self._entry is not None else None
            region = self._region_samples
            ready = self._worker.ready.copy() if self._worker is not None else None
        else:
            mixture = np.ascontiguousarray(soxr.resample(mix.T, self.model_samplerate, self.samplerate, "HQ").T)
            stems = ready = None
            region = self._region_samples
            if self._entry is not None:
                self._resampler = RegionResampler(self._entry.stems, region, self.model_samplerate, self.samplerate)
                stems, ready, region = self._resampler.stems, self._resampler.ready, self._resampler.region_frames
                if self._worker is not None:
                    for k in np.flatnonzero(self._worker.ready):
                        self._resampler.region_ready(int(k))
                mixture = mixture[:, : stems.shape[-1]] if mixture.shape[1] >= stems.shape[-1] else np.pad(
                    mixture, ((0, 0), (0, stems.shape[-1] - mixture.shape[1])))
        self._ready = ready
        source = MixerSource(mixture, stems, ready, region)
        if swap and self.mixer.source is not None and self.mixer.source.n_frames == source.n_frames:
            self.mixer.swap_source(source)
        else:
            self.mixer.set_source(source)

    def close_song(self) -> None:
        """Stop playback, stop the worker and release the song (the stem cache keeps what was separated)."""
        with self._lock:
            self._want_play = False
            if self.mixer is not None:
                self.mixer.set_source(None)
            worker, self._worker = self._worker, None
            entry, self._entry = self._entry, None
            self._mix_model_rate = None
            self._references = None
            self._ready = None
            self.separation_model = None
            opener, self._opener = self._opener, None
        if opener is not None:
            opener.join()  # it stops any worker it was replacing, and starts none for a closed song
        self._stop_worker(worker, entry)
        if self._resampler is not None:
            self._resampler.close()
            self._resampler = None

    def close(self) -> None:
        """Close the song, the output and the monitor thread (joins every thread this session started)."""
        self._closed.set()
        self.close_song()
        self._clock.stop()
        self.output.close()
        self._monitor.join(2.0)
        sys.setswitchinterval(self._saved_switch_interval)

    # ------------------------------------------------------------------ transport
    def play_silently(self) -> None:
        """Close the audio output and play on the silent clock (no device; transport and meters still run)."""
        with self._lock:
            self.output.close()
            self._message = "audio output disabled"
            if not self._closed.is_set():
                self._clock.start()

    @property
    def playing(self) -> bool:
        """True while the transport runs (with or without an audio output)."""
        return bool(self.mixer is not None and self.mixer.playing)

    def play(self) -> None:
        self._want_play = True
        if self.mixer is not None and self.mixer.source is not None:
            if self.mixer.at_end:
                self.mixer.request_seek(self.mixer.loop[0] if self.mixer.loop else 0)
            self.mixer.request_play()

    def pause(self) -> None:
        self._want_play = False
        if self.mixer is not None:
            self.mixer.request_pause()

    def stop(self) -> None:
        """Pause and go back to the start (of the loop, if one is set)."""
        self.pause()
        if self.mixer is not None:
            loop = self.mixer.loop
            self.mixer.request_seek(loop[0] if loop else 0)

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` (sample-accurate, faded); separation work moves there too."""
        if self.mixer is None or self.samplerate == 0:
            return
        self.mixer.request_seek(int(round(max(0.0, seconds) * self.samplerate)))
        worker = self._worker
        if worker is not None:
            worker.prioritise(int(round(max(0.0, seconds) * self.model_samplerate)))

    def set_loop(self, start_seconds: float | None, stop_seconds: float | None) -> None:
        """Loop the A-B region ``[start, stop)`` in seconds; None clears the loop."""
        if self.mixer is None:
            return
        if start_seconds is None or stop_seconds is None:
            self.mixer.set_loop(None, None)
        else:
            self.mixer.set_loop(int(round(start_seconds * self.samplerate)), int(round(stop_seconds * self.samplerate)))

    # ------------------------------------------------------------------ what the GUI polls
    def _position_frames(self) -> int:
        mixer = self.mixer
        if mixer is None:
            return 0
        pending = mixer.seek_pending
        return pending if pending is not None else mixer.position

    @property
    def position_seconds(self) -> float:
        """Play position (a pending seek's target while it fades)."""
        return self._position_frames() / self.samplerate if self.samplerate else 0.0

    @property
    def state(self) -> SessionState:
        if self.output.state == OutputState.DEVICE_LOST:
            return SessionState.DEVICE_LOST
        if self.output.state != OutputState.RUNNING:
            return SessionState.NO_OUTPUT
        if self.mixer is None or self.mixer.source is None:
            return SessionState.EMPTY
        if self.mixer.playing:
            return SessionState.PLAYING
        return SessionState.PAUSED if self._position_frames() > 0 and not self.mixer.at_end else SessionState.STOPPED

    @property
    def message(self) -> str:
        """The last error or notice, one line ("" when all is well): output problems first."""
        if self._message:
            return self._message
        return self.output.message if self.output.state != OutputState.RUNNING else ""

    @property
    def region_seconds(self) -> float:
        """Length of one region of :attr:`region_ready`, in seconds."""
        src = self.mixer.source if self.mixer is not None else None
        return src.region_frames / self.samplerate if src is not None and self.samplerate else 0.0

    @property
    def region_ready(self) -> np.ndarray:
        """``(n_regions,)`` bool copy: True where the separated stems of that region are playing-ready."""
        ready = self._ready if self._resampler is None else self._resampler.ready
        return ready.astype(bool) if ready is not None else np.zeros(0, dtype=bool)

    @property
    def separated_fraction(self) -> float:
        ready = self.region_ready
        return float(ready.mean()) if ready.size else 0.0

    @property
    def levels(self) -> dict[str, float]:
        """Per-stem peak (linear, after the fader) of the last block."""
        if self.mixer is None:
            return {}
        return {s: float(v) for s, v in zip(self.stems, self.mixer.levels, strict=False)}

    @property
    def output_level(self) -> float:
        return float(self.mixer.out_level) if self.mixer is not None else 0.0

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
                mixer, worker = self.mixer, self._worker
                if mixer is not None and mixer.at_end and self._want_play and mixer.loop is None:
                    self._want_play = False
                if worker is not None and mixer is not None and self.samplerate and mixer.playing:
                    self._keep_worker_ahead(worker, mixer)
            except Exception:  # the monitor must survive anything
                log.exception("playback monitor")
                time.sleep(0.5)

