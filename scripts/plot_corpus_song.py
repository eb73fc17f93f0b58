"""Plot the spectrograms of one corpus track's stems (and its mixture) into a PNG.

    .venv/bin/python scripts/plot_corpus_song.py --track corpus/train/train_0003 --manifest corpus/manifest.json \\
        --out docs/screenshots/corpus_song_stems.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import stft

ORDER = ("mixture", "vocals", "drums", "bass", "other", "accompaniment")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--track", type=Path, required=True, help="a track folder of the corpus")
    parser.add_argument("--manifest", type=Path, default=None, help="the corpus manifest (for the caption)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-hz", type=float, default=16000.0)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ORDER if (args.track / f"{n}.wav").is_file()]
    caption = args.track.name
    if args.manifest is not None:
        entry = next(e for e in json.loads(args.manifest.read_text())["tracks"] if e["name"] == args.track.name)
        mix = entry["mixing"]
        drums = mix["timbres"].get("drums", {})
        layers = ", ".join(sorted({x["kind"] for x in mix.get("singers", {}).get("layers", [])})) or "lead only"
        caption = (f"{args.track.name}: {entry['song']['drum_style']} groove at {entry['song']['tempo']:.0f} BPM, "
                   f"drums: {drums.get('kit') or drums.get('sfont')}, voice: {mix['voice']} ({layers}), "
                   f"master {mix['master']['mix_lufs']} LUFS")
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.1 * len(names)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        x, rate = sf.read(str(args.track / f"{name}.wav"), dtype="float32", always_2d=True)
        f, t, z = stft(x.mean(axis=1), fs=rate, nperseg=2048, noverlap=1536)
        db = 20 * np.log10(np.abs(z) + 1e-7)
        keep = f <= args.max_hz
        ax.imshow(db[keep], origin="lower", aspect="auto", cmap="magma", vmin=-100, vmax=-20,
                  extent=(float(t[0]), float(t[-1]), 0.0, float(f[keep][-1]) / 1000), interpolation="antialiased")
        ax.set_ylabel(f"{name}\nkHz")
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=72)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
