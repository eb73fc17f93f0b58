"""Measure per-stem loudness statistics of a local MUSDB18-HQ copy for ``shotoku dataset synth --loudness-stats``.

For each track of the split: the integrated loudness (ITU-R BS.1770, pyloudnorm) of the mixture and of each stem;
the JSON written holds the mixture's mean/std LUFS (as ``mix_lufs.musdb18hq``) and each stem's loudness minus
its mixture's, mean/std in LU (``stem_relative_lu``); silent stems (below -70 LUFS) are left out of their stem's
figures. The generator's built-in stem figures are assumed ones (see engine/data/synth/loudness.py): run this
where MUSDB18-HQ is at hand and pass the file to replace them.

    .venv/bin/python scripts/musdb_loudness.py --root /data/musdb18hq --split train --out musdb_loudness.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.data.musdb import ALL_STEMS, iter_tracks
from engine.data.synth.loudness import SILENT_LUFS, lufs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="MUSDB18-HQ folder (root/<split>/<track>/*.wav)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    mix_values: list[float] = []
    rel: dict[str, list[float]] = {s: [] for s in ALL_STEMS}
    for name, mixture, stems, rate in iter_tracks(args.root, args.split, ALL_STEMS):
        m = lufs(mixture, rate)
        mix_values.append(m)
        for s, x in stems.items():
            value = lufs(x, rate)
            if value > SILENT_LUFS:
                rel[s].append(value - m)
        print(f"{name}: mix {m:.2f} LUFS, " + ", ".join(f"{s} {rel[s][-1]:+.2f}" for s in ALL_STEMS if rel[s]))
    stats = {
        "source": f"measured with scripts/musdb_loudness.py on {args.root.name}/{args.split} ({len(mix_values)} tracks)",
        "mix_lufs": {"musdb18hq": [round(float(np.mean(mix_values)), 3), round(float(np.std(mix_values)), 3)]},
        "stem_relative_lu": {s: [round(float(np.mean(v)), 3), round(float(np.std(v)), 3)] for s, v in rel.items() if v},
    }
    args.out.write_text(json.dumps(stats, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
