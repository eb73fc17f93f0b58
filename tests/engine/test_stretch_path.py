"""Tempo and pitch while playing: the stretch path driven block by block (no audio device, no thread).

The worker's step (:meth:`StretchPath.pump`) and the callback (:meth:`StretchPath.render`) alternate as they do in
playback, so every figure is counted in frames, never in wall-clock time.
"""

from __future__ import annotations

import inspect
import tracemalloc

import numpy as np
import pytest

from engine.playback import stretchpath
from engine.playback.deck import Deck
from engine.playback.mixer import Mixer, MixerSource
from engine.playback.stretch import check_semitones, check_tempo, stretch_offline, stretch_stems
from engine.playback.stretchpath import StretchPath

SR = 44100
BLOCK = 1024  # the "robust" preset's block


def tone_source(seconds: float = 8.0, freqs: tuple[float, float] = (440.0, 660.0), clicks: float | None = None
                ) -> MixerSource:
    """Stem 0 a sine (``freqs[0]`` in the first half, ``freqs[1]`` in the second), stem 1 silent, or clicks every
    ``clicks`` seconds on stem 1."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    stems = np.zeros((2, 2, n), dtype=np.float32)
    freq = np.where(np.arange(n) < n // 2, freqs[0], freqs[1])
    stems[0] = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR)
    if clicks is not None:
        stems[0] = 0.0
        step = int(clicks * SR)
        for k in range(step, n, step):
            stems[1, :, k:k + 64] = 0.8
    del t
    return MixerSource(stems.sum(axis=0), stems, np.ones(-(-n // 8192), dtype=np.uint8), 8192)


def playing_path(source: MixerSource) -> StretchPath:
    mixer = Mixer(source.stems.shape[0])
    mixer.set_source(source)
    mixer.request_play()
    return StretchPath(mixer, SR, start_thread=False)


def step(path: StretchPath, out: np.ndarray) -> None:
    """The worker tops the ring up, then the callback renders one block."""
    for _ in range(64):
        if not path.pump():
            break
    path.render(out)


def dominant(block: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(block * np.hanning(len(block))))
    return float(np.argmax(spectrum) * SR / len(block))


def test_a_pitch_change_is_heard_within_100_ms() -> None:
    path = playing_path(tone_source())
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(20):
        step(path, out)
    path.set(1.0, 12.0)
    heard = []
    for _ in range(40):
        step(path, out)
        heard.append(out[:, 0].copy())
    signal = np.concatenate(heard)
    window = 2048
    first = next(i for i in range(0, len(signal) - window, 256) if abs(dominant(signal[i:i + window]) - 880) < 30)
    # the window that first shows 880 Hz ends within the budget: frames from the request to the change heard
    assert first + window < 0.100 * SR + window, f"the transposition was heard {1000 * first / SR:.0f} ms late"
    assert abs(dominant(signal[-window:]) - 880) < 30


def test_half_tempo_keeps_the_pitch_and_halves_the_song_time() -> None:
    path = playing_path(tone_source())
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    path.set(0.5, 0.0)
    for _ in range(10):
        step(path, out)
    assert path.engaged
    before, chunks = path.song_position, []
    for _ in range(60):
        step(path, out)
        chunks.append(out[:, 0].copy())
    played = path.song_position - before
    assert abs(played - 60 * BLOCK * 0.5) < 2048, f"{played} song frames in {60 * BLOCK} output frames"
    assert abs(dominant(np.concatenate(chunks)[-8192:]) - 440) < 15


def test_clicks_come_twice_as_far_apart_at_half_tempo() -> None:
    path = playing_path(tone_source(seconds=6.0, clicks=0.5))
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    path.set(0.5, 0.0)
    chunks = []
    for _ in range(200):
        step(path, out)
        chunks.append(out[:, 0].copy())
    signal = np.abs(np.concatenate(chunks))[20 * BLOCK:]
    onsets = np.flatnonzero((signal[1:] > 0.3) & (signal[:-1] <= 0.3))
    onsets = onsets[np.concatenate([[True], np.diff(onsets) > 0.3 * SR])]  # a stretched click rings: one onset per 0.3 s
    gaps = np.diff(onsets) / SR
    assert len(gaps) >= 3 and np.allclose(gaps, 1.0, atol=0.03), gaps


def test_a_loop_is_exact_in_song_time_while_stretched() -> None:
    path = playing_path(tone_source())
    a, b = SR, SR + 20000
    path.direct.set_loop(a, b)
    path.feed.set_loop(a, b)  # the deck mirrors every transport request to the feed
    path.direct.request_seek(a)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(5):
        step(path, out)
    rendered: list[tuple[int, int]] = []
    render = path.feed.render

    def record(block: np.ndarray) -> None:
        start = path.feed.next_frame
        render(block)
        rendered.append((start, block.shape[0]))

    path.feed.render = record
    path.set(0.7, -3.0)
    positions = []
    for _ in range(150):
        step(path, out)
        positions.append(path.song_position)
    frames = np.concatenate([np.arange(s, s + n) for s, n in rendered if s >= a])
    assert frames.min() >= a and frames.max() < b
    wraps = np.flatnonzero(np.diff(frames) != 1)
    assert len(wraps) >= 2
    for w in wraps:  # every jump is exactly from the loop's last frame to its first
        assert frames[w] == b - 1 and frames[w + 1] == a
    heard = [p for p in positions[10:]]
    assert min(heard) >= a and max(heard) <= b


def test_seek_while_stretched_moves_the_song_and_the_sound() -> None:
    path = playing_path(tone_source())
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    path.set(0.8, 0.0)
    for _ in range(10):
        step(path, out)
    target = int(6.0 * SR)  # the 660 Hz half
    path.direct.request_seek(target)
    path.feed.request_seek(target)
    chunks = []
    for _ in range(30):
        step(path, out)
        chunks.append(out[:, 0].copy())
    assert target <= path.song_position < target + 30 * BLOCK
    assert abs(dominant(np.concatenate(chunks)[-8192:]) - 660) < 15


def test_back_to_neutral_hands_over_to_the_direct_mixer_at_the_song_frame_heard() -> None:
    path = playing_path(tone_source())
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    path.set(0.6, 2.0)
    chunks = []
    for _ in range(30):
        step(path, out)
        chunks.append(out[:, 0].copy())
    heard = path.song_position
    path.set(1.0, 0.0)
    step(path, out)
    chunks.append(out[:, 0].copy())
    assert not path.engaged
    assert abs(path.direct.position - (heard + BLOCK)) <= 2 * BLOCK
    for _ in range(5):
        step(path, out)
        chunks.append(out[:, 0].copy())
    signal = np.concatenate(chunks)
    assert np.abs(np.diff(signal)).max() < 0.1, "a click at a hand-over"
    assert path.starved_blocks == 0


def _callback_lines() -> list[tuple[int, int]]:
    """Line ranges of the callback side of ``stretchpath.py`` (render and what it calls)."""
    ranges = []
    for fn in (StretchPath.render, StretchPath._pull, StretchPath._to_out, StretchPath._crossfade):
        lines, first = inspect.getsourcelines(fn)
        ranges.append((first, first + len(lines)))
    return ranges


def test_the_callback_allocates_nothing() -> None:
    """Nothing allocated by the callback's lines of ``stretchpath.py`` survives 300 blocks (tempo and pitch
    change on the way), and no block-sized temporary appears inside the callback. The worker's step, which may
    allocate, runs between the callbacks as in playback and is left out by line."""
    path = playing_path(tone_source())
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    path.set(0.75, 3.0)
    for _ in range(20):
        step(path, out)
    ranges = _callback_lines()
    here = stretchpath.__file__

    def in_callback(trace: tracemalloc.Trace) -> bool:
        return any(f.filename == here and any(a <= f.lineno < b for a, b in ranges) for f in trace.traceback)

    tracemalloc.start(25)
    worst = 0
    try:
        first = tracemalloc.take_snapshot()
        for k in range(300):
            for _ in range(64):
                if not path.pump():
                    break
            if k == 150:
                path.set(0.9, -2.0)
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            path.render(out)
            _, peak = tracemalloc.get_traced_memory()
            worst = max(worst, peak - before)
        last = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = sum(t.size for t in last.traces if in_callback(t)) - sum(t.size for t in first.traces if in_callback(t))
    assert path.engaged
    assert kept < 256, f"{kept} bytes kept by the callback"
    assert worst < BLOCK * 4, f"a {worst}-byte temporary inside the callback"


def test_the_deck_mirrors_transport_to_the_feed_and_reports_the_song_position() -> None:
    deck = Deck()
    deck.set_stems(["vocals", "other"], 2, SR)
    source = tone_source()
    deck.install(source)
    deck.resume_at(0)
    deck.play()
    deck.set_tempo_pitch(0.5, 0.0)
    path = deck.stretch
    assert path is not None
    path.close()  # drive it by hand: no thread
    path.set(0.5, 0.0)
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(10):
        for _ in range(64):
            if not path.pump():
                break
        deck.render(out)
    assert path.engaged
    deck.set_loop(SR, 3 * SR)
    deck.seek(2 * SR)
    assert path.feed.loop == (SR, 3 * SR) and path.feed.seek_pending == 2 * SR
    assert deck.position == 2 * SR
    deck.pause()
    assert not path.feed.playing and not deck.playing
    with pytest.raises(ValueError, match="tempo"):
        deck.set_tempo_pitch(2.0, 0.0)
    with pytest.raises(ValueError, match="semitones"):
        deck.set_tempo_pitch(1.0, 13)
    deck.close()


def test_range_checks() -> None:
    assert check_tempo(0.5) == 0.5 and check_tempo(1.5) == 1.5
    assert check_semitones(-12) == -12.0
    for bad in (0.49, 1.51, float("nan")):
        with pytest.raises(ValueError):
            check_tempo(bad)


def test_export_stretch_keeps_stems_aligned_and_the_length_right() -> None:
    n = 2 * SR
    clicks = np.zeros((2, n), dtype=np.float32)
    clicks[:, SR:SR + 64] = 0.8
    tone = np.ascontiguousarray(tone_source(seconds=2.0).stems[0])
    out = stretch_stems({"clicks": clicks, "tone": tone}, SR, 0.8, -12.0)
    assert out["clicks"].shape == out["tone"].shape == (2, round(n / 0.8))
    assert abs(dominant(out["tone"][0, 4096:4096 + 16384]) - 220) < 10
    heard = int(np.argmax(np.abs(out["clicks"][0])))
    assert abs(heard - SR / 0.8) < 0.01 * SR, f"the click moved to {heard / SR:.3f} s"
    assert stretch_offline(tone, SR, 1.0, 0.0).shape == (2, n)
