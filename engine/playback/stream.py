"""The audio output: a sounddevice ``OutputStream`` around a render function, with clear states instead of crashes.

PortAudio missing, no output device, a device that refuses the format, or one that vanishes mid-song all end in
a :class:`OutputState` and a one-line :attr:`AudioOutput.message`; nothing here raises into the GUI except
:meth:`AudioOutput.open`, which raises :class:`~engine.errors.PlaybackError` with the same message.
"""

from __future__ import annotations

import atexit
import enum
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from engine.errors import PlaybackError

log = logging.getLogger(__name__)

#: ``name -> (PortAudio latency hint, frames per block)``. "robust" survives a busy machine; "low" answers faster.
LATENCY_PRESETS: dict[str, tuple[str, int]] = {"low": ("low", 256), "robust": ("high", 1024)}
#: Rates tried, after the preferred one and the device's default, when negotiating.
COMMON_RATES = (48000, 44100, 96000, 88200, 32000, 22050)

#: Seconds to wait for PortAudio to re-initialise before declaring it stuck.
REINIT_TIMEOUT = 5.0

_backend: ModuleType | None = None
_backend_error: str | None = None


class OutputState(enum.StrEnum):
    """Where the audio output stands."""

    NO_BACKEND = "no-backend"  #: PortAudio could not be loaded
    CLOSED = "closed"  #: no stream open (yet)
    RUNNING = "running"  #: the stream runs and calls back
    DEVICE_LOST = "device-lost"  #: the stream stopped on its own (device unplugged, server gone)
    ERROR = "error"  #: opening failed (no device, unsupported format); see the message


def backend() -> ModuleType | None:
    """The ``sounddevice`` module, or None when PortAudio cannot be loaded (see :func:`backend_error`)."""
    global _backend, _backend_error
    if _backend is None and _backend_error is None:
        try:
            import sounddevice

            _backend = sounddevice
        except (OSError, ImportError) as err:
            _backend_error = (
                f"audio output unavailable: PortAudio could not be loaded ({err}); "
                "install it (Debian/Ubuntu: apt install libportaudio2)"
            )
    return _backend


def backend_error() -> str | None:
    """Why :func:`backend` is None, as a one-line message."""
    backend()
    return _backend_error


@dataclass(frozen=True)
class DeviceInfo:
    """One output device as PortAudio lists it."""

    index: int
    name: str
    hostapi: str
    max_output_channels: int
    default_samplerate: int
    is_default: bool


def jack_server_running() -> bool | None:
    """True/False whether a JACK server answers (``jack_wait -c``); None when that tool is not installed."""
    tool = shutil.which("jack_wait")
    if tool is None:
        return None
    try:
        result = subprocess.run([tool, "-c"], capture_output=True, timeout=5, text=True)
        return result.stdout.strip().splitlines()[-1:] == ["running"]  # it prints "running" or "not running"
    except (OSError, subprocess.SubprocessError):
        return None


_used_jack = False


def refresh_devices() -> None:
    """Re-initialise PortAudio so devices (or a JACK server) that appeared since start-up are seen.

    Only call it while no stream of ours is open. PortAudio's JACK back end aborts the process when it is
    re-initialised after the JACK server it used has gone (an assertion in ``pa_jack.c``), so when we used JACK
    and no JACK server answers now, this raises :class:`PlaybackError` instead of touching PortAudio.
    """
    sd = backend()
    if sd is None:
        return
    if _used_jack and jack_server_running() is False:
        _skip_portaudio_exit_handler(sd)
        raise PlaybackError("the JACK server is not running: start it, then choose the output device again")

    def reinit() -> None:
        # sounddevice has no public call for this. Without it PortAudio keeps the device list it made when it
        # first initialised: tests/engine/test_playback_jack.py::
        # test_a_jack_server_started_after_start_up_is_found_by_select_device (a JACK server started later is
        # never found) and tests/app/test_audio_output.py::test_jack_server_dies_mid_song (reconnecting to a
        # restarted JACK server fails: "Insufficient memory [PaErrorCode -9992]", then the process hangs at exit).
        try:
            sd._terminate()
        except Exception:  # already terminated
            pass
        sd._initialize()

    worker = threading.Thread(target=reinit, name="shotoku-portaudio-reinit", daemon=True)
    worker.start()
    worker.join(REINIT_TIMEOUT)
    if worker.is_alive():  # stuck inside PortAudio (seen after a JACK server died under an open stream)
        global _backend, _backend_error
        _skip_portaudio_exit_handler(sd)
        _backend = None
        _backend_error = "audio output unavailable: PortAudio did not restart after the device vanished; restart Shotoku"
        raise PlaybackError(_backend_error)
    atexit.unregister(sd._exit_handler)
    atexit.register(sd._exit_handler)


def _skip_portaudio_exit_handler(sd: ModuleType) -> None:
    """Pa_Terminate hangs or aborts once the JACK server we used is gone: do not run it at interpreter exit."""
    atexit.unregister(sd._exit_handler)


def list_output_devices() -> list[DeviceInfo]:
    """Every device with output channels (empty when PortAudio is missing)."""
    sd = backend()
    if sd is None:
        return []
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_out = sd.default.device[1]
    except Exception as err:
        log.warning("could not list audio devices: %s", err)
        return []
    result = []
    for index, dev in enumerate(devices):
        if dev["max_output_channels"] > 0:
            result.append(
                DeviceInfo(
                    index, dev["name"], hostapis[dev["hostapi"]]["name"], int(dev["max_output_channels"]),
                    int(dev["default_samplerate"]), index == default_out,
                )
            )
    return result


def find_device(spec: int | str | None) -> DeviceInfo | None:
    """The output device ``spec`` names: an index, a (case-insensitive) name fragment, or None for the default."""
    devices = list_output_devices()
    if not devices:
        return None
    if spec is None or spec == "":
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return next((d for d in devices if d.index == int(spec)), None)
    matches = [d for d in devices if spec.lower() in d.name.lower()]
    return matches[0] if matches else None


class AudioOutput:
    """A float32 output stream that calls ``render(out)`` with ``out`` ``(n_frames, n_channels)`` each block.

    Counters (read from any thread): :attr:`underruns` (PortAudio output underflows), :attr:`callbacks`,
    :attr:`frames`. State: :attr:`state` and :attr:`message`. Call :meth:`check` from a timer to notice a device
    that stopped calling back.
    """

    def __init__(self, render: Callable[[np.ndarray], None], latency: str = "robust", blocksize: int | None = None) -> None:
        if latency not in LATENCY_PRESETS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_PRESETS)}")
        self._render = render
        self.latency_mode = latency
        self.blocksize = blocksize if blocksize is not None else LATENCY_PRESETS[latency][1]
        self.state = OutputState.CLOSED if backend() is not None else OutputState.NO_BACKEND
        self.message = "" if backend() is not None else (backend_error() or "")
        self.device: DeviceInfo | None = None
        self.samplerate = 0
        self.n_channels = 0
        self.output_latency = 0.0  #: seconds PortAudio reports from callback to the DAC
        self.underruns = 0
        self.callbacks = 0
        self.frames = 0
        self._stream = None
        self._lost_streams: list = []
        self._closing = False
        self._last_seen = (0, 0.0)

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:  # real-time thread
        if status.output_underflow:
            self.underruns += 1
        self.callbacks += 1
        self.frames += frames
        self._render(outdata)

    def _finished(self) -> None:  # PortAudio thread, when the stream stops for any reason
        if not self._closing and self.state == OutputState.RUNNING:
            self.state = OutputState.DEVICE_LOST
            name = self.device.name if self.device else "the output device"
            self.message = f"audio output lost: {name} stopped; choose an output device to resume"

    def negotiate_samplerate(self, device: DeviceInfo, preferred: int, channels: int) -> int:
        """The first rate among ``preferred``, the device default and :data:`COMMON_RATES` the device accepts."""
        sd = backend()
        assert sd is not None
        for rate in dict.fromkeys((preferred, device.default_samplerate, *COMMON_RATES)):
            try:
                sd.check_output_settings(device=device.index, channels=channels, dtype="float32", samplerate=rate)
                return int(rate)
            except Exception:
                continue
        raise PlaybackError(f"{device.name}: accepts none of the sample rates tried ({preferred} Hz and common rates)")

    def open(self, device: int | str | None = None, samplerate: int = 44100, channels: int = 2) -> int:
        """Open and start the stream on ``device`` (see :func:`find_device`); returns the rate it runs at.

        Raises :class:`PlaybackError` (and sets the state to ERROR or NO_BACKEND) when it cannot.
        """
        self.close()
        sd = backend()
        if sd is None:
            self.state, self.message = OutputState.NO_BACKEND, backend_error() or "PortAudio missing"
            raise PlaybackError(self.message)
        info = find_device(device)
        if info is None:
            what = "no audio output device found" if device in (None, "") else f"no output device matches {device!r}"
            self._fail(f"{what}; connect one or choose another output")
        assert info is not None
        channels = max(1, min(channels, info.max_output_channels))
        try:
            rate = self.negotiate_samplerate(info, samplerate, channels)
            self._closing = False
            self.state = OutputState.RUNNING  # before start(): the first callback may come at once
            stream = sd.OutputStream(
                samplerate=rate, blocksize=self.blocksize, device=info.index, channels=channels, dtype="float32",
                latency=LATENCY_PRESETS[self.latency_mode][0], callback=self._callback,
                finished_callback=self._finished,
            )
            stream.start()
        except PlaybackError as err:
            self._fail(str(err))
        except Exception as err:
            self._fail(f"{info.name}: could not open the audio output ({err})")
        global _used_jack
        _used_jack = _used_jack or "jack" in info.hostapi.lower()
        self._stream = stream
        self.device, self.samplerate, self.n_channels = info, rate, channels
        self.output_latency = float(stream.latency)
        self.message = ""
        self._last_seen = (self.callbacks, time.monotonic())
        log.info("audio output: %s at %d Hz, %d frames, %.1f ms latency", info.name, rate, self.blocksize,
                 1000 * self.output_latency)
        return rate

    def _fail(self, message: str) -> None:
        self.state, self.message = OutputState.ERROR, message
        raise PlaybackError(message)

    def check(self, stall_seconds: float = 2.0) -> OutputState:
        """Update :attr:`state` from the stream: a running stream that stopped calling back is DEVICE_LOST."""
        stream = self._stream
        if self.state == OutputState.RUNNING and stream is not None:
            now = time.monotonic()
            count, since = self._last_seen
            if self.callbacks != count:
                self._last_seen = (self.callbacks, now)
            elif now - since > stall_seconds or not stream.active:
                self._finished()
        return self.state

    def close(self) -> None:
        """Stop and close the stream (safe to call in any state, also after the device vanished)."""
        stream, self._stream = self._stream, None
        if stream is not None and self.state == OutputState.DEVICE_LOST:
            # Closing a stream whose device (or JACK server) vanished can abort inside PortAudio: keep the
            # object alive and let PortAudio's next re-initialisation dispose of it.
            self._lost_streams.append(stream)
            sd = backend()
            if sd is not None and _used_jack and jack_server_running() is False:
                _skip_portaudio_exit_handler(sd)
        elif stream is not None:
            self._closing = True
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception as err:  # a lost device may refuse even this
                log.info("closing the audio output: %s", err)
        if self.state in (OutputState.RUNNING, OutputState.DEVICE_LOST):
            self.state = OutputState.CLOSED
