"""``PlaybackSession``: the headless remix engine the GUI and the CLI both drive (no Qt).

Opening a song plays its original mixture at once; a background worker separates it region by region from the
play position onwards (into the on-disk stem store), and each region switches to the remixable stems, with a
cross-fade, as soon as it is ready. Control methods may be called from any (non-audio) thread; the GUI polls the
read-only properties from a timer (~30 Hz): :attr:`position_seconds`, :attr:`region_ready`, :attr:`levels`,
:attr:`underruns`, :attr:`state`, :attr:`message`.
"""

from __future__ import annotations

import enum
import logging
import math
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from engine.errors import PlaybackError, ShotokuError
from engine.playback.mixer import Mixer, MixerSource, resolve_gains
from engine.playback.ratematch import RegionResampler
from engine.playback.stream import AudioOutput, OutputState, refresh_devices
from engine.separation.cache import DEFAULT_REGION_SAMPLES, StemCache, StemEntry, cache_key
from engine.separation.streaming import StreamingSeparator, default_worker_threads, torch_model_fn

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


class _CardModel:
    """What the session needs of a model (names, rate, chunk length), read from its card without the weights."""

    def __init__(self, card) -> None:
        self.card, self.name = card, card.name
        self.sources, self.samplerate, self.n_channels = list(card.sources), int(card.samplerate), card.n_channels
        self.segment_samples = int(card.segment_seconds * card.samplerate)


class PlaybackSession:
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
        self._gains_db = np.zeros(0)
        self._mutes = np.zeros(0, dtype=bool)
        self._solos = np.zeros(0, dtype=bool)
        self._pans = np.zeros(0)
        self._master_db = 0.0
        self._mix_model_rate: np.ndarray | None = None
        self._entry: StemEntry | None = None
        self._worker: StreamingSeparator | None = None
        self._resampler: RegionResampler | None = None
        self._ready: np.ndarray | None = None
        self._model = None
        self._model_key: str | None = None
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

    def select_device(self, device: int | str | None = None, samplerate: int | None = None) -> bool:
        """(Re)open the audio output on ``device``; playback resumes where it was. False (and :attr:`message`) on failure."""
        with self._lock:
            self._device = device
            position = self.position_seconds
            self.output.close()
            preferred = samplerate or self.model_samplerate or 44100
            try:
                refresh_devices()
                rate = self.output.open(device, preferred, channels=2)
            except PlaybackError as err:
                self._message = str(err)
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
    ) -> None:
        """Open a song and (by default) start playing its original mixture at once.

        Args:
            source: a file path, or an :class:`engine.audio.Audio` (``samples (n_channels, n_samples)``, ``samplerate``).
            model: a model name, a loaded model (nn.Module with ``sources``, ``samplerate``, ``segment_samples``),
                or None for the session's default.
            play: start playback immediately.
            region_samples: stem-store region length (model-rate samples).
        Raises:
            ShotokuError (AudioLoadError, ModelLoadError, ...) when the song or model cannot be loaded.
        """
        self.close_song()
        model_obj, name, sha = self._resolve_model(model)
        rate = int(model_obj.samplerate)
        if isinstance(source, str | Path):
            from engine.audio import load_audio

            audio = load_audio(source, samplerate=rate, n_channels=2)
            samples, self.title = audio.samples, Path(source).name
        else:
            samples = np.asarray(source.samples, dtype=np.float32)
            if int(source.samplerate) != rate:
                samples = soxr.resample(samples.T, int(source.samplerate), rate, quality="HQ").T
            self.title = str(getattr(source, "path", None) or "audio")
        if samples.ndim != 2 or samples.shape[0] not in (1, 2) or samples.shape[1] == 0:
            raise ShotokuError(f"{self.title}: expected (n_channels, n_samples) audio, got {samples.shape}")
        if samples.shape[0] == 1:
            samples = np.repeat(samples, 2, axis=0)
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        with self._lock:
            self._mix_model_rate = samples
            self.model_samplerate = rate
            self.duration_seconds = samples.shape[1] / rate
            if list(model_obj.sources) != self.stems or self.mixer is None:
                self.stems = list(model_obj.sources)
                self._gains_db = np.zeros(len(self.stems))
                self._mutes = np.zeros(len(self.stems), dtype=bool)
                self._solos = np.zeros(len(self.stems), dtype=bool)
                self._pans = np.zeros(len(self.stems))
                if self.samplerate == 0:
                    self.samplerate = rate
                self._build_mixer()
            self._region_samples = region_samples
            self._entry = None
            self._install_source()
            self._apply_controls()
            if play:
                self.play()
        # Everything below runs off the playback path: hashing, the cache entry, the worker.
        threading.Thread(
            target=self._start_separation, args=(model_obj, name, sha, samples), name="shotoku-open", daemon=True
        ).start()

    def _resolve_model(self, model):
        if model is None or isinstance(model, str):
            name = model or self.model_name
            if name is None:
                from engine.separation.registry import default_model_name

                name = default_model_name()
            if self._model is None or self._model_key != name:
                if self.worker_process:  # the child process loads the weights; here only the card is needed
                    from engine.separation.registry import get_card

                    self._model, self._model_key = _CardModel(get_card(name)), name
                else:
                    from engine.separation.registry import load_model

                    self._model, self._model_key = load_model(name), name
            model_obj = self._model
        else:
            model_obj = model
            name = getattr(getattr(model, "card", None), "name", None) or type(model).__name__
        card = getattr(model_obj, "card", None)
        sha = getattr(card, "weights_sha256", None)
        if sha is None and card is None and any(True for _ in getattr(model_obj, "parameters", list)()):
            # An uncarded model (tests, benchmarks): key the cache on its parameters.
            import hashlib

            digest = hashlib.sha256()
            for p in model_obj.state_dict().values():
                digest.update(p.detach().cpu().numpy().tobytes())
            sha = digest.hexdigest()
        return model_obj, name, sha

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

    def _start_separation(self, model_obj, name: str, sha: str | None, samples: np.ndarray) -> None:
        try:
            key = cache_key(samples, self.model_samplerate, name, sha)
            entry = self.cache.open(
                key, list(model_obj.sources), 2, samples.shape[1], self.model_samplerate, self._region_samples,
                info={"model": name, "title": self.title},
            )
        except (OSError, ValueError) as err:
            self._message = f"stem cache unavailable ({err}); playing the original only"
            return
        with self._lock:
            if self._mix_model_rate is not samples or self._closed.is_set():
                entry.close()
                return
            self._entry = entry
            in_child = isinstance(model_obj, _CardModel) and model_obj.name or model_obj
            worker = StreamingSeparator(
                None if self.worker_process else torch_model_fn(model_obj, self.worker_threads), samples, entry,
                int(model_obj.segment_samples), on_ready=self._on_region_ready, on_error=self._on_worker_error,
                process_model=in_child if self.worker_process else None, n_threads=self.worker_threads,
            )
            self._worker = worker
            # Swap in a source with stems (nothing ready yet); position and transport carry on, no click.
            self._install_source(swap=True)
            position = self._position_frames()
            worker.prioritise(int(position * self.model_samplerate / self.samplerate))
            worker.start()

    def _on_region_ready(self, k: int) -> None:  # worker thread
        if self._resampler is not None:
            self._resampler.region_ready(k)
        elif self._ready is not None:
            self._ready[k] = 1

    def _on_worker_error(self, message: str) -> None:  # worker thread
        self._message = message

    def close_song(self) -> None:
        """Stop playback, stop the worker and release the song (the stem cache keeps what was separated)."""
        with self._lock:
            self._want_play = False
            if self.mixer is not None:
                self.mixer.set_source(None)
            worker, self._worker = self._worker, None
            entry, self._entry = self._entry, None
            self._mix_model_rate = None
            self._ready = None
        if worker is not None:
            worker.stop()
        if entry is not None:
            entry.close()
        if self._resampler is not None:
            self._resampler.close()
            self._resampler = None

    def close(self) -> None:
        """Close the song, the output and the monitor thread (joins every thread this session started)."""
        self._closed.set()
        self.close_song()
        self.output.close()
        self._monitor.join(2.0)
        sys.setswitchinterval(self._saved_switch_interval)

    # ------------------------------------------------------------------ mixer strip controls
    def _index(self, stem: str) -> int:
        try:
            return self.stems.index(stem)
        except ValueError:
            raise ValueError(f"unknown stem {stem!r}; stems: {', '.join(self.stems)}") from None

    def _apply_controls(self) -> None:
        if self.mixer is None or len(self._gains_db) != self.mixer.n_stems:
            return
        self.mixer.set_stem_gains(resolve_gains(self._gains_db, self._mutes, self._solos, self._pans))
        self.mixer.master_target = 0.0 if math.isinf(self._master_db) and self._master_db < 0 else float(
            10 ** (self._master_db / 20))

    def set_gain_db(self, stem: str, db: float) -> None:
        """Fader of ``stem`` in dB (``-inf`` silences it). Acts on separated regions."""
        self._gains_db[self._index(stem)] = float(db)
        self._apply_controls()

    def set_mute(self, stem: str, muted: bool) -> None:
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
        return {s: float(g) for s, g in zip(self.stems, self._gains_db, strict=True)}

    # ------------------------------------------------------------------ transport
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

    @property
    def worker(self) -> StreamingSeparator | None:
        return self._worker

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

    def _keep_worker_ahead(self, worker: StreamingSeparator, mixer: Mixer) -> None:
        """If playback overtook the worker's run, move the work just ahead of the play position."""
        cursor = worker._run_cursor
        play = int(mixer.position * self.model_samplerate / self.samplerate)
        if 0 <= cursor < play:
            worker.prioritise(play + worker.entry.region_samples // 2)
