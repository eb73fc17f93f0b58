"""The app's controller: owns the playback session, its poller, the settings and the model/device choice.

The window is a view: it connects to the signals below and forwards what the musician asks for to the methods.
Nothing here creates a widget, so the controller runs (and is tested) without a window. One display timer (~30 ms,
:attr:`ticked`) polls the session (:class:`app.playback.SessionPoller`) and tells the view to refresh, as
Friture's analyzer timer fans out to its widgets.

Playback and separation are the engine's :class:`~engine.playback.session.PlaybackSession` (the mixture plays at
once; a child process separates from the play position into the stem store; reopening a song plays its cached
stems). Decoding, stem spectrograms and audio-output changes run in :mod:`app.workers` threads.

The console follows the model's stems (:attr:`AppController.stem_names`: the engine's stems once a song is open,
else the chosen card's ``sources``): when another model has other stems (a spatial model's left/centre/right, a
vocals + accompaniment model) :attr:`~AppController.stems_changed` tells the view to rebuild its lanes and strips,
and the mix keeps the strips of the names both have (:func:`fit_mix`; a session saved with other stems too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from app.analysis_worker import AnalysisWorker
from app.model_picker import ModelChoice, model_choices, pick_model
from app.output import SYSTEM_DEFAULT, OutputWorker, startup_output
from app.playback import SessionPoller
from app.session_file import SESSION_SUFFIX, Session, load_session, save_session
from app.settings import AppSettings
from app.song import STEM_FILE_MODEL, ExportSource, Song, export_folder
from app.spectrum import SpectrogramGrid, format_time
from app.workers import LoadResult, LoadWorker, WorkerHost
from engine import STEM_NAMES
from engine.audio import Audio
from engine.errors import ShotokuError
from engine.models.catalogue import ModelCard
from engine.paths import demo_song
from engine.playback.mix import MixState, StripState
from engine.playback.session import PlaybackSession
from engine.playback.stream import LATENCY_PRESETS, DeviceInfo
from engine.separation.device import available_devices, describe_device, select_device

log = logging.getLogger(__name__)

TICK_MS = 30
SEEK_STEP_SECONDS = 5.0
#: A loop shorter than this is a click, not a loop: it clears the loop instead.
MIN_LOOP_SECONDS = 0.05
NO_MODEL_STATUS = "No trained model installed yet: playing the original mix (see Models…)"


def fit_mix(state: MixState, stems: list[str] | tuple[str, ...]) -> MixState:
    """``state`` over ``stems`` (in that order): the strips of names it has are kept, the others start at 0 dB,
    strips of other stems are dropped; the master is kept."""
    fitted = MixState.default(stems)
    fitted.master_db = state.master_db
    for name in stems:
        if name in state.strips:
            fitted.strips[name] = StripState(**vars(state.strips[name]))
    return fitted


@dataclass
class OpenedSong:
    """A song ready to play: its spectrogram grid, the mixture's dB columns ``(n_bins, n_frames)``, and the
    ``.shotoku`` session it was opened from (None for a plain song)."""

    song: Song
    grid: SpectrogramGrid
    mixture_db: np.ndarray
    session: Session | None = None


class AppController(QObject):
    """The app's state and the musician's intents, in signals and methods (GUI thread).

    Args:
        settings: what the app remembers between runs.
        use_audio_device: False plays silently (a clock without an audio output; tests).
        show_test_models: list the registry's hidden test cards too.
    """

    song_loading = Signal(str)  #: what is being decoded (status text)
    song_opened = Signal(object)  #: OpenedSong
    song_failed = Signal(str)  #: why the song could not be opened
    models_changed = Signal(object, object)  #: [ModelChoice, ...], the chosen model's name or None
    model_changed = Signal(str)  #: the model the musician chose
    stems_changed = Signal(object)  #: [stem name, ...]: the model's stems, which the console now shows
    device_changed = Signal(str, str, str)  #: compute device ("auto", "cpu", ...), description ("" if unusable), why
    separation_started = Signal(str)  #: a new separation began with this model: clear the stem lanes
    separation_progress = Signal(float)  #: fraction of the song separated, 0..1
    columns_ready = Signal(int, object)  #: first frame, {stem: dB columns (n_bins, n)} of the current separation
    separation_finished = Signal(str)  #: every region separated and drawn; the model's name
    separation_failed = Signal(str)  #: the separation stopped with this reason
    separation_unavailable = Signal(str)  #: the song plays unseparated (no model); a status line
    output_changed = Signal(str, str)  #: SessionState value, message
    output_busy_changed = Signal(bool)  #: an output (re)opening started (True) or ended (False)
    mix_changed = Signal(object)  #: the console's MixState, just handed to the engine
    loop_changed = Signal(object)  #: (start, stop) seconds, or None when cleared
    position_changed = Signal(float)  #: the play position jumped (seek), seconds
    tempo_changed = Signal(float, float)  #: playback tempo (ratio) and transposition (semitones) now playing
    analysis_changed = Signal(object)  #: the open song's engine.analysis.SongAnalysis (None: not known yet)
    ticked = Signal()  #: the display timer fired (after the session was polled): refresh position and meters
    error = Signal(str, str)  #: title, a one-line message
    status = Signal(str, int)  #: a status line, how long to show it (ms, 0: until the next)

    def __init__(self, settings: AppSettings, use_audio_device: bool = True, show_test_models: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.show_test_models = show_test_models
        self.host = WorkerHost(self)
        self.device = settings.device()
        self.device_description = ""  #: the compute device in words ("" until known, or when unusable)
        output, self.startup_note = startup_output(settings) if use_audio_device else (None, "")
        self.playback = PlaybackSession(device=output, latency=settings.audio_latency(), open_output=use_audio_device,
                                        compute_device=self._compute_device())
        if not use_audio_device:
            self.playback.play_silently()
        self.poller = SessionPoller(self.playback, self.host, self)
        self.song: Song | None = None
        self.grid: SpectrogramGrid | None = None
        self.load_worker: LoadWorker | None = None
        self.analysis_worker: AnalysisWorker | None = None
        self.analysis = None  #: the open song's engine.analysis.SongAnalysis, once detected
        self.output_worker: OutputWorker | None = None
        self.model_name: str | None = None
        self.choices: list[ModelChoice] = []
        self.loop_seconds: tuple[float, float] | None = None
        self.stem_names: list[str] = list(STEM_NAMES)  #: the stems the console shows (the model's)
        self._mix = MixState.default(STEM_NAMES)  #: the console's mix; the engine plays it over its own stems
        self._pending_session: Session | None = None
        self._shut_down = False
        self.poller.separation_started.connect(self._on_separation_started)
        self.poller.columns_ready.connect(self.columns_ready)
        self.poller.progress.connect(self.separation_progress)
        self.poller.separated.connect(self.separation_finished)
        self.poller.failed.connect(self.separation_failed)
        self.poller.output_changed.connect(self.output_changed)
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Tell the (now connected) view the current state, list the models, start the display timer."""
        self._emit_output_state()
        self._emit_device()
        if self.startup_note:
            self.status.emit(self.startup_note, 20000)
        self.refresh_models()
        self._follow_stems()
        self.timer.start()

    def shutdown(self) -> bool:
        """Stop the timer, cancel and join every worker thread (at most :data:`app.workers.JOIN_SECONDS` in all),
        then close the session (its separation threads and process, the audio output; the engine bounds those
        joins). True if every thread stopped; idempotent."""
        if self._shut_down:
            return True
        self._shut_down = True
        self.timer.stop()
        if self.load_worker is not None:
            self.load_worker.cancel()
        clean = self.host.shutdown()  # first: the stem-columns and export workers read the session's stem store
        stopped = self.playback.close()  # bounded by the engine (PlaybackSession.close's CLOSE_BOUND)
        return clean and stopped is not False

    @Slot()
    def _tick(self) -> None:
        self.poller.poll()
        self.ticked.emit()

    # -- opening ---------------------------------------------------------------------------------------------------
    def open_path(self, path: str | Path) -> None:
        """Open a song or a ``.shotoku`` session."""
        if str(path).endswith(SESSION_SUFFIX):
            self.open_session(path)
        else:
            self.open_file(path)

    def open_demo(self) -> None:
        path = demo_song()
        if path.is_file():
            self.open_file(path)
        else:
            self.error.emit("Demo song missing", f"{path}: the demo song is not installed")

    def open_file(self, path: str | Path) -> None:
        """Start loading a song in the background (the current one keeps playing until it is ready)."""
        if self.load_worker is not None:
            self.load_worker.cancel()
        worker = LoadWorker(path)
        worker.progress.connect(self._on_load_progress)
        worker.succeeded.connect(self._on_loaded)
        worker.failed.connect(self._on_load_failed)
        worker.done.connect(self._load_finished)
        self.load_worker = worker
        self.host.start(worker)

    def open_session(self, path: str | Path) -> None:
        """Open a ``.shotoku`` session: its song, then its model, device, mix, position and loop."""
        try:
            session = load_session(path)  # every strip it saved: fitted to the model's stems once it plays
        except ShotokuError as err:
            self.error.emit("Cannot open the session", str(err))
            return
        self._pending_session = session
        self.open_file(session.song)

    @property
    def loading(self) -> bool:
        """A song is being decoded."""
        return self.load_worker is not None

    @Slot(float, str)
    def _on_load_progress(self, _fraction: float, text: str) -> None:
        if self.sender() is self.load_worker:
            self.song_loading.emit(text)

    @Slot()
    def _load_finished(self) -> None:
        if self.sender() is self.load_worker:
            self.load_worker = None

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        if self.sender() is not self.load_worker:
            return
        self._pending_session = None
        self.song_failed.emit(message)

    @Slot(object)
    def _on_loaded(self, result: LoadResult) -> None:
        if self.sender() is not self.load_worker:
            return  # a newer open replaced this one
        song = result.song
        self.song, self.grid = song, result.grid
        session, self._pending_session = self._pending_session, None
        if session is not None and session.device and session.device != self.device:
            self.device = session.device
            self.playback.compute_device = self._compute_device()
            self._emit_device()
        preferred = session.model if session else STEM_FILE_MODEL if song.stem_file else None
        if preferred is None and self.model_name == STEM_FILE_MODEL:
            self.model_name = None  # after a STEM file's own stems, back to the musician's model
        self.refresh_models(preferred)
        self.poller.set_grid(result.grid)
        audio = Audio(song.mixture, song.samplerate)
        play = self.settings.play_on_open()
        try:
            self.playback.open(audio, model=self.model_name, play=play and session is None,
                               references=song.references, separate=self.model_name is not None)
        except ShotokuError as err:
            self.error.emit("Cannot separate", str(err))
            self.playback.open(audio, play=play and session is None, separate=False)
        self.loop_seconds = None
        self._follow_stems()
        self._analyse(song)
        self.settings.add_recent_file(song.path)
        self.song_opened.emit(OpenedSong(song, result.grid, result.mixture_db, session))
        self.apply_mix(session.mix if session is not None else self._mix)  # new stems start from 0 dB: re-apply
        self._report_unseparated()
        if session is not None:
            self.seek(session.position_seconds)
            if session.loop_seconds:
                self.set_loop(*session.loop_seconds)
            if play:  # from the session's position, not from the start
                self.playback.play()

    # -- tempo, pitch, tempo and key -----------------------------------------------------------------------------
    @property
    def tempo(self) -> float:
        """Playback speed (ratio, 1.0 as recorded)."""
        return self.playback.tempo

    @property
    def transpose(self) -> float:
        """Transposition in semitones."""
        return self.playback.transpose

    def set_tempo(self, tempo: float) -> None:
        """Play at ``tempo`` (0.5-1.5) without changing pitch (heard within 100 ms)."""
        try:
            self.playback.set_tempo(tempo)
        except ValueError as err:
            self.error.emit("Tempo", str(err))
        self.tempo_changed.emit(self.playback.tempo, self.playback.transpose)

    def set_transpose(self, semitones: float) -> None:
        """Transpose by ``semitones`` (-12..+12) without changing tempo."""
        try:
            self.playback.set_transpose(semitones)
        except ValueError as err:
            self.error.emit("Transpose", str(err))
        self.tempo_changed.emit(self.playback.tempo, self.playback.transpose)

    def _analyse(self, song: Song) -> None:
        """Detect the song's tempo and key in the background (cached beside the stems)."""
        if self.analysis_worker is not None:
            self.analysis_worker.cancel()
        self.analysis = None
        self.analysis_changed.emit(None)
        worker = AnalysisWorker(song.mixture, song.samplerate, song)
        worker.succeeded.connect(self._on_analysed)
        worker.failed.connect(self._on_analysis_failed)
        self.analysis_worker = worker
        self.host.start(worker)

    @Slot(object)
    def _on_analysed(self, analysis: object) -> None:
        worker = self.sender()
        if worker is not self.analysis_worker or getattr(worker, "song_id", None) is not self.song:
            return
        self.analysis = analysis
        self.analysis_changed.emit(analysis)

    @Slot(str)
    def _on_analysis_failed(self, message: str) -> None:
        if self.sender() is self.analysis_worker:
            self.status.emit(f"Tempo and key not detected: {message}", 8000)

    # -- models and separation -------------------------------------------------------------------------------------
    def refresh_models(self, preferred: str | None = None) -> None:
        """Re-list the registry for the open song and pick the model to use."""
        has_refs = bool(self.song is not None and self.song.references)
        self.choices = model_choices(has_refs, include_test=self.show_test_models)
        self.model_name = pick_model(self.choices, preferred or self.model_name or self.settings.model_name())
        self.models_changed.emit(self.choices, self.model_name)

    def set_model(self, name: str) -> None:
        """Switch model: the song re-separates in the background while playback continues."""
        if name == self.model_name:
            return
        self.model_name = name
        self.settings.set_model_name(name)
        self.model_changed.emit(name)
        if self.song is None:
            self._follow_stems()
            return
        try:
            self.playback.change_model(name)
        except ShotokuError as err:
            self.error.emit("Cannot separate", str(err))
        self._follow_stems()
        self.playback.apply_mix(self._mix)  # another model's stems start from 0 dB
        self._report_unseparated()

    def model_stems(self) -> list[str]:
        """The stems the console should show: the engine's once a song is open (the model it could load), else
        the chosen card's ``sources`` (the four stems without a model)."""
        if self.song is not None and self.playback.stems:
            return list(self.playback.stems)
        card = self.current_card()
        return list(card.sources) if card is not None and card.sources else list(STEM_NAMES)

    def _follow_stems(self) -> None:
        """When the model's stems differ from the console's: fit the mix to them, tell the view (which rebuilds
        its lanes and strips), then show the fitted mix."""
        stems = self.model_stems()
        if stems == self.stem_names:
            return
        self.stem_names = stems
        self._mix = fit_mix(self._mix, stems)
        self.stems_changed.emit(list(stems))
        self.mix_changed.emit(self.mix)

    def device_choices(self) -> list[tuple[str, str]]:
        """``[(value, label), ...]`` of the compute devices, "auto" first."""
        return [("auto", "Auto (GPU if any)"), *available_devices()]

    def set_device(self, device: str) -> None:
        """Run separation on ``device`` ("auto", "cpu", "cuda:0", ...): re-separates while playback continues."""
        if device == self.device:
            return
        self.device = device
        self.settings.set_device(device)
        reason = self._emit_device()
        if reason:
            self.error.emit("Device unavailable", reason)
        try:
            self.playback.set_compute_device(self._compute_device())
        except ShotokuError as err:
            self.error.emit("Cannot separate", str(err))
        self.playback.apply_mix(self._mix)

    def _compute_device(self) -> str | None:
        return None if self.device == "auto" else self.device

    def _emit_device(self) -> str:
        """Emit :attr:`device_changed`; returns why the device is unusable ("" if it is usable)."""
        try:
            description, reason = describe_device(select_device(self._compute_device())), ""
        except ShotokuError as err:
            description, reason = "", str(err)
        self.device_description = description
        self.device_changed.emit(self.device, description, reason)
        return reason

    def current_card(self) -> ModelCard | None:
        """The card of the model in use (None: no model)."""
        return next((c.card for c in self.choices if c.card.name == self.model_name), None)

    @Slot()
    def _on_separation_started(self) -> None:
        self.separation_started.emit(self.playback.separation_model or "")

    def _report_unseparated(self) -> None:
        if self.song is not None and self.playback.separation_model is None:
            self.separation_unavailable.emit(NO_MODEL_STATUS)

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

    def unseparated_spans(self) -> list[tuple[float, float]]:
        """``[(start, stop), ...]`` seconds of the song not separated yet."""
        return self.poller.unseparated_spans()

    @property
    def keeps_previous_stems(self) -> bool:
        """After a model (or device) change: the replaced model's stems still play where the new ones are not
        ready (the engine keeps them when the stems are the same), so the view keeps drawing them."""
        return self.playback.previous_separation is not None

    def working_span(self) -> tuple[float, float] | None:
        """``(start, stop)`` seconds of the region the separation is working on now (None: none)."""
        separation = self.playback.separation
        if separation is None or self.song is None or not self.separating:
            return None
        cursor, region = separation.cursor, separation.region_samples
        ready = separation.regions_ready
        if cursor < 0 or region <= 0:
            return None
        k = cursor // region
        if k < ready.size and ready[k]:
            return None
        rate = self.playback.model_samplerate or self.song.samplerate
        return k * region / rate, min(self.song.duration_seconds, (k + 1) * region / rate)

    # -- transport and mix -----------------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.playback.playing:
            self.playback.pause()
        else:
            self.playback.play()

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` (clamped to the song)."""
        if self.song is None:
            return
        seconds = min(max(0.0, seconds), self.song.duration_seconds)
        self.playback.seek(seconds)
        self.position_changed.emit(seconds)

    def seek_by(self, delta: float) -> None:
        self.seek(self.playback.position_seconds + delta)

    def set_loop(self, start: float, stop: float) -> None:
        """Loop ``[start, stop)`` seconds; a region shorter than :data:`MIN_LOOP_SECONDS` clears the loop."""
        if stop - start < MIN_LOOP_SECONDS:
            self.clear_loop()
            return
        try:
            self.playback.set_loop(start, stop)
        except ValueError as err:
            self.status.emit(f"Loop not set: {err}", 4000)
            return
        self.loop_seconds = (start, stop)
        self.loop_changed.emit(self.loop_seconds)
        self.status.emit(f"Loop {format_time(start)} – {format_time(stop)}", 4000)

    def clear_loop(self) -> None:
        self.playback.set_loop(None, None)
        self.loop_seconds = None
        self.loop_changed.emit(None)

    @property
    def mix(self) -> MixState:
        """The console's mix (a copy); the engine plays it over the stems it has (``playback.mix``)."""
        return self._mix.copy()

    def apply_mix(self, state: MixState) -> None:
        """Play ``state`` over the model's stems (:func:`fit_mix`: a session saved with other stems keeps the
        strips of the names they share): handed to the engine in one call (it resolves mute, solo and pan; the
        export too)."""
        self._mix = fit_mix(state, self.stem_names)
        self.playback.apply_mix(self._mix)
        self.mix_changed.emit(self.mix)

    # -- audio output ----------------------------------------------------------------------------------------------
    @property
    def output_spec(self) -> str | None:
        """The output device the musician chose, by name (None: the system default)."""
        spec = self.playback.device_spec
        return str(spec) if spec not in (None, "") else None

    @property
    def output_device(self) -> DeviceInfo | None:
        """The device the output plays on now (None: none, or the default before it opened)."""
        return self.playback.output.device

    @property
    def latency(self) -> str:
        return self.playback.latency

    @property
    def output_busy(self) -> bool:
        """An output is being (re)opened; another request is refused meanwhile."""
        return self.output_worker is not None

    def choose_output(self, name: str | None) -> OutputWorker | None:
        """Open the output device called ``name`` (None: the system default) and remember it once it plays."""
        return self._start_output(name, None)

    def set_latency(self, latency: str) -> OutputWorker | None:
        """Reopen the chosen device with the "robust" or "low" preset (remembered at once)."""
        if latency not in LATENCY_PRESETS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_PRESETS)}")
        self.settings.set_audio_latency(latency)
        return self._start_output(self.output_spec, latency)

    def reconnect_output(self) -> OutputWorker | None:
        """Reopen the chosen device (PortAudio rescans first, so a device that came back is found)."""
        return self._start_output(self.output_spec, None)

    def _start_output(self, device: str | None, latency: str | None) -> OutputWorker | None:
        if self.output_worker is not None:  # one at a time
            return None
        worker = OutputWorker(self.playback, device, latency)
        worker.succeeded.connect(self._on_output_opened)
        worker.failed.connect(self._on_output_failed)
        worker.done.connect(self._on_output_done)
        self.output_worker = worker
        self.output_busy_changed.emit(True)
        self.status.emit(f"Opening the audio output ({device or SYSTEM_DEFAULT.lower()})…", 0)
        self.host.start(worker)
        return worker

    @Slot(object)
    def _on_output_opened(self, name: str) -> None:
        if self.sender() is not self.output_worker:
            return
        self.settings.set_audio_output(self.output_spec or "")
        self.status.emit(f"Audio output: {name}", 5000)
        self._emit_output_state()

    @Slot(str)
    def _on_output_failed(self, message: str) -> None:
        if self.sender() is not self.output_worker:
            return
        self._emit_output_state()
        self.error.emit("Audio output", message)

    @Slot()
    def _on_output_done(self) -> None:
        if self.sender() is self.output_worker:
            self.output_worker = None
            self.output_busy_changed.emit(False)

    def _emit_output_state(self) -> None:
        self.output_changed.emit(self.playback.state.value, self.playback.message)

    # -- sessions and export ---------------------------------------------------------------------------------------
    def current_session(self) -> Session | None:
        """What a ``.shotoku`` file would remember now (None without a song)."""
        if self.song is None:
            return None
        return Session(self.song.path, self.model_name, self.device, self.mix, self.playback.position_seconds,
                       self.loop_seconds)

    def save_session_to(self, path: str | Path) -> Path | None:
        """Write the current session to ``path`` (``.shotoku`` added); None (and :attr:`error`) if it failed."""
        session = self.current_session()
        if session is None:
            self.error.emit("Nothing to save", "open a song first")
            return None
        try:
            written = save_session(path, session)
        except ShotokuError as err:
            self.error.emit("Cannot save the session", str(err))
            return None
        self.status.emit(f"Saved session {written}", 5000)
        return written

    def export_source(self) -> ExportSource | None:
        """The stems and mix to export; None (and :attr:`error` saying why) before the separation has finished."""
        if self.song is None or self.stems is None:
            self.error.emit("Nothing to export", "open a song first")
            return None
        if not self.separation_done:
            self.error.emit("Not separated yet", "export is possible once the separation has finished "
                            f"({'no trained model is installed' if self.model_name is None else 'still running'})")
            return None
        gains, master = self.playback.mix_gains()
        return ExportSource(self.song.export_name, self.stems, list(self.playback.stems),
                            self.playback.model_samplerate, gains, master,
                            export_folder(self.song.path, self.settings.last_folder()))
