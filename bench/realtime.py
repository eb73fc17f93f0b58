"""Real-time remix benchmark on JACK's dummy driver (issue 5): latency, underruns, callback cost, memory.

Run (takes ~7 minutes with the defaults; the lock keeps other heavy jobs off the 2 cores)::

    flock /tmp/shotoku-heavy.lock .venv/bin/python bench/realtime.py --json bench-realtime.json

Figures, each printed against its target:

1. open a 4-minute song (FLAC) -> first audio frame rendered (target < 1 s);
2. fader change -> first affected output sample (target: within the next block, < 25 ms at 512 frames);
3. underruns over ``--minutes`` of playback while the separation worker runs flat out and a fader moves every
   50 ms (target: 0 after the first second);
4. callback cost as a share of the block period;
5. peak memory for a 10-minute song, separated completely while it plays (target < 1.5 GB);
6. with tempo and pitch on (Rubber Band in its worker, ``--stretch-minutes``): the callback's share of the block
   period, underruns, blocks the ring could not fill, while tempo and transposition change every 2 s (issue 16).

The model is the registry's default if it has trained weights, else a random-init model of the in-house default
architecture at its full size (``--architecture``, default ``openunmix``); the report says which.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.playback.session import PlaybackSession  # noqa: E402
from engine.playback.tuning import PLAYBACK_SWITCH_INTERVAL, tune_process_for_playback  # noqa: E402
from engine.separation.cache import StemCache  # noqa: E402
from engine.separation.streaming import StreamingSeparator  # noqa: E402
from tests.engine.jack import JACK_PERIOD, JACK_RATE, jack_server  # noqa: E402

SR = JACK_RATE


class InstrumentedSession(PlaybackSession):
    """Records, from inside the audio callback, when audio first sounds, gain changes and the callback's cost."""

    def __init__(self, *args, **kwargs) -> None:
        self.first_audio_at = 0.0
        self.costs = np.zeros(200_000, dtype=np.float64)
        self.starts = np.zeros(200_000, dtype=np.float64)
        self.n_costs = 0
        self.gain_seen_at = np.zeros(20_000, dtype=np.float64)
        self.gain_values = np.zeros(20_000, dtype=np.float32)
        self.n_gains = 0
        self._last_gain = np.float32(np.nan)
        super().__init__(*args, **kwargs)

    def _render(self, out: np.ndarray) -> None:
        start = time.perf_counter()
        super()._render(out)
        end = time.perf_counter()
        if self.n_costs < self.costs.size:
            self.costs[self.n_costs] = end - start
            self.starts[self.n_costs] = start
            self.n_costs += 1
        if self.first_audio_at == 0.0 and out[:, 0].any():
            self.first_audio_at = end
        mixer = self.mixer
        if mixer is not None and mixer.n_stems and self.n_gains < self.gain_seen_at.size:
            g = mixer._gain_cur[0, 0]  # the value this block ramped to (read once per block by the mixer)
            if g != self._last_gain:
                self._last_gain = g
                self.gain_seen_at[self.n_gains] = start
                self.gain_values[self.n_gains] = g
                self.n_gains += 1


def pick_model(architecture: str):
    from engine.models.catalogue import build_model, default_model_name, get_card, load_model

    try:
        name = default_model_name()
        card = get_card(name)
        if card.kind == "neural" and card.weights_sha256:
            load_model(name)  # fail here, not in the worker, if the weights are broken
            return name, f"{name} (trained weights; the default model)"
    except Exception:
        pass
    model = build_model(architecture).eval()
    n_params = sum(p.numel() for p in model.parameters())
    return model, f"{architecture}, random init, default size ({n_params / 1e6:.1f} M parameters; no trained default yet)"


def make_song(path: Path, seconds: float, seed: int = 0) -> None:
    """A synthetic stereo song: chords, a bass line, noise bursts (drums), a vibrato 'voice'; written as FLAC."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros((2, n), dtype=np.float32)
    block = SR * 10
    for a in range(0, n, block):
        t = np.arange(a, min(n, a + block)) / SR
        f0 = 110 * 2 ** (rng.integers(0, 12) / 12)
        bass = 0.2 * np.sin(2 * np.pi * f0 * t)
        chord = sum(0.05 * np.sin(2 * np.pi * f0 * 2 * r * t) for r in (1, 1.26, 1.5))
        voice = 0.1 * np.sin(2 * np.pi * (440 + 5 * np.sin(2 * np.pi * 5 * t)) * t)
        beat = (np.mod(t, 0.5) < 0.03) * rng.standard_normal(t.size) * 0.3
        out[0, a:a + t.size] = bass + chord + voice + beat
        out[1, a:a + t.size] = bass + 0.8 * chord + voice + beat
    sf.write(path, out.T, SR, format="FLAC")


class GcPauses:
    """Counts cyclic-collector runs per generation and the longest one (it holds the GIL the callback needs)."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.max_ms = 0.0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.max_ms = max(self.max_ms, 1000 * (time.perf_counter() - self._start))

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)


def rss_anon_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_open_and_faders(session: InstrumentedSession, model, song: Path, minutes: float, report: dict) -> None:
    # 1. open -> first audio frame
    t0 = time.perf_counter()
    session.open(song, model=model)
    while session.first_audio_at == 0.0 and time.perf_counter() - t0 < 10:
        time.sleep(0.001)
    report["open_to_first_audio_s"] = session.first_audio_at - t0
    session.set_loop(0.0, session.duration_seconds)  # 5 minutes of playback from a 4-minute song: loop it
    # 3. + 2.: play for `minutes` while the worker runs flat out and a fader moves every 50 ms.
    time.sleep(1.0)  # the first second is excluded from the underrun target
    under0, frames0, t_start = session.underruns, session.output.frames, time.monotonic()
    t_start_perf = time.perf_counter()
    set_times: list[tuple[float, float]] = []
    stop = threading.Event()
    extra_workers: list[StreamingSeparator] = []

    def keep_worker_busy() -> None:
        """When the song is fully separated, separate it again into a scratch entry: the worker never idles."""
        k = 0
        while not stop.is_set():
            worker = session.worker
            if worker is not None and worker.done and not any(w.alive and not w.done for w in extra_workers):
                k += 1
                mix = session._song.mixture  # the open song at the model's rate
                entry = session.cache.open(f"bench-scratch-{k}", list(session.stems), 2, mix.shape[1], SR)
                extra = StreamingSeparator(None, mix, entry, session.worker.segment_samples, process_model=model,
                                           n_threads=session.worker_threads)
                extra.start()
                extra_workers.append(extra)
            stop.wait(0.2)

    busy = threading.Thread(target=keep_worker_busy, daemon=True)
    busy.start()
    pauses = GcPauses()
    rng = np.random.default_rng(1)
    deadline = t_start + minutes * 60
    mix = session.mix
    while time.monotonic() < deadline:
        db = float(rng.uniform(-40.0, 6.0))
        mix.strip_for(session.stems[0]).gain_db = db
        session.apply_mix(mix)  # the change is published when this returns
        set_times.append((time.perf_counter(), np.float32(10 ** (db / 20))))
        time.sleep(0.05)
    elapsed = time.monotonic() - t_start
    stop.set()
    busy.join()
    pauses.stop()
    report["gc_collections_during_playback"] = pauses.counts
    report["gc_pause_ms_max"] = pauses.max_ms
    worker_busy = session.worker.busy_seconds + sum(w.busy_seconds for w in extra_workers)
    for w in extra_workers:
        w.stop()
        w.entry.close()
    report["playback_seconds"] = elapsed
    report["underruns_after_first_second"] = session.underruns - under0
    report["frames_per_second"] = (session.output.frames - frames0) / elapsed
    report["worker_busy_fraction"] = worker_busy / (elapsed + 1.0)
    report["worker"] = "child process" if session.worker_process else "thread"
    report["worker_threads"] = session.worker_threads
    report["extra_separation_passes"] = len(extra_workers)
    # Fader latency: for each set, the first callback whose ramp target equals the new value.
    seen_t = session.gain_seen_at[: session.n_gains]
    seen_v = session.gain_values[: session.n_gains]
    starts = session.starts[: session.n_costs]
    latencies, waited = [], []
    for t_set, value in set_times:
        idx = np.flatnonzero((seen_t >= t_set) & np.isclose(seen_v, value, rtol=1e-5))
        if idx.size:
            latencies.append(seen_t[idx[0]] - t_set)
            # callbacks that started after the change but did not pick it up (0: the next block had it)
            waited.append(int(np.count_nonzero((starts > t_set) & (starts < seen_t[idx[0]]))))
    lat = np.array(latencies)
    report["fader_blocks_missed_max"] = int(max(waited)) if waited else -1
    report["fader_changes"] = len(set_times)
    report["fader_changes_observed"] = int(lat.size)
    report["fader_changes_picked_up_during_the_call"] = len(set_times) - int(lat.size)
    report["fader_to_render_ms_median"] = float(np.median(lat) * 1000)
    report["fader_to_render_ms_p99"] = float(np.percentile(lat, 99) * 1000)
    report["fader_to_render_ms_max"] = float(lat.max() * 1000)
    report["output_latency_ms"] = session.output.output_latency * 1000
    costs = session.costs[: session.n_costs]
    period = JACK_PERIOD / SR
    report["callback_cost_ms_mean"] = float(costs.mean() * 1000)
    report["callback_cost_ms_p99"] = float(np.percentile(costs, 99) * 1000)
    report["callback_cost_ms_max"] = float(costs.max() * 1000)
    report["callback_share_of_period_mean"] = float(costs.mean() / period)
    report["callback_share_of_period_max"] = float(costs.max() / period)
    # Gaps between callback starts: a late callback that was itself quick means the thread was not scheduled in
    # time (the OS, not the callback's work).
    gaps = np.diff(starts[starts >= t_start_perf])
    report["callback_gap_ms_max"] = float(gaps.max() * 1000) if gaps.size else 0.0
    report["callback_gaps_over_two_periods"] = int(np.count_nonzero(gaps > 2 * period))


def measure_stretching(session: InstrumentedSession, minutes: float, report: dict) -> None:
    """Play with tempo/pitch on for ``minutes`` (the separation worker still runs), changing both every 2 s."""
    session.set_tempo(0.8)
    session.set_transpose(2)
    path = session.stretch
    assert path is not None
    t0 = time.monotonic()
    while not path.engaged and time.monotonic() - t0 < 10:
        time.sleep(0.005)
    report["stretch_engage_s"] = time.monotonic() - t0
    time.sleep(0.5)
    session.n_costs = 0
    under0, starved0, t_start = session.underruns, path.starved_blocks, time.monotonic()
    settings = [(0.5, -12), (0.75, 3), (1.25, -5), (1.5, 12), (0.9, 0), (1.1, 7)]
    k = 0
    while time.monotonic() - t_start < minutes * 60:
        tempo, semitones = settings[k % len(settings)]
        session.set_tempo(tempo)
        session.set_transpose(semitones)
        k += 1
        time.sleep(2.0)
    elapsed = time.monotonic() - t_start
    costs = session.costs[: session.n_costs]
    period = JACK_PERIOD / SR
    report["stretch_seconds"] = elapsed
    report["stretch_changes"] = k
    report["stretch_underruns"] = session.underruns - under0
    report["stretch_starved_blocks"] = path.starved_blocks - starved0
    report["stretch_engaged_at_end"] = bool(path.engaged)
    report["stretch_error"] = path.error
    report["stretch_callback_share_mean"] = float(costs.mean() / period) if costs.size else 0.0
    report["stretch_callback_share_p99"] = float(np.percentile(costs, 99) / period) if costs.size else 0.0
    report["stretch_callback_share_max"] = float(costs.max() / period) if costs.size else 0.0
    session.set_tempo(1.0)
    session.set_transpose(0)


def measure_memory(model, song: Path, report: dict) -> None:
    """Open a 10-minute song and play it while it separates completely; track peak RSS and anonymous RSS."""
    proc = psutil.Process()
    session = InstrumentedSession(blocksize=JACK_PERIOD)
    peak_rss = peak_anon = peak_pss_total = peak_uss_total = 0
    t0 = time.monotonic()
    try:
        session.open(song, model=model)
        while time.monotonic() - t0 < 600:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            peak_anon = max(peak_anon, rss_anon_bytes())
            pss = uss = 0
            for p in [proc, *proc.children(recursive=True)]:  # the app and its separation process
                try:
                    info = p.memory_full_info()
                    pss, uss = pss + info.pss, uss + info.uss
                except psutil.Error:
                    pass
            peak_pss_total, peak_uss_total = max(peak_pss_total, pss), max(peak_uss_total, uss)
            worker = session.worker
            if worker is not None and worker.done:
                break
            time.sleep(0.25)
        report["ten_minute_song_separated_in_s"] = time.monotonic() - t0
        report["ten_minute_song_done"] = bool(session.worker is not None and session.worker.done)
        report["ten_minute_underruns"] = session.underruns
    finally:
        session.close()
    report["peak_rss_mb"] = peak_rss / 2**20
    report["peak_anon_rss_mb"] = peak_anon / 2**20
    report["peak_pss_with_child_mb"] = peak_pss_total / 2**20
    report["peak_uss_with_child_mb"] = peak_uss_total / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="playback time for the underrun test")
    parser.add_argument("--architecture", default="openunmix", help="random-init architecture if no trained default")
    parser.add_argument("--threads", type=int, default=None, help="worker torch threads (default: cores - 1)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--stretch-minutes", type=float, default=2.0,
                        help="playback time with tempo/pitch on (0: skip that figure)")
    parser.add_argument("--song-seconds", type=float, default=240.0, help="length of the generated song (smoke: less)")
    parser.add_argument("--switch-interval", type=float, default=PLAYBACK_SWITCH_INTERVAL,
                        help="GIL switch interval while playing (seconds; 0.005 is Python's default)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="shotoku-bench-"))
    os.environ["SHOTOKU_CACHE"] = str(tmp / "cache")
    model, model_desc = pick_model(args.architecture)
    report: dict = {"model": model_desc, "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "load_before": os.getloadavg()}
    try:
        run(args, tmp, model, report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the stem cache of a 10-minute song is gigabytes
    print_report(report, model_desc, args.json)
    return 0


def run(args: argparse.Namespace, tmp: Path, model, report: dict) -> None:
    """Measure everything into ``report``; songs and the stem cache live in ``tmp``."""
    song4, song10 = tmp / "song4.flac", tmp / "song10.flac"
    make_song(song4, args.song_seconds)
    with jack_server():
        tune_process_for_playback(args.switch_interval)
        report["gil_switch_interval_s"] = args.switch_interval
        session = InstrumentedSession(blocksize=JACK_PERIOD, worker_threads=args.threads,
                                      cache=StemCache(tmp / "cache" / "stems"))
        try:
            measure_open_and_faders(session, model, song4, args.minutes, report)
            if args.stretch_minutes > 0:
                measure_stretching(session, args.stretch_minutes, report)
        finally:
            session.close()
        if not args.skip_memory:
            make_song(song10, 600.0, seed=2)
            measure_memory(model, song10, report)
    report["load_after"] = os.getloadavg()


def print_report(report: dict, model_desc: str, json_path: Path | None) -> None:
    """Each figure against its target; the whole report as JSON if asked."""
    period_ms = 1000 * JACK_PERIOD / SR
    rows = [
        ("open 4-min song -> first audio", f"{report['open_to_first_audio_s'] * 1000:.0f} ms", "< 1000 ms",
         report["open_to_first_audio_s"] < 1.0),
        ("fader -> first affected sample rendered (median / p99 / max)",
         f"{report['fader_to_render_ms_median']:.1f} / {report['fader_to_render_ms_p99']:.1f} / "
         f"{report['fader_to_render_ms_max']:.1f} ms; blocks missed (max) {report['fader_blocks_missed_max']}",
         "the next block", report["fader_blocks_missed_max"] == 0),
        ("fader -> first affected sample at the output (+ PortAudio output latency; median / p99)",
         f"{report['fader_to_render_ms_median'] + report['output_latency_ms']:.1f} / "
         f"{report['fader_to_render_ms_p99'] + report['output_latency_ms']:.1f} ms",
         f"< 25 ms at {JACK_PERIOD} frames", report["fader_to_render_ms_p99"] + report["output_latency_ms"] < 25.0),
        (f"underruns in {report['playback_seconds'] / 60:.1f} min after the first second",
         str(report["underruns_after_first_second"]), "0", report["underruns_after_first_second"] == 0),
        ("cyclic GC runs during playback (gen 0 / 1 / 2) and the longest pause",
         f"{' / '.join(map(str, report['gc_collections_during_playback']))}; {report['gc_pause_ms_max']:.2f} ms",
         "-", True),
        ("callback cost (mean / p99 / max) vs block period",
         f"{report['callback_cost_ms_mean']:.3f} / {report['callback_cost_ms_p99']:.3f} / "
         f"{report['callback_cost_ms_max']:.3f} ms = {100 * report['callback_share_of_period_mean']:.1f}% / max "
         f"{100 * report['callback_share_of_period_max']:.1f}% of {period_ms:.1f} ms", "-", True),
        ("gaps between callback starts: longest, and how many exceeded two periods",
         f"{report['callback_gap_ms_max']:.1f} ms; {report['callback_gaps_over_two_periods']}", "-", True),
    ]
    if "stretch_seconds" in report:
        rows.append((f"tempo/pitch on for {report['stretch_seconds'] / 60:.1f} min, {report['stretch_changes']} "
                     "changes: underruns, ring blocks short",
                     f"{report['stretch_underruns']}, {report['stretch_starved_blocks']}"
                     + (f" ({report['stretch_error']})" if report["stretch_error"] else ""), "0, 0",
                     report["stretch_underruns"] == 0 and report["stretch_starved_blocks"] == 0
                     and report["stretch_engaged_at_end"]))
        rows.append(("tempo/pitch on: callback cost vs block period (mean / p99 / max)",
                     f"{100 * report['stretch_callback_share_mean']:.1f}% / "
                     f"{100 * report['stretch_callback_share_p99']:.1f}% / "
                     f"{100 * report['stretch_callback_share_max']:.1f}% of {period_ms:.1f} ms", "-", True))
    if "peak_rss_mb" in report:
        rows.append(("peak memory, 10-min song: app + separation process (PSS, counts shared pages once)",
                     f"{report['peak_pss_with_child_mb']:.0f} MB (app alone: RSS {report['peak_rss_mb']:.0f} MB, "
                     f"anonymous {report['peak_anon_rss_mb']:.0f} MB; private of both "
                     f"{report['peak_uss_with_child_mb']:.0f} MB)", "< 1536 MB",
                     report["peak_pss_with_child_mb"] < 1536))
    print(f"model: {model_desc}; worker threads {report['worker_threads']}, busy "
          f"{100 * report['worker_busy_fraction']:.0f}% of the run; played {report['frames_per_second']:.0f} frames/s")
    for name, value, target, ok in rows:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}  (target {target})")
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    if json_path:
        json_path.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    sys.exit(main())
