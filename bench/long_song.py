"""Memory of ``shotoku separate`` on long songs: peak RSS must grow with the input, not with the stems.

The CLI loads the mixture, then streams finished blocks to the stem files, so its peak memory should be about
the decoded mixture plus one chunk, whatever the song's length. This benchmark writes an N-minute stereo FLAC,
separates it in a subprocess with a test model, samples the subprocess's RSS, and prints the peak next to the
size of the decoded input (the baseline measured in the same run) and the size that holding all four stems
would need.

    .venv/bin/python bench/long_song.py --minutes 10 60 --model tiny
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100


def write_song(path: Path, minutes: float) -> int:
    """Write a stereo FLAC of ``minutes`` (a chord with a slow tremolo) block by block; returns n_samples."""
    n_samples = int(minutes * 60 * RATE)
    block = RATE * 30
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16", format="FLAC") as f:
        for start in range(0, n_samples, block):
            t = np.arange(start, min(n_samples, start + block)) / RATE
            chord = sum(np.sin(2 * np.pi * f0 * t) for f0 in (110.0, 138.6, 164.8)) / 4
            tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t)
            f.write(np.stack([chord * tremolo, chord * (1 - 0.3 * tremolo)], axis=1).astype(np.float32))
    return n_samples


def peak_rss(command: list[str]) -> tuple[int, float, int]:
    """Run ``command``; returns (exit code, wall seconds, peak RSS in bytes sampled every 50 ms)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    handle = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, handle.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    _, err = process.communicate()
    if process.returncode:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return process.returncode, time.perf_counter() - started, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args()
    gib = 1024**3
    print("| song | model | wall s | x real time | peak RSS GiB | decoded input GiB | 4 stems in RAM would be GiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="shotoku-long-") as tmp:
        for minutes in args.minutes:
            song = Path(tmp) / f"long_{minutes:g}min.flac"
            n_samples = write_song(song, minutes)
            code, wall, peak = peak_rss(
                [sys.executable, "-m", "engine", "separate", str(song), "--model", args.model,
                 "-o", str(Path(tmp) / "out"), "--format", "flac"]
            )
            if code:
                print(f"separate failed with exit code {code}", file=sys.stderr)
                return 1
            decoded = n_samples * 2 * 4
            print(f"| {minutes:g} min | {args.model} | {wall:.1f} | {minutes * 60 / wall:.1f} | {peak / gib:.2f} | "
                  f"{decoded / gib:.2f} | {4 * decoded / gib:.2f} |")
            for f in (Path(tmp) / "out").rglob("*.flac"):
                f.unlink()
            song.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
