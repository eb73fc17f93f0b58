"""Drum grooves on a step grid, in several styles, for the General MIDI percussion channel.

A groove is a dict ``{gm_pitch: "X.x.o..."}`` with one character per step (16 steps per 4/4 bar, 12 per 3/4 bar):
``X`` accent, ``x`` normal hit, ``o`` ghost note, ``.`` rest.
"""

from __future__ import annotations

import numpy as np

KICK, RIM, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, PEDAL_HAT = 36, 37, 38, 39, 42, 46, 44
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, RIDE_BELL, TAMBOURINE, COWBELL = 45, 47, 50, 49, 51, 53, 54, 56
SHAKER, CLAVES, CONGA_HI, CONGA_LO = 82, 75, 62, 64

#: GM drum kits of FluidR3_GM (bank 128 presets) and the styles they suit.
KITS: dict[str, tuple[int, ...]] = {
    "rock": (0, 8, 16), "pop": (0, 8, 24), "funk": (0, 8), "disco": (0, 24, 25), "hiphop": (25, 24, 0),
    "halftime": (0, 16, 8), "shuffle": (0, 8, 32), "jazz": (32, 40), "bossa": (32, 40, 0),
    "reggae": (0, 8), "ballad": (0, 40, 8), "electronic": (25, 24), "waltz": (0, 32, 40), "punk": (16, 0),
}

STYLES_44: dict[str, dict[int, str]] = {
    "rock": {KICK: "X.....x.X.......", SNARE: "....X.......X...", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
    "pop": {KICK: "X.....x...X.....", SNARE: "....X.......X...", CLOSED_HAT: "xoxoxoxoxoxoxoxo",
            TAMBOURINE: "....x.......x..."},
    "funk": {KICK: "X..x..x...X..x..", SNARE: "....X..o.o..X..o", CLOSED_HAT: "xxxxxxxxxxxxxxxx"},
    "disco": {KICK: "X...X...X...X...", SNARE: "....X.......X...", OPEN_HAT: "..x...x...x...x.",
              CLOSED_HAT: "x...x...x...x..."},
    "hiphop": {KICK: "X......x..X.....", SNARE: "....X.......X...", CLOSED_HAT: "x.x.x.x.x.xxx.x."},
    "halftime": {KICK: "X.......x.x.....", SNARE: "........X.......", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
    "shuffle": {KICK: "X.....x.X.....x.", SNARE: "....X.......X...", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
    "jazz": {RIDE: "x...x.x.x...x.x.", PEDAL_HAT: "....x.......x...", KICK: "o.......o.......",
             SNARE: "......o.......o."},
    "bossa": {KICK: "x..x....x..x....", RIM: "x..x..x...x..x..", CLOSED_HAT: "xxxxxxxxxxxxxxxx"},
    "reggae": {KICK: "........X.......", RIM: "........X.......", CLOSED_HAT: "..x...x...x...x."},
    "ballad": {KICK: "X.......x.x.....", SNARE: "....x.......x...", CLOSED_HAT: "x...x...x...x..."},
    "electronic": {KICK: "X...X...X...X...", CLAP: "....X.......X...", CLOSED_HAT: "..x...x...x...x.",
                   SHAKER: "xoxoxoxoxoxoxoxo"},
    "punk": {KICK: "X.x.X.x.X.x.X.x.", SNARE: "..X...X...X...X.", CRASH: "x...x...x...x..."},
}
STYLES_34: dict[str, dict[int, str]] = {
    "waltz": {KICK: "X...........", SNARE: "....x...x...", CLOSED_HAT: "x.x.x.x.x.x."},
    "jazz": {RIDE: "x...x.x.x.x.", PEDAL_HAT: "....x...x...", KICK: "o..........."},
    "ballad": {KICK: "X.......x...", SNARE: "....x.......", CLOSED_HAT: "x...x...x..."},
}
VELOCITY = {"X": 112, "x": 88, "o": 48}
#: Styles that sound swung (the composer then swings every part).
SWUNG = frozenset({"shuffle", "jazz"})


def styles_for_meter(beats_per_bar: int) -> list[str]:
    """The groove names available for 4/4 (``4``) or 3/4 (``3``)."""
    return sorted(STYLES_44 if beats_per_bar == 4 else STYLES_34)


def drum_bar(
    style: str, beats_per_bar: int, rng: np.random.Generator, *, fill: bool, crash: bool, energy: float
) -> list[tuple[float, int, int]]:
    """The hits of one bar: ``(beat_position, gm_pitch, velocity)`` with positions in beats (0 <= pos < bar).

    ``fill`` replaces the last beat with a tom fill, ``crash`` adds a crash on the downbeat, ``energy`` (0..1)
    thins the hats when low and adds ghost notes when high.
    """
    grid = (STYLES_44 if beats_per_bar == 4 else STYLES_34)[style]
    n_steps = beats_per_bar * 4
    hits: list[tuple[float, int, int]] = []
    fill_from = n_steps - 4 if fill else n_steps
    for pitch, pattern in grid.items():
        for step, ch in enumerate(pattern[:n_steps]):
            if ch == "." or step >= fill_from:
                continue
            if pitch in (CLOSED_HAT, SHAKER) and energy < 0.35 and step % 4 != 0:
                continue
            if pitch in (CLOSED_HAT, SHAKER, RIDE) and rng.random() < 0.04:
                continue
            vel = VELOCITY[ch] + int(rng.integers(-10, 11))
            hits.append((step / 4.0, pitch, int(np.clip(vel, 20, 127))))
    if energy > 0.7 and style not in ("electronic", "jazz"):
        for step in range(n_steps):
            if step % 4 in (1, 3) and step < fill_from and rng.random() < 0.08:
                hits.append((step / 4.0, SNARE, int(rng.integers(30, 50))))
    if fill:
        toms = [HIGH_TOM, HIGH_TOM, MID_TOM, MID_TOM, LOW_TOM, LOW_TOM, SNARE, SNARE]
        pattern = int(rng.integers(0, 3))
        for i, step in enumerate(range(fill_from, n_steps)):
            pitch = SNARE if pattern == 0 else toms[(2 * i + pattern) % len(toms)]
            hits.append((step / 4.0, pitch, int(rng.integers(80, 118))))
        hits.append((fill_from / 4.0, KICK, 100))
    if crash:
        hits.append((0.0, CRASH, int(rng.integers(90, 120))))
        if not any(p == KICK and pos == 0.0 for pos, p, _ in hits):
            hits.append((0.0, KICK, 105))
    return hits
