"""The headless remix session, driven without an audio device: the test calls the render callback itself.

The tests wait on states (a region ready, the worker done), never on the wall clock: :func:`render` renders a
number of blocks, :func:`pump_until` renders until a condition holds and fails (naming it) only after
``HANG_TIMEOUT`` seconds, which only a hang reaches, also on a machine whose cores are busy with other work.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch

from engine.audio import Audio
from engine.errors import PlaybackError, ShotokuError
from engine.models.catalogue import build_model
from engine.playback import stream as stream_module
from engine.playback.mix import MixState, StripState
from engine.playback.ratematch import RegionResampler
from engine.playback.session import PlaybackSession, SessionState
from engine.playback.tuning import PLAYBACK_SWITCH_INTERVAL, tune_process_for_playback
from engine.separation.cache import StemCache
from tests.engine.busy import HANG_TIMEOUT, wait_for

SR = 44100
BLOCK = 512


def tone(seconds: float = 6.0) -> Audio:
    t = np.arange(int(seconds * SR)) / SR
    left = 0.3 * np.sin(2 * np.pi * 220 * t)
    right = 0.3 * np.sin(2 * np.pi * 330 * t)
    return Audio(np.stack([left, right]).astype(np.float32), SR)


def render(session: PlaybackSession, n_blocks: int = 1) -> np.ndarray:
    """Render ``n_blocks`` blocks now; returns the output ``(n_blocks * BLOCK, 2)``."""
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    chunks = []
    for _ in range(n_blocks):
        session._render(out)
        chunks.append(out.copy())
    return np.concatenate(chunks)


def pump_until(session: PlaybackSession, condition, what: str, timeout: float = HANG_TIMEOUT) -> np.ndarray:
    """Render blocks (faster than real time, a short sleep between them) until ``condition()`` holds; returns the
    output. Fails naming ``what`` after ``timeout`` seconds: a hang, not a slow machine. (It used to give up after
    a few seconds and return, so on a busy machine the test went on before the stems were there.)"""
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    chunks = []
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        session._render(out)
        chunks.append(out.copy())
        time.sleep(0.002)
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.float32)


def test_open_plays_the_original_at_once_then_stems(cache: StemCache) -> None:
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        audio = tone()
        session.open(audio, model=build_model("identity", {"segment_seconds": 1.0}), region_samples=16384)
        assert session.stems == ["vocals", "drums", "bass", "other"]
        first = render(session)
        assert np.abs(first).max() > 0.0, "the first block already plays the mixture"
        mix = session.mix
        mix.strip_for("vocals").gain_db = -math.inf
        mix.strip_for("drums").mute = True
        session.apply_mix(mix)
        session.pause()  # blocks render faster than real time: do not reach the end before the stems are ready
        pump_until(session, lambda: session.worker is not None and session.worker.done and session.region_ready.all(),
                   "the separation to finish")
        session.play()
        pump_until(session, lambda: session.mixer.separated_weight == 1.0, "the cross-fade to the stems")
        assert session.region_ready.all() and session.separated_fraction == 1.0
        pos = session.mixer.position
        assert pos + BLOCK <= audio.samples.shape[1], "the song is still playing"
        played = render(session)
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
        pump_until(session, lambda: session.worker is not None, "the worker")
        session.seek(20.0)
        assert session.position_seconds == pytest.approx(20.0, abs=1e-4)
        render(session, 4)
        assert session.position_seconds > 20.0 and session.state == SessionState.NO_OUTPUT
        session.pause()  # blocks render faster than real time: hold the play position still
        ready_at = int(session.position_seconds * SR) // 16384 + 1  # the region just ahead of the listener
        pump_until(session, lambda: session.region_ready[ready_at], "the region ahead of the listener")
        assert session.region_ready[:40].sum() < 40, "the worker went to the new position first"
    finally:
        session.close()


def test_reopening_a_song_plays_cached_stems(cache: StemCache) -> None:
    model = build_model("tiny", {"segment_seconds": 0.5})
    audio = tone(4.0)
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1)
    try:
        session.open(audio, model=model, region_samples=16384)
        pump_until(session, lambda: session.worker is not None and session.worker.done, "the first separation")
        session.close_song()
        session.open(audio, model=model, region_samples=16384)
        pump_until(session, lambda: session.worker is not None and session.worker.done, "the cached stems")
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
        pump_until(session, lambda: session.region_ready.size > 0 and session.region_ready.all(), "every region")
        assert session.mixer.source.n_frames == 3 * 48000
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
            session.mix.strip_for("voice")
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


def references_of(audio: Audio) -> dict[str, np.ndarray]:
    """Four distinct 'true stems' summing to ``2 x mixture``-ish: enough for an oracle to tell them apart."""
    t = np.arange(audio.samples.shape[1]) / SR
    return {name: (0.1 * (i + 1) * np.sin(2 * np.pi * 110 * (i + 1) * t))[None].repeat(2, 0).astype(np.float32)
            for i, name in enumerate(["vocals", "drums", "bass", "other"])}


@pytest.mark.parametrize("worker_process", [False, True])
def test_oracle_model_separates_with_the_references(cache: StemCache, worker_process: bool) -> None:
    from engine.models.oracle import OracleMaskModel

    refs = references_of(tone(2.0))
    mixture = Audio(sum(refs.values()).astype(np.float32), SR)
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1, worker_process=worker_process)
    try:
        with pytest.raises(ShotokuError, match="reference stems"):
            session.open(mixture, model=OracleMaskModel(segment_seconds=1.0))
        session.open(mixture, model=OracleMaskModel(segment_seconds=1.0), references=refs, region_samples=16384)
        pump_until(session, lambda: session.separation_done, "the oracle's separation")
        assert session.separation_ready.all()
        stems = session.separated_stems
        assert stems.shape == (4, 2, mixture.samples.shape[1])
        inner = slice(SR // 4, -SR // 4)
        for i, name in enumerate(session.stems):
            error = stems[i, :, inner] - refs[name][:, inner]
            assert 10 * np.log10(np.sum(refs[name][:, inner] ** 2) / np.sum(error**2)) > 10.0, name
    finally:
        session.close()


def test_no_usable_model_plays_the_mixture_and_says_so(cache: StemCache, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import ModelLoadError
    from engine.models import catalogue as registry

    def no_model(root=None) -> str:
        raise ModelLoadError(Path("models"), "no usable model card is installed")

    monkeypatch.setattr(registry, "default_model_name", no_model)
    session = PlaybackSession(cache=cache, open_output=False)
    try:
        audio = tone(1.0)
        session.open(audio)
        assert "no trained model" in session.message and session.separation_model is None
        assert session.stems == ["vocals", "drums", "bass", "other"]
        played = render(session, 6)[4 * BLOCK:5 * BLOCK]  # past the fade-in
        np.testing.assert_allclose(played, audio.samples[:, 4 * BLOCK:5 * BLOCK].T, atol=0.02)
        assert session.separated_stems is None and not session.separation_done
    finally:
        session.close()


def test_without_an_output_a_silent_clock_advances_position_and_meters(
    cache: StemCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "_backend", None)
    monkeypatch.setattr(stream_module, "_backend_error", "audio output unavailable: PortAudio could not be loaded")
    session = PlaybackSession(cache=cache, worker_threads=1, worker_process=False)
    try:
        session.open(tone(3.0), model=build_model("identity", {"segment_seconds": 0.5}), region_samples=16384)
        assert session.state == SessionState.NO_OUTPUT and session.playing
        started = time.monotonic()
        wait_for(lambda: session.position_seconds >= 0.3, "the silent clock to play 0.3 s (nobody calls _render)")
        elapsed = time.monotonic() - started
        assert session.position_seconds <= elapsed + 0.1, "the clock keeps real time, it does not race"
        wait_for(lambda: session.output_level > 0.0, "the meters to move")
        session.pause()
        blocks = session._output.clock.blocks
        wait_for(lambda: session._output.clock.blocks >= blocks + 2, "the fade-out block")  # then it holds still
        held = session.position_seconds
        wait_for(lambda: session._output.clock.blocks >= blocks + 5, "three more silent blocks")
        assert session.position_seconds == held
    finally:
        session.close()
    assert not session._output.clock.running


def test_change_model_re_separates_while_playing_and_mix_gains_match_playback(cache: StemCache) -> None:
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1, worker_process=False)
    try:
        audio = tone(2.0)
        session.open(audio, model=build_model("identity", {"segment_seconds": 0.5}), region_samples=16384)
        pump_until(session, lambda: session.separation_done, "the identity separation")
        generation = session.separation_generation
        np.testing.assert_allclose(session.separated_stems[0], audio.samples, atol=1e-5)
        session.change_model(build_model("tiny", {"segment_seconds": 0.5}))
        assert session.playing and session.separation_generation == generation + 1
        pump_until(session, lambda: session.separation_done, "the tiny model's separation")
        assert np.abs(session.separated_stems[0] - audio.samples).max() > 1e-3  # no longer the identity stems
        mix = session.mix
        mix.strip_for("bass").solo = True
        mix.strip_for("bass").pan = 1.0
        mix.master_db = -6.0
        session.apply_mix(mix)
        gains, master = session.mix_gains()
        np.testing.assert_array_equal(gains, session.mixer.target_gain)
        assert master == pytest.approx(10 ** (-6 / 20)) and gains[0].tolist() == [0.0, 0.0]
        assert gains[2, 1] == 1.0 and gains[2, 0] < 1e-6
    finally:
        session.close()


def test_an_unusable_compute_device_is_reported_and_playback_goes_on(cache: StemCache) -> None:
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1, compute_device="cuda:7")
    try:
        session.open(tone(1.0), model=build_model("identity", {"segment_seconds": 0.5}), region_samples=16384)
        pump_until(session, lambda: session.separation_error is not None, "the separation's error")
        assert "cuda" in session.separation_error.lower()
        assert "cuda" in session.message.lower() and not session.separation_done
        session.play()  # (blocks ran faster than real time, maybe to the end of the song: play goes back)
        assert session.playing and np.abs(render(session, 4)).max() > 0.0  # the mixture still plays
    finally:
        session.close()
    assert __import__("multiprocessing").active_children() == []


def test_apply_mix_is_one_update_over_the_sessions_stems(cache: StemCache) -> None:
    """The mix arrives in one call: every stem's gains and the master at once; the session keeps its own copy."""
    session = PlaybackSession(cache=cache, open_output=False)
    try:
        session.open(tone(1.0), play=False, separate=False)
        assert session.stems == ["vocals", "drums", "bass", "other"]
        earlier = session.mix
        earlier.strip_for("bass").gain_db = -12.0
        session.apply_mix(earlier)
        mix = MixState.default(["vocals", "drums", "guitar"])  # another console: no bass/other, an extra guitar
        mix.strips["vocals"].gain_db, mix.strips["drums"].mute, mix.strips["guitar"].solo = -6.0, True, True
        mix.master_db = -3.0
        before = session.mixer.target_gain.copy()
        session.apply_mix(mix)
        mix.strips["vocals"].gain_db = 0.0  # the caller's object is not the session's
        assert list(session.mix.strips) == session.stems
        assert session.mix.strip_for("vocals").gain_db == -6.0 and session.mix.strip_for("drums").mute
        assert session.mix.strip_for("bass") == StripState(gain_db=-12.0), "a stem the mix does not name keeps its strip"
        assert session.mix.strip_for("other") == StripState()
        gains, master = session.mix_gains()
        np.testing.assert_array_equal(session.mixer.target_gain, gains)
        assert session.mixer.master_target == master == pytest.approx(10 ** (-3 / 20))
        order = {name: session.stems.index(name) for name in session.stems}
        np.testing.assert_allclose(gains[order["vocals"]], [10 ** (-6 / 20)] * 2, rtol=1e-6)
        assert gains[order["drums"]].tolist() == [0.0, 0.0] and gains[order["other"]].tolist() == [1.0, 1.0]
        np.testing.assert_allclose(gains[order["bass"]], [10 ** (-12 / 20)] * 2, rtol=1e-6)
        assert not np.array_equal(before, gains)
    finally:
        session.close()


def test_the_session_leaves_process_settings_to_tune_process_for_playback(cache: StemCache) -> None:
    saved = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        PlaybackSession(cache=cache, open_output=False).close()
        assert sys.getswitchinterval() == 0.005, "creating (or closing) a session changes no process-wide setting"
        assert tune_process_for_playback() == 0.005
        assert sys.getswitchinterval() == pytest.approx(PLAYBACK_SWITCH_INTERVAL)
    finally:
        sys.setswitchinterval(saved)
