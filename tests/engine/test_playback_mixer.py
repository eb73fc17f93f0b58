"""The real-time mixing kernel, driven directly with preallocated blocks (no audio device)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from engine.playback.mix import MixState, StripState, db_to_linear, resolve_gains
from engine.playback.mixer import Mixer, MixerSource

SR = 44100
N_STEMS = 4
STEMS = ("vocals", "drums", "bass", "other")
BLOCK = 512


def faders(*gains_db: float) -> MixState:
    """A mix of :data:`STEMS` with these fader positions (nothing muted or soloed, pans centred)."""
    return MixState({name: StripState(gain_db=g) for name, g in zip(STEMS, gains_db, strict=True)})


def make_source(n_frames: int = SR * 4, ready: bool = True, region: int = 8192, seed: int = 0) -> MixerSource:
    """Random stems ``(4, 2, n_frames)`` whose sum is the mixture; all regions ready (or none)."""
    rng = np.random.default_rng(seed)
    stems = (0.1 * rng.standard_normal((N_STEMS, 2, n_frames))).astype(np.float32)
    mixture = stems.sum(axis=0)
    n_regions = -(-n_frames // region)
    flags = np.full(n_regions, 1 if ready else 0, dtype=np.uint8)
    return MixerSource(mixture, stems, flags, region)


def ones_source(n_frames: int = SR, region: int = 4096) -> MixerSource:
    """Every stem is a constant 0.1 (the mixture is 0.4): output values show the gains directly."""
    stems = np.full((N_STEMS, 2, n_frames), 0.1, dtype=np.float32)
    return MixerSource(stems.sum(axis=0), stems, np.ones(-(-n_frames // region), dtype=np.uint8), region)


def playing_mixer(source: MixerSource, **kwargs) -> Mixer:
    mixer = Mixer(N_STEMS, **kwargs)
    mixer.set_source(source)
    mixer.request_play()
    return mixer


def run_blocks(mixer: Mixer, n_blocks: int, block: int = BLOCK, n_out: int = 2) -> np.ndarray:
    """Render ``n_blocks`` and return the concatenated output ``(n_blocks * block, n_out)``."""
    out = np.full((block, n_out), np.nan, dtype=np.float32)
    chunks = []
    for _ in range(n_blocks):
        out.fill(np.nan)
        mixer.render(out)
        assert np.isfinite(out).all(), "a block was not entirely filled"
        chunks.append(out.copy())
    return np.concatenate(chunks)


def test_every_block_is_filled_including_starved_and_paused() -> None:
    mixer = Mixer(N_STEMS)
    out = np.full((BLOCK, 2), np.nan, dtype=np.float32)
    mixer.render(out)  # no source: starved
    assert np.all(out == 0.0) and mixer.starved_blocks == 1
    mixer.set_source(make_source())
    out.fill(np.nan)
    mixer.render(out)  # paused
    assert np.all(out == 0.0)
    mixer.request_play()
    played = run_blocks(mixer, 20)
    assert np.abs(played).max() > 0.05


def test_stems_mode_plays_sum_of_stems_times_gains() -> None:
    source = make_source()
    mixer = playing_mixer(source, fade_frames=BLOCK)
    gains = np.array([[1.0, 1.0], [0.5, 0.5], [0.0, 0.0], [2.0, 2.0]], dtype=np.float32)
    mixer.set_stem_gains(gains)
    run_blocks(mixer, 4)  # fade in, gains ramp, stems weight reaches 1
    assert mixer.separated_weight == 1.0
    start = mixer.position
    played = run_blocks(mixer, 2)
    expect = np.einsum("sc,scn->nc", gains, source.stems[:, :, start:start + 2 * BLOCK])
    np.testing.assert_allclose(played, expect, atol=1e-5)


def test_gain_ramps_to_target_without_a_step_larger_than_the_ramp() -> None:
    mixer = playing_mixer(ones_source(), fade_frames=BLOCK)
    run_blocks(mixer, 3)
    before = run_blocks(mixer, 1)[-1, 0]
    assert before == pytest.approx(0.4, abs=1e-6)
    target = np.ones((N_STEMS, 2), dtype=np.float32)
    target[0] = db_to_linear(-math.inf)  # vocals to -inf: 0.4 -> 0.3
    mixer.set_stem_gains(target)
    ramp = run_blocks(mixer, 1)[:, 0]
    steps = np.abs(np.diff(np.concatenate([[before], ramp])))
    allowed = 0.1 / BLOCK  # the whole change spread evenly over one block
    assert steps.max() <= allowed * 1.001
    assert ramp[-1] == pytest.approx(0.3, abs=1e-6), "the target is reached at the end of the block"
    after = run_blocks(mixer, 2)[:, 0]
    np.testing.assert_allclose(after, 0.3, atol=1e-6)


def test_master_gain_is_ramped_too() -> None:
    mixer = playing_mixer(ones_source(), fade_frames=BLOCK)
    run_blocks(mixer, 3)
    mixer.master_target = 0.5
    ramp = run_blocks(mixer, 1)[:, 1]
    assert np.abs(np.diff(ramp)).max() <= 0.2 / BLOCK * 1.001
    assert ramp[-1] == pytest.approx(0.2, abs=1e-6)


def measure_callback_allocations(n_blocks: int = 3000, seed: int = 0, leak: bool = False) -> dict:
    """Render blocks under a random schedule and measure what the callback allocates (tracemalloc).

    The schedule forces the rarely taken paths: seeks (mid-fade, near and past the end), pause/play, gain and
    master ramps, loops set and cleared (wrapping inside a block), regions becoming ready and unready, source
    swaps (with and without a hand-over to the fallback), a fallback stem set, memory-mapped stems, blocks of 1
    to ``max_block`` frames and one above it. Every path is first taken in a warm-up of the same length (numpy
    fills its small caches once), then measured: only allocations with ``mixer.py`` in their traceback count,
    so other threads of the process (an earlier test's) cannot be blamed on the callback.

    Returns ``{"net": bytes still held, "peak": largest transient of one block of >= 1024 frames, "where": [...]}``.
    ``leak``: a callback that allocates (to show the measurement catches it).
    """
    import tempfile

    rng = np.random.default_rng(seed)
    n = SR * 8
    with tempfile.TemporaryFile() as f:
        f.truncate(N_STEMS * 2 * n * 4)
        stems = np.memmap(f, dtype=np.float32, mode="r+", shape=(N_STEMS, 2, n))
        stems[:] = (0.3 * rng.standard_normal((N_STEMS, 2, n))).astype(np.float32)
        old = (0.3 * rng.standard_normal((N_STEMS, 2, n))).astype(np.float32)
        mixture = np.ascontiguousarray(stems.sum(axis=0))
        region = 8192
        n_regions = -(-n // region)
        sources = [
            MixerSource(mixture, stems, rng.integers(0, 2, n_regions).astype(np.uint8), region),
            MixerSource(mixture, stems, np.zeros(n_regions, np.uint8), region, old, np.ones(n_regions, np.uint8)),
            MixerSource(mixture, None, None, region, old, rng.integers(0, 2, n_regions).astype(np.uint8)),
            MixerSource(mixture, None, None, region),
        ]
        mixer = Mixer(N_STEMS, max_block=4096)
        mixer.set_source(sources[1])
        mixer.request_play()
        outs = [np.zeros((frames, 2), np.float32) for frames in (1, 7, 64, 333, 512, 1024, 2048, 4096, 5000)]
        hoard: list[np.ndarray] = []
        if leak:  # a callback step that keeps an array per block (called from render, in mixer.py)
            finish = mixer._finish

            def leaky_finish(out: np.ndarray, *args) -> None:
                finish(out, *args)
                hoard.append(np.zeros(out.shape[0], np.float32))

            mixer._finish = leaky_finish

        def step(measure: bool) -> tuple[int, int]:
            r = rng.random()
            src = mixer.source
            if r < 0.05:
                mixer.request_seek(int(rng.integers(0, n + 10)))
            elif r < 0.08:
                mixer.request_pause()
            elif r < 0.2:
                mixer.request_play()
            elif r < 0.25:
                mixer.set_stem_gains(rng.uniform(0, 4, (N_STEMS, 2)).astype(np.float32))
            elif r < 0.3:
                mixer.master_target = float(rng.uniform(0, 3))
            elif r < 0.33:
                start = int(rng.integers(0, n - 200))
                mixer.set_loop(start, start + int(rng.integers(128, 20000)))
            elif r < 0.35:
                mixer.set_loop(None, None)
            elif r < 0.42:
                flags = src.ready if src.ready is not None and rng.random() < 0.5 else src.fallback_ready
                if flags is not None:
                    flags[int(rng.integers(0, flags.size))] ^= 1
            elif r < 0.45:
                mixer.swap_source(sources[int(rng.integers(0, len(sources)))], handover=bool(rng.random() < 0.5))
            elif r < 0.46:
                mixer.request_seek(n - int(rng.integers(0, 3000)))
            out = outs[int(rng.integers(0, len(outs)))]
            if not measure:
                mixer.render(out)
                return 0, 0
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            mixer.render(out)
            _, peak = tracemalloc.get_traced_memory()
            return out.shape[0], peak - before

        for _ in range(n_blocks):
            step(False)
        tracemalloc.start(25)
        try:
            first = tracemalloc.take_snapshot()
            worst = 0
            for _ in range(n_blocks):
                frames, transient = step(True)
                if frames >= 1024:
                    worst = max(worst, transient)
            last = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    here = [tracemalloc.Filter(True, "*engine/playback/mixer.py", all_frames=True)]
    grown = [d for d in last.filter_traces(here).compare_to(first.filter_traces(here), "traceback")
             if d.size_diff > 0]
    where = [f"{d.size_diff} B at {d.traceback[-1]}" for d in grown[:5]]
    return {"net": sum(d.size_diff for d in grown), "peak": worst, "where": where}


def test_callback_allocates_nothing() -> None:
    """No net allocation and no block-sized temporary in the callback, under every schedule the random one forces.

    Measured in a fresh interpreter: tracemalloc counts every thread of a process, and under load an earlier
    test's thread still winding down made this test report "1472 bytes still allocated" that were not the
    callback's (nothing it does grows with the blocks it renders: a ``traceback`` diff finds only numpy's
    small fixed caches, < 400 B, whatever the schedule)."""
    code = ("import json; from tests.engine.test_playback_mixer import measure_callback_allocations as m; "
            "print(json.dumps(m()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.splitlines()[-1])
    # Numpy reductions allocate a ~2 KB iterator transiently; one channel of a 1024-frame block is 4 KB.
    assert measured["peak"] < 1024 * 4, f"a block-sized temporary in the callback: {measured}"
    assert measured["net"] < 1024, f"{measured['net']} bytes still allocated after 3000 blocks: {measured['where']}"


def test_the_allocation_measure_catches_an_allocating_callback() -> None:
    """The measurement above can fail: a callback that keeps one array per block is caught."""
    measured = measure_callback_allocations(n_blocks=300, leak=True)
    assert measured["net"] > 100_000 and measured["peak"] >= 1024 * 4, measured


def fallback_source(n_frames: int = SR, region: int = 4096) -> MixerSource:
    """Stems of 0.1 each (new model), fallback stems of 0.2 each (the replaced model), mixture 0.4; regions 0-3 of
    the new stems ready, every fallback region ready. Soloing one stem then shows which source plays."""
    stems = np.full((N_STEMS, 2, n_frames), 0.1, dtype=np.float32)
    old = np.full((N_STEMS, 2, n_frames), 0.2, dtype=np.float32)
    n_regions = -(-n_frames // region)
    ready = np.zeros(n_regions, dtype=np.uint8)
    ready[:4] = 1
    return MixerSource(stems.sum(axis=0), stems, ready, region, old, np.ones(n_regions, dtype=np.uint8))


def only_vocals() -> np.ndarray:
    gains = np.zeros((N_STEMS, 2), dtype=np.float32)
    gains[0] = 1.0
    return gains


def test_the_replaced_models_stems_play_where_the_new_ones_are_not_ready() -> None:
    source = fallback_source()
    mixer = playing_mixer(source, fade_frames=BLOCK)
    mixer.set_stem_gains(only_vocals())
    played = run_blocks(mixer, 40)[:, 0]
    assert played[2 * 4096] == pytest.approx(0.1), "the new stems where they are ready"
    assert played[4 * 4096] == pytest.approx(0.2), "the old stems where the new ones are not"
    assert played[BLOCK:].min() >= 0.1 - 1e-6 and played.max() <= 0.2 + 1e-6, "never the mixture (0.4)"
    assert np.abs(np.diff(played[BLOCK:])).max() <= 0.1 / BLOCK * 1.01, "cross-faded, not switched"
    assert mixer.fallback_weight == 1.0 and mixer.separated_weight == 0.0
    source.ready[:] = 1  # the new model caught up
    caught_up = run_blocks(mixer, 4)[:, 0]
    assert caught_up[-1] == pytest.approx(0.1) and np.abs(np.diff(caught_up)).max() <= 0.1 / BLOCK * 1.01
    source.fallback_ready[:] = 0
    source.ready[:] = 0  # neither ready (e.g. a seek into unseparated music): the mixture
    assert run_blocks(mixer, 4)[-1, 0] == pytest.approx(0.4)


def test_a_hand_over_keeps_the_stems_that_were_playing() -> None:
    """A model change: the stems playing become the fallback of a source whose own stems are not there yet."""
    stems = np.full((N_STEMS, 2, SR), 0.2, dtype=np.float32)
    ready = np.ones(-(-SR // 4096), dtype=np.uint8)
    playing = MixerSource(stems.sum(axis=0), stems, ready, 4096)
    mixer = playing_mixer(playing, fade_frames=BLOCK)
    mixer.set_stem_gains(only_vocals())
    before = run_blocks(mixer, 4)[:, 0]
    assert before[-1] == pytest.approx(0.2) and mixer.separated_weight == 1.0
    mixer.swap_source(MixerSource(playing.mixture, None, None, 4096, stems, ready), handover=True)
    after = run_blocks(mixer, 4)[:, 0]
    np.testing.assert_allclose(after, 0.2, atol=1e-6)
    assert mixer.fallback_weight == 1.0 and mixer.separated_weight == 0.0
    mixer.swap_source(MixerSource(playing.mixture, None, None, 4096, stems, ready))  # without it: a fade
    assert run_blocks(mixer, 1)[-1, 0] == pytest.approx(0.2)


def test_mute_solo_pan_resolution() -> None:
    state = MixState(dict(zip(STEMS, [StripState(0.0, False, True, 0.0), StripState(-6.0, False, True, 1.0),
                                      StripState(0.0, True, True, 0.0), StripState(0.0, False, False, -1.0)])))
    gains, master = resolve_gains(state, STEMS)
    assert gains.shape == (4, 2) and gains.dtype == np.float32 and master == 1.0
    assert gains[0].tolist() == [1.0, 1.0]
    assert gains[1, 0] == pytest.approx(0.0, abs=1e-7) and gains[1, 1] == pytest.approx(db_to_linear(-6.0))
    assert gains[2].tolist() == [0.0, 0.0], "muted beats soloed"
    assert gains[3].tolist() == [0.0, 0.0], "not soloed while another is"
    panned = MixState({name: StripState(pan=0.5) for name in STEMS})
    half = resolve_gains(panned, STEMS)[0]
    assert half[0, 1] == 1.0 and half[0, 0] == pytest.approx(math.cos(math.pi / 4))
    assert db_to_linear(-math.inf) == 0.0 and db_to_linear(6.0) == pytest.approx(1.9952623)


def test_gains_follow_the_stems_asked_for_and_the_fader_bottom_is_silence() -> None:
    """Stems the mix has no strip for are silent, strips of other stems change nothing; -60 dB and below is 0."""
    state = faders(-3.0, -60.0, -80.0, 0.0)
    state.strips["guitar"] = StripState(gain_db=6.0, solo=True)  # another model's stem: ignored, even soloed
    state.master_db = -70.0
    gains, master = resolve_gains(state, ["other", "bass", "piano", "vocals", "drums"])
    for channel in (0, 1):
        assert gains[:, channel].tolist() == pytest.approx([1.0, 0.0, 0.0, db_to_linear(-3.0), 0.0])
    assert master == 0.0


def test_limiter_keeps_a_boosted_remix_under_the_ceiling() -> None:
    source = make_source()
    source.stems *= 3.0  # peaks well above full scale
    mixer = playing_mixer(source, ceiling=0.98)
    mixer.set_stem_gains(np.full((N_STEMS, 2), db_to_linear(12.0), dtype=np.float32))
    played = run_blocks(mixer, 200)
    assert np.abs(played).max() <= 0.98 + 1e-6
    assert mixer.limiter_gain < 0.5
    # Smooth: no sample-to-sample jump bigger than the signal itself produces.
    assert np.abs(np.diff(played[:, 0])).max() < 2 * 0.98


def test_original_to_stems_crossfade_is_click_free() -> None:
    source = ones_source(SR, region=4096)
    source.ready[:] = 0
    mixer = playing_mixer(source, fade_frames=BLOCK)
    target = np.zeros((N_STEMS, 2), dtype=np.float32)
    target[0] = 1.0  # only vocals: stems mode gives 0.1, original gives 0.4
    mixer.set_stem_gains(target)
    run_blocks(mixer, 4)
    assert run_blocks(mixer, 1)[-1, 0] == pytest.approx(0.4), "unready regions play the original"
    source.ready[:] = 1  # the worker finished everything
    played = run_blocks(mixer, 4)[:, 0]
    assert played[-1] == pytest.approx(0.1, abs=1e-6)
    assert np.abs(np.diff(played)).max() <= 0.3 / BLOCK * 1.01


def test_switches_back_to_original_before_an_unready_region() -> None:
    source = ones_source(SR, region=4096)
    source.ready[3:] = 0
    mixer = playing_mixer(source, fade_frames=BLOCK)
    target = np.zeros((N_STEMS, 2), dtype=np.float32)
    target[0] = 1.0
    mixer.set_stem_gains(target)
    played = run_blocks(mixer, 40)[:, 0]
    assert played[3 * 4096 - 1] == pytest.approx(0.4), "fully original by the first unready sample"
    assert played[2 * 4096] == pytest.approx(0.1)
    assert np.abs(np.diff(played[BLOCK:])).max() <= 0.3 / BLOCK * 1.01


def test_seek_is_sample_accurate_and_faded() -> None:
    source = make_source()
    mixer = playing_mixer(source, fade_frames=BLOCK)
    run_blocks(mixer, 5)
    mixer.request_seek(SR * 2 + 7)
    assert mixer.seek_pending == SR * 2 + 7
    fade_out = run_blocks(mixer, 1)
    assert np.abs(fade_out[-1]).max() < 0.05, "faded out before jumping"
    fade_in = run_blocks(mixer, 1)
    steady = run_blocks(mixer, 1)
    assert mixer.seek_pending is None
    expect = source.stems[:, :, SR * 2 + 7 + BLOCK: SR * 2 + 7 + 2 * BLOCK].sum(axis=0).T
    np.testing.assert_allclose(steady, expect, atol=1e-5)
    assert np.abs(fade_in[0]).max() < np.abs(source.mixture).max() / 100


def test_pause_fades_out_and_keeps_position() -> None:
    mixer = playing_mixer(ones_source(), fade_frames=BLOCK)
    run_blocks(mixer, 3)
    mixer.request_pause()
    tail = run_blocks(mixer, 1)[:, 0]
    assert tail[-1] == 0.0 and np.abs(np.diff(tail)).max() <= 0.4 / BLOCK * 1.01
    position = mixer.position
    assert np.all(run_blocks(mixer, 3) == 0.0) and mixer.position == position


def test_loop_wraps_with_fades_and_end_of_song_stops() -> None:
    source = ones_source(SR)
    mixer = playing_mixer(source, fade_frames=BLOCK)
    mixer.set_loop(1000, 1000 + 5 * BLOCK + 100)
    played = run_blocks(mixer, 40)[:, 0]
    assert 1000 <= mixer.position < 1000 + 5 * BLOCK + 100
    assert played.min() < 0.01, "a short dip at the loop point"
    assert np.abs(np.diff(played)).max() < 0.4 / 64, "the loop point is faded, not cut"
    mixer.set_loop(None, None)
    run_blocks(mixer, SR // BLOCK + 2)
    assert mixer.at_end and not mixer.playing


@pytest.mark.parametrize("n_out", [1, 2, 4])
def test_output_channel_counts(n_out: int) -> None:
    source = make_source()
    mixer = Mixer(N_STEMS, n_out_channels=n_out)
    mixer.set_source(source)
    mixer.request_play()
    played = run_blocks(mixer, 6, n_out=n_out)
    assert played.shape[1] == n_out
    assert np.abs(played[:, 0]).max() > 0.01
    if n_out > 2:
        assert np.all(played[:, 2:] == 0.0)


def test_variable_block_sizes_are_filled() -> None:
    mixer = playing_mixer(make_source())
    for frames in (1, 64, 333, 1024, 4096):
        out = np.full((frames, 2), np.nan, dtype=np.float32)
        mixer.render(out)
        assert np.isfinite(out).all()
    out = np.full((9000, 2), np.nan, dtype=np.float32)  # above max_block: zero-filled, counted
    mixer.render(out)
    assert np.all(out == 0.0) and mixer.starved_blocks == 1
