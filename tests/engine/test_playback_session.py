"""The headless remix session, driven without an audio device: the test calls the render callback itself."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch

from engine.audio import Audio
from engine.errors import PlaybackError
from engine.playback import stream as stream_module
from engine.playback.ratematch import RegionResampler
from engine.playback.session import PlaybackSession, SessionState
from engine.separation.cache import StemCache
from engine.separation.registry import build_model

SR = 44100
BLOCK = 512


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StemCache:
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path))
    return StemCache()


def tone(seconds: float = 6.0) -> Audio:
    t = np.arange(int(seconds * SR)) / SR
    left = 0.3 * np.sin(2 * np.pi * 220 * t)
    right = 0.3 * np.sin(2 * np.pi * 330 * t)
    return Audio(np.stack([left, right]).astype(np.float32), SR)


def pump(session: PlaybackSession, seconds: float, until=None) -> np.ndarray:
    """Render blocks at (faster than) real time for up to ``seconds``; returns the output ``(n, 2)``."""
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    chunks = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        session._render(out)
        chunks.append(out.copy())
        if until is not None and until():
            break
        time.sleep(0.002)
    return np.concatenate(chunks)


def test_open_plays_the_original_at_once_then_stems(cache: StemCache) -> None:
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        audio = tone()
        session.open(audio, model=build_model("identity", {"segment_seconds": 1.0}), region_samples=16384)
        assert session.stems == ["vocals", "drums", "bass", "other"]
        first = pump(session, 0.01)[:BLOCK]
        assert np.abs(first).max() > 0.0, "the first block already plays the mixture"
        session.set_gain_db("vocals", -math.inf)
        session.set_mute("drums", True)
        pump(session, 20, until=lambda: session.worker is not None and session.worker.done
             and session.mixer.separated_weight == 1.0)
        assert session.region_ready.all() and session.separated_fraction == 1.0
        pos = session.mixer.position
        played = pump(session, 0.01)[:BLOCK]
        expect = 2 * audio.samples[:, pos:pos + BLOCK].T  # identity stems: bass + other = 2 x mixture
        np.testing.assert_allclose(played, np.clip(expect, -1, 1), atol=0.02)
        assert session.levels["vocals"] == 0.0 and session.levels["bass"] > 0.1
    finally:
        session.close()
    assert session.worker is None


class SlowModel(torch.nn.Module):
    """The tiny model, 50 ms per chunk: separation takes several seconds, so its order is observable."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_model("tiny", {"segment_seconds": 0.5})
        self.sources, self.samplerate = self.inner.sources, self.inner.samplerate
        self.n_channels, self.segment_samples = self.inner.n_channels, self.inner.segment_samples

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        time.sleep(0.05)
        return self.inner(mix)


def test_seek_moves_playback_and_separation(cache: StemCache) -> None:
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        session.open(tone(30.0), model=SlowModel(), region_samples=16384)
        pump(session, 5, until=lambda: session.worker is not None)
        session.seek(20.0)
        assert session.position_seconds == pytest.approx(20.0, abs=1e-4)
        pump(session, 0.05)
        assert session.position_seconds > 20.0 and session.state == SessionState.NO_OUTPUT
        session.pause()  # pump() renders faster than real time: hold the play position still
        ready_at = int(session.position_seconds * SR) // 16384 + 1  # the region just ahead of the listener
        pump(session, 20, until=lambda: session.region_ready[ready_at])
        assert session.region_ready[ready_at]
        assert session.region_ready[:40].sum() < 40, "the worker went to the new position first"
    finally:
        session.close()


def test_reopening_a_song_plays_cached_stems(cache: StemCache) -> None:
    model = build_model("tiny", {"segment_seconds": 0.5})
    audio = tone(4.0)
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        session.open(audio, model=model, region_samples=16384)
        pump(session, 30, until=lambda: session.worker is not None and session.worker.done)
        session.close_song()
        session.open(audio, model=model, region_samples=16384)
        pump(session, 10, until=lambda: session.worker is not None and session.worker.done)
        worker = session.worker
        assert worker.done and worker.regions_separated == 0 and worker.regions_verified == worker.entry.n_regions
    finally:
        session.close()


def test_output_rate_differs_from_model_rate(cache: StemCache) -> None:
    """A 48 kHz output plays 44.1 kHz stems resampled region by region."""
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        session.samplerate = 48000
        session.open(tone(3.0), model=build_model("identity", {"segment_seconds": 0.5}), region_samples=16384)
        pump(session, 20, until=lambda: session.region_ready.size > 0 and session.region_ready.all())
        assert session.region_ready.all() and session.mixer.source.n_frames == 3 * 48000
    finally:
        session.close()


def test_region_resampler_matches_whole_track_resampling() -> None:
    rng = np.random.default_rng(1)
    n, region = 50_000, 8192
    source = (0.1 * rng.standard_normal((2, 2, n))).astype(np.float32)
    rr = RegionResampler(source, region, 44100, 48000)
    for k in rng.permutation(rr.n_in_regions):  # any order, like a worker following seeks
        rr.region_ready(int(k))
    assert rr.ready.all()
    whole = soxr.resample(source[1].T, 44100, 48000, quality="HQ").T
    np.testing.assert_allclose(np.asarray(rr.stems[1]), whole[:, : rr.n_out], atol=2e-4)
    rr.close()


def test_unknown_stem_is_a_clear_error(cache: StemCache) -> None:
    session = PlaybackSession(cache=cache, open_output=False)
    try:
        session.open(tone(1.0), model=build_model("identity"), play=False)
        with pytest.raises(ValueError, match="unknown stem 'voice'"):
            session.set_gain_db("voice", 0.0)
    finally:
        session.close()


def test_missing_portaudio_is_a_state_not_a_crash(cache: StemCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "_backend", None)
    monkeypatch.setattr(stream_module, "_backend_error", "audio output unavailable: PortAudio could not be loaded")
    session = PlaybackSession(cache=cache, worker_threads=1)
    try:
        assert session.state == SessionState.NO_OUTPUT and "PortAudio" in session.message
        session.open(tone(1.0), model=build_model("identity"))  # separation still works without output
        assert session.state == SessionState.NO_OUTPUT
        assert session.select_device(None) is False and "PortAudio" in session.message
        with pytest.raises(PlaybackError):
            session.output.open(None)
    finally:
        session.close()


def test_no_output_device_is_a_state_not_a_crash(cache: StemCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "list_output_devices", lambda: [])
    monkeypatch.setattr(stream_module, "_used_jack", False)  # an earlier test's JACK server is gone
    session = PlaybackSession(cache=cache, worker_threads=1)
    try:
        assert session.state == SessionState.NO_OUTPUT and "no audio output device" in session.message
    finally:
        session.close()


def test_cli_without_audio_output_fails_with_one_line(
    cache: StemCache, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import soundfile as sf

    from engine.cli import main

    monkeypatch.setattr(stream_module, "_backend", None)
    monkeypatch.setattr(stream_module, "_backend_error", "audio output unavailable: PortAudio could not be loaded")
    path = tmp_path / "song.wav"
    sf.write(path, tone(0.5).samples.T, SR)
    assert main(["play", str(path), "--model", "tiny"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("shotoku: error: audio output unavailable") and "Traceback" not in err
    assert main(["play", "--list-devices"]) == 1
