"""A thin adapter between the window and the engine's real-time mixer (:mod:`engine.playback.mixer`).

It opens the engine's output stream (:class:`engine.playback.stream.AudioOutput`) whose callback is
:meth:`Mixer.render`. With no PortAudio or no output device it falls back to a *silent clock*: a thread that renders blocks at the real-time rate and drops them, so the
transport, playhead and meters behave exactly as with a sound card, and :attr:`Playback.device_state` says why
nothing is heard. Swap this class for the engine's playback session once that exists: the window only uses the
methods below.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from engine.playback.mixer import Mixer, MixerSource

log = logging.getLogger(__name__)

BLOCK_FRAMES = 1024


class Playback:
    """Transport and mixer controls for one song at a time.

    Args:
        n_stems: stems the mixer mixes (STEM_NAMES order).
        samplerate: output rate (songs are loaded at this rate).
        use_device: False skips sounddevice entirely (tests) and runs the silent clock.
    """

    def __init__(self, n_stems: int, samplerate: int = 44100, use_device: bool = True) -> None:
        self.samplerate = samplerate
        self.mixer = Mixer(n_stems, n_out_channels=2, max_block=8192, samplerate=samplerate)
        self.device_state = "no audio output"
        self.has_device = False
        self._stream = None
        self._clock: threading.Thread | None = None
        self._stop = threading.Event()
        self._n_frames = 0
        self._open(use_device)

    # -- output ---------------------------------------------------------------------------------------------------
    def _open(self, use_device: bool) -> None:
        reason = "audio output disabled"
        if use_device:
            from engine.errors import PlaybackError
            from engine.playback.stream import AudioOutput

            output = AudioOutput(self.mixer.render)
            try:
                rate = output.open(None, self.samplerate, channels=2)
            except PlaybackError as err:
                reason = str(err)
            else:
                if rate == self.samplerate and output.n_channels == 2:
                    self._stream = output
                    self.has_device = True
                    name = output.device.name if output.device else "default output"
                    self.device_state = f"Audio: {name}"
                    return
                output.close()
                reason = f"the output runs at {rate} Hz / {output.n_channels} channels, not {self.samplerate} Hz stereo"
        self.device_state = f"No audio output: {reason} (playing silently)"
        log.warning(self.device_state)
        self._clock = threading.Thread(target=self._silent_clock, name="shotoku-silent-clock", daemon=True)
        self._clock.start()

    def check_output(self) -> str:
        """Poll the output (from a timer); returns :attr:`device_state`, updated if the device was lost."""
        if self._stream is not None:
            from engine.playback.stream import OutputState

            if self._stream.check() == OutputState.DEVICE_LOST:
                self.has_device = False
                self.device_state = f"No audio output: {self._stream.message}"
        return self.device_state

    def underruns(self) -> int:
        return int(self._stream.underruns) if self._stream is not None else 0

    def _silent_clock(self) -> None:
        out = np.zeros((BLOCK_FRAMES, 2), dtype=np.float32)
        period = BLOCK_FRAMES / self.samplerate
        deadline = time.monotonic()
        while not self._stop.is_set():
            self.mixer.render(out)
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                deadline = time.monotonic()

    def close(self) -> None:
        """Stop the stream or the silent clock and join it."""
        self.mixer.request_pause()
        self._stop.set()
        if self._clock is not None:
            self._clock.join(timeout=5)
            self._clock = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # -- song ------------------------------------------------------------------------------------------------------
    def set_song(self, mixture: np.ndarray, stems: np.ndarray, ready: np.ndarray, region_frames: int) -> None:
        """Play from a new song (stops and rewinds)."""
        self.mixer.set_source(MixerSource(mixture, stems, ready, region_frames))
        self._n_frames = int(mixture.shape[1])

    def clear(self) -> None:
        self.mixer.set_source(None)
        self._n_frames = 0

    # -- transport -------------------------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self.mixer.playing

    def play(self) -> None:
        if self._n_frames:
            if self.mixer.at_end or self.mixer.position >= self._n_frames:
                self.mixer.request_seek(0)
            self.mixer.request_play()

    def pause(self) -> None:
        self.mixer.request_pause()

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def seek(self, seconds: float) -> None:
        self.mixer.request_seek(int(max(0.0, seconds) * self.samplerate))

    def position_seconds(self) -> float:
        """The play position; a seek not yet carried out counts as done."""
        pending = self.mixer.seek_pending
        frame = pending if pending is not None else self.mixer.position
        return frame / self.samplerate

    def set_loop(self, start_seconds: float | None, stop_seconds: float | None) -> None:
        if start_seconds is None or stop_seconds is None:
            self.mixer.set_loop(None, None)
            return
        self.mixer.set_loop(int(start_seconds * self.samplerate), int(stop_seconds * self.samplerate))

    # -- mixing ----------------------------------------------------------------------------------------------------
    def set_gains(self, gains: np.ndarray, master: float) -> None:
        """``gains`` ``(n_stems, 2)`` linear (mute, solo and pan resolved); ``master`` linear."""
        self.mixer.set_stem_gains(gains)
        self.mixer.master_target = float(master)

    def stem_gains(self) -> np.ndarray:
        return self.mixer.target_gain.copy()

    def levels(self) -> tuple[np.ndarray, float]:
        """Per-stem peaks of the last block (after gain) and the output peak."""
        return self.mixer.levels.copy(), float(self.mixer.out_level)

    def separated_weight(self) -> float:
        return float(self.mixer.separated_weight)
