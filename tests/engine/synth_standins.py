"""Tiny stand-ins for the real Debian packages, so tests download nothing: a Hydrogen kit with generated samples,
and fake ``.deb`` packages (built with ``dpkg-deb``) holding short generated OGG "instrumentals"."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data.real.splits import SPLIT_NAMES, split_of

SR = 44100
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb (Debian's dpkg) not installed")

KIT_XML_LAYERS = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Tiny Kit</name>
 <license>CC0-1.0 (generated for tests)</license>
 <instrumentList>
  <instrument><id>0</id><name>Kick</name><gain>1</gain><volume>1</volume><pan_L>1</pan_L><pan_R>1</pan_R>
   <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>kick_hard_a.wav</filename><min>0.5</min><max>1</max><gain>1</gain></layer>
   <layer><filename>kick_hard_b.wav</filename><min>0.5</min><max>1</max><gain>1</gain></layer>
  </instrument>
  <instrument><id>1</id><name>Snare Rock</name><gain>1</gain><volume>0.8</volume><pan_L>1</pan_L><pan_R>0.5</pan_R>
   <instrumentComponent><layer><filename>snare.wav</filename><min>0</min><max>1</max><gain>1</gain></layer>
   </instrumentComponent>
  </instrument>
  <instrument><id>2</id><name>Hi-Hat Closed</name><layer><filename>hat.wav</filename></layer></instrument>
  <instrument><id>3</id><name>Hi-Hat Open</name><layer><filename>open.wav</filename></layer></instrument>
  <instrument><id>4</id><name>Snare Roll</name><layer><filename>snare.wav</filename></layer></instrument>
 </instrumentList>
</drumkit_info>
"""

KIT_XML_FLAT = """<drumkit_info>
 <name>Flat Kit</name>
 <license>GPL</license>
 <instrumentList>
  <instrument><id>0</id><filename>kick_soft.wav</filename><name>Kick 1</name><volume>1</volume></instrument>
  <instrument><id>1</id><filename>snare.wav</filename><name>Clap 1</name><volume>1</volume></instrument>
  <instrument><id>2</id><filename>hat.wav</filename><name>Closed HH 1</name><volume>1</volume></instrument>
 </instrumentList>
</drumkit_info>
"""


def _decay(freq: float, seconds: float, amp: float, seed: int, noise: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = amp * np.exp(-t * 12.0) * (np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size))
    return np.stack([x, 0.9 * x]).astype(np.float32)


def write_tiny_kit(folder: Path, flat: bool = False) -> Path:
    """A Hydrogen kit in ``folder``: kick (a soft layer, two round-robin hard layers), snare, hats."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = {"kick_soft.wav": _decay(60, 0.4, 0.3, 1), "kick_hard_a.wav": _decay(60, 0.4, 0.9, 2),
               "kick_hard_b.wav": _decay(62, 0.4, 0.85, 3), "snare.wav": _decay(200, 0.3, 0.6, 4, 1.0),
               "hat.wav": _decay(8000, 0.1, 0.3, 5, 2.0), "open.wav": _decay(7000, 0.8, 0.3, 6, 2.0)}
    for name, x in samples.items():
        sf.write(str(folder / name), x.T, SR, subtype="PCM_16")
    (folder / "drumkit.xml").write_text(KIT_XML_FLAT if flat else KIT_XML_LAYERS)
    return folder


def piece_names() -> dict[str, str]:
    """One piece name per real split (found by the split hash itself)."""
    found: dict[str, str] = {}
    for i in range(500):
        name = f"tune_{i:03d}"
        found.setdefault(split_of("wesnoth-1.16-music", name), name)
        if len(found) == len(SPLIT_NAMES):
            break
    return found


def _tune(seconds: float, seed: int) -> np.ndarray:
    """A few chords of decaying partials: a stand-in "instrumental" (stereo)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for k in range(int(seconds * 2)):
        f0 = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
        env = np.exp(-np.maximum(t - 0.5 * k, 0) * 3.0) * (t >= 0.5 * k)
        x += env * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
    x *= 0.2 / max(np.abs(x).max(), 1e-9)
    return np.stack([x, np.roll(x, 50)]).astype(np.float32)


def _build_deb(root: Path, package: str, debs: Path) -> Path:
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 0.0-test\nArchitecture: all\nMaintainer: tests <t@example.org>\n"
        f"Description: stand-in for tests\n")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(f"Stand-in copyright of {package} (tests)\nLicense: CC0-1.0\n")
    debs.mkdir(parents=True, exist_ok=True)
    deb = debs / f"{package}_0.0-test_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


def make_fake_debs(work: Path, seconds: float = 24.0) -> Path:
    """Fake ``wesnoth-1.16-music`` (one tune per split, a "choir" and a stinger) and ``hydrogen-drumkits`` (the
    tiny kit) packages in ``work/debs``; returns that folder."""
    debs = work / "debs"
    music = work / "src_music" / "usr/share/games/wesnoth/1.16/data/core/music"
    music.mkdir(parents=True)
    names = piece_names()
    for k, name in enumerate(sorted(names.values())):
        sf.write(str(music / f"{name}.ogg"), _tune(seconds, k).T, SR, format="OGG", subtype="VORBIS")
    sf.write(str(music / "nunc_dimittis.ogg"), _tune(seconds, 99).T, SR, format="OGG", subtype="VORBIS")
    sf.write(str(music / "victory.ogg"), _tune(5.0, 98).T, SR, format="OGG", subtype="VORBIS")
    _build_deb(work / "src_music", "wesnoth-1.16-music", debs)
    write_tiny_kit(work / "src_kits" / "usr/share/hydrogen/data/drumkits" / "TinyKit")
    _build_deb(work / "src_kits", "hydrogen-drumkits", debs)
    return debs


def make_fake_real(work: Path, seconds: float = 24.0) -> Path:
    """A fetched real-audio folder made by ``fetch_real_audio`` from the fake packages; returns it."""
    from engine.data.real.fetch import fetch_real_audio

    debs = make_fake_debs(work, seconds)
    out = work / "real"
    fetch_real_audio(out, packages=["wesnoth-1.16-music", "hydrogen-drumkits"], debs=debs, workers=1)
    return out
