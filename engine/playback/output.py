"""``OutputPath``: where the mixer's blocks go, the audio output or, without one, a silent clock (no Qt).

Opening a device re-initialises PortAudio first (so a device or JACK server that appeared since start-up is seen),
resolves a device's name to its index, negotiates the rate, and on failure starts the
:class:`~engine.playback.silent.SilentClock` so the transport and meters still run. One of the two drives the
render function at any time, never both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.errors import PlaybackError
from engine.playback.silent import SilentClock
from engine.playback.stream import (
    LATENCY_PRESETS,
    AudioOutput,
    OutputState,
    list_output_devices,
    refresh_devices,
)


class OutputPath:
    """The audio output (:attr:`stream`) and the silent clock (:attr:`clock`) around one render function.

    Args:
        render: fills ``out`` ``(n_frames, n_channels)`` float32 with the next block (the audio thread calls it).
        samplerate: the silent clock's rate (read each block).
        n_channels: the silent clock's channel count (read each block).
        latency: "robust" or "low" (``stream.LATENCY_PRESETS``).
        blocksize: frames per block, overriding the latency preset.
    """

    def __init__(
        self,
        render: Callable[[np.ndarray], None],
        samplerate: Callable[[], int],
        n_channels: Callable[[], int],
        latency: str = "robust",
        blocksize: int | None = None,
    ) -> None:
        self.stream = AudioOutput(render, latency=latency, blocksize=blocksize)
        self.clock = SilentClock(render, samplerate, n_channels)
        self.device_spec: int | str | None = None  #: the device last asked for (None: the system default)
        self._closed = False

    def open(self, device: int | str | None, preferred_rate: int, latency: str | None = None) -> int:
        """Close whatever runs, then open ``device`` (stereo, ``preferred_rate`` if it takes it); returns the rate.

        ``device``: an index, a device's name (an exact name wins over names that merely contain it) or a name
        fragment, or None for the system default. ``latency``: "robust" or "low" switches the preset first; None
        keeps it. Raises :class:`~engine.errors.PlaybackError` when no output opens (the silent clock then
        runs) and ValueError for an unknown latency name (then nothing changes).
        """
        if latency is not None and latency not in LATENCY_PRESETS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_PRESETS)}, not {latency!r}")
        self.device_spec = device
        self.stream.close()
        self.clock.stop()
        if latency is not None:
            self.stream.latency_mode = latency
            self.stream.blocksize = LATENCY_PRESETS[latency][1]
        try:
            refresh_devices()
            if isinstance(device, str) and not device.isdigit():
                # indices change when PortAudio re-initialises; names stay, but one may contain another
                device = next((d.index for d in list_output_devices() if d.name.lower() == device.lower()), device)
            return self.stream.open(device, preferred_rate, channels=2)
        except PlaybackError:
            self.play_silently()
            raise

    def play_silently(self) -> None:
        """Close the audio output and let the silent clock render (unless closed)."""
        self.stream.close()
        if not self._closed:
            self.clock.start()

    @property
    def n_channels(self) -> int:
        """Channels of the open output (0 when none is open)."""
        return self.stream.n_channels

    @property
    def state(self) -> OutputState:
        return self.stream.state

    @property
    def message(self) -> str:
        """Why the output does not run ("" while it runs)."""
        return self.stream.message if self.stream.state != OutputState.RUNNING else ""

    def close(self) -> None:
        """Stop the clock and close the output for good (joins the clock's thread)."""
        self._closed = True
        self.clock.stop()
        self.stream.close()
