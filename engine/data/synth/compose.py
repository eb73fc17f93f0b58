"""Procedural song composer: form, harmony, drums, bass, accompaniment and a singable lead melody with lyrics.

Everything is drawn from one ``numpy.random.Generator``, so a seed fixes the whole song. Times are in seconds
after :func:`compose` (swing and small timing humanisation already applied).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from engine.data.synth import drums as dr
from engine.data.synth.harmony import Chord, Key, random_key, random_progression

#: General MIDI programs per accompaniment role (the "other" stem); 60+ distinct programs in rotation.
OTHER_PROGRAMS: dict[str, tuple[int, ...]] = {
    "comp": (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29, 30, 11, 61, 62, 21, 15),
    "pad": (48, 49, 50, 51, 44, 89, 88, 90, 92, 93, 94, 95, 19, 20, 61, 23, 42),
    "arp": (46, 8, 9, 10, 11, 12, 13, 80, 81, 24, 25, 0, 4, 14, 105, 107, 108, 86),
    "counter": (56, 57, 60, 64, 65, 66, 67, 68, 71, 73, 74, 40, 22, 80, 81, 84, 69, 70, 41),
}
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43)
BACKING_PROGRAMS = (52, 53)  # Choir Aahs, Voice Oohs: backing vocals (vocals stem)
BASS_STYLES = ("root", "eighths", "root_fifth", "syncopated", "octave", "walking")

SECTION_ENERGY = {"intro": 0.3, "verse": 0.55, "chorus": 0.9, "bridge": 0.6, "outro": 0.4}

#: Short, open-vowelled words that sing well (one word per note).
WORDS = (
    "love", "night", "light", "day", "way", "home", "heart", "time", "sky", "fire", "rain", "sun", "dream",
    "free", "fly", "high", "low", "go", "know", "so", "stay", "say", "run", "come", "one", "all", "fall",
    "call", "you", "me", "we", "be", "see", "sea", "blue", "true", "through", "now", "down", "town", "sound",
    "round", "found", "ground", "soul", "gold", "cold", "hold", "road", "slow", "glow", "shine", "mine",
    "line", "fine", "eyes", "rise", "fly", "cry", "why", "my", "oh", "yeah", "hey", "la", "na", "dance",
    "stars", "far", "are", "heart", "alone", "away", "again", "tonight", "believe", "forever", "morning",
    "river", "ocean", "golden", "shadow", "open", "hello", "baby", "only", "feeling", "falling", "wonder",
)


@dataclass
class Note:
    """One note: start/end in seconds, MIDI pitch, MIDI velocity."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument part rendered into ``stem``; ``bank``/``program`` select the preset of SoundFont ``sfont``
    (a name of the renderer's banks; ``None``: its default bank), ``kit`` a recorded Hydrogen kit for drums."""

    name: str
    stem: str
    program: int
    bank: int = 0
    is_drum: bool = False
    notes: list[Note] = field(default_factory=list)
    sfont: str | None = None
    kit: str | None = None


@dataclass
class SungNote:
    """One sung note: times in seconds, MIDI pitch, the word, and whether it continues the previous word."""

    start: float
    end: float
    pitch: int
    word: str
    slur: bool = False


@dataclass
class Song:
    """A composed song: global parameters, the instrument parts and the lead vocal line."""

    seed: int
    tempo: float
    key: str
    beats_per_bar: int
    swing: float
    drum_style: str
    drum_kit: int
    bass_style: str
    sections: list[tuple[str, float, float]]  # (name, start_seconds, end_seconds)
    n_seconds: float
    parts: list[Part]
    melody: list[SungNote]
    voice_range: tuple[int, int]

    def summary(self) -> dict:
        """JSON-ready description (no notes) for the manifest."""
        d = asdict(self)
        d.pop("melody")
        d["parts"] = [{k: v for k, v in p.items() if k != "notes"} | {"n_notes": len(p["notes"])} for p in d["parts"]]
        d["n_sung_notes"] = len(self.melody)
        return d


class _Clock:
    """Beats to seconds, with swing on off-beat eighths and a little timing jitter."""

    def __init__(self, tempo: float, swing: float, jitter: float, rng: np.random.Generator) -> None:
        self.spb = 60.0 / tempo
        self.swing = swing
        self.jitter = jitter
        self.rng = rng

    def __call__(self, beat: float, humanise: bool = True) -> float:
        whole = np.floor(beat)
        f = beat - whole
        r = self.swing
        warped = f / 0.5 * r if f < 0.5 else r + (f - 0.5) / 0.5 * (1 - r)
        t = (whole + warped) * self.spb
        if humanise and self.jitter > 0:
            t += float(self.rng.normal(0, self.jitter))
        return max(t, 0.0)


def _form(rng: np.random.Generator, n_bars_needed: int, short: bool) -> list[tuple[str, int]]:
    form: list[tuple[str, int]] = []
    if rng.random() < 0.7 and not short:  # short excerpts start on the verse, so every stem sounds
        form.append(("intro", int(rng.choice([2, 4]))))
    cycle = [("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("bridge", 4), ("chorus", 8)]
    i = 0
    while sum(n for _, n in form) < n_bars_needed:
        form.append(cycle[i % len(cycle)])
        i += 1
    form.append(("outro", 4))
    return form


def _melody_phrase(
    rng: np.random.Generator, key: Key, chords: list[Chord], low: int, high: int, bpb: int, start_pitch: int
) -> list[tuple[float, float, int]]:
    """A two-bar phrase (one bar per chord): notes ``(beat, dur, pitch)`` relative to the phrase start."""
    rhythms4 = [
        [(0, 1), (1, 1), (2, 1), (3, 1)], [(0, 1.5), (1.5, 0.5), (2, 2)], [(0.5, 0.5), (1, 1), (2, 1), (3, 1)],
        [(0, 0.5), (0.5, 0.5), (1, 1), (2, 2)], [(0, 1), (1, 0.5), (1.5, 0.5), (2, 1.5)], [(1, 1), (2, 1), (3, 1)],
        [(0, 2), (2, 1), (3, 1)], [(0, 0.5), (0.5, 1), (1.5, 0.5), (2, 1), (3, 1)],
    ]
    rhythms3 = [[(0, 1), (1, 1), (2, 1)], [(0, 2), (2, 1)], [(0, 1.5), (1.5, 0.5), (2, 1)], [(1, 1), (2, 1)]]
    scale = key.scale_pitches(low, high)
    notes: list[tuple[float, float, int]] = []
    pitch = start_pitch
    for bar, chord in enumerate(chords):
        if bar == len(chords) - 1:  # phrase end: a long note on a chord tone, then a rest
            rhythm = [(0, 1), (1, bpb - 2)] if rng.random() < 0.5 else [(0, bpb - 1.0)]
        else:
            rhythm = (rhythms4 if bpb == 4 else rhythms3)[int(rng.integers(0, 4 if bpb == 3 else 8))]
        for beat, dur in rhythm:
            strong = beat in (0, 2) if bpb == 4 else beat == 0
            idx = int(np.argmin([abs(p - pitch) for p in scale]))
            step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3], p=[.08, .22, .1, .1, .22, .1, .08, .05, .05]))
            idx = int(np.clip(idx + step, 0, len(scale) - 1))
            cand = scale[idx]
            if strong or dur >= 1.5:
                tones = [p for p in scale if p % 12 in chord.tones]
                cand = min(tones, key=lambda p: abs(p - cand))
            pitch = cand
            notes.append((bar * bpb + beat, dur, pitch))
    return notes


def compose(
    seed: int, n_seconds: float, *, tempo: float | None = None, style: str | None = None, key: Key | None = None,
    female: bool | None = None, form: list[tuple[str, int]] | None = None,
    parts: list[tuple[str, int]] | None = None, bass: tuple[str, int] | None = None,
) -> Song:
    """Compose a song of at least ``n_seconds`` from ``seed`` (rendering cuts it to exactly ``n_seconds``).

    Keyword arguments pin choices that are otherwise random (the demo song uses them): ``tempo`` (BPM),
    ``style`` (a 4/4 groove of :mod:`drums`), ``key``, ``female`` (lead voice), ``form`` (``[(section, n_bars)]``),
    ``parts`` (accompaniment ``[(role, gm_program)]``) and ``bass`` (``(bass_style, gm_program)``).
    """
    rng = np.random.default_rng(seed)
    bpb = 4 if rng.random() < 0.85 or style in dr.STYLES_44 and style not in dr.STYLES_34 else 3
    drawn_style = str(rng.choice(dr.styles_for_meter(bpb)))
    style = style if style is not None else drawn_style
    if tempo is None:
        tempo = float(rng.uniform(60, 180))
        if style in ("ballad",) and tempo > 110:
            tempo = tempo * 0.6
    swing = float(rng.uniform(0.6, 0.67)) if style in dr.SWUNG or rng.random() < 0.12 else 0.5
    drawn_key = random_key(rng)
    key = key if key is not None else drawn_key
    jitter = 0.0 if style == "electronic" else 0.004
    clock = _Clock(tempo, swing, jitter, rng)
    bar_s = bpb * 60.0 / tempo
    n_bars_needed = int(np.ceil(n_seconds / bar_s)) + 1
    drawn_form = _form(rng, n_bars_needed, short=n_seconds < 30)
    form = form if form is not None else drawn_form
    progs = {name: random_progression(rng, key, 4) for name in ("verse", "chorus", "bridge")}
    progs["intro"] = progs["outro"] = progs["verse"]
    kit = int(rng.choice(dr.KITS.get(style, (0,))))

    # Voice range: male (A2-F4) or female (F3-C5) lead, chosen by the vocal renderer from this range.
    drawn_female = rng.random() < 0.5
    female = drawn_female if female is None else female
    low = int(rng.integers(53, 57)) if female else int(rng.integers(45, 49))
    voice_range = (low, low + int(rng.integers(12, 16)))

    drums = Part("drums", "drums", program=kit, bank=128, is_drum=True)
    bass_style = str(rng.choice(BASS_STYLES if swing > 0.5 else BASS_STYLES[:5]))
    bass_part = Part("bass", "bass", program=int(rng.choice(BASS_PROGRAMS)))
    if bass is not None:
        bass_style, bass_part.program = bass
    n_other = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.3, 0.2]))
    roles = ["comp"] + [str(r) for r in rng.choice(["pad", "arp", "comp", "counter"], size=n_other - 1)]
    others = []
    for i, role in enumerate(roles):
        program = int(rng.choice(OTHER_PROGRAMS[role]))
        others.append((role, Part(f"other{i}_{role}", "other", program=program)))
    if parts is not None:
        others = [(role, Part(f"other{i}_{role}", "other", program=prog)) for i, (role, prog) in enumerate(parts)]
    backing = Part("backing", "vocals", program=int(rng.choice(BACKING_PROGRAMS))) if rng.random() < 0.5 else None
    section_sets = {p.name: {"verse", "chorus"} | {s for s in ("intro", "bridge", "outro") if rng.random() < 0.6}
                    for _, p in others}
    melody: list[SungNote] = []
    phrase_bank: dict[str, list[tuple[float, float, int]]] = {}
    sections: list[tuple[str, float, float]] = []
    bar0 = 0

    def add(part: Part, beat: float, dur: float, pitch: int, vel: int) -> None:
        t0 = clock(beat)
        t1 = max(clock(beat + dur, humanise=False) - 0.01, t0 + 0.03)
        part.notes.append(Note(t0, t1, int(pitch), int(np.clip(vel, 1, 127))))

    for s_index, (section, n_bars) in enumerate(form):
        energy = SECTION_ENERGY[section]
        sections.append((section, clock(bar0 * bpb, False), clock((bar0 + n_bars) * bpb, False)))
        for b in range(n_bars):
            beat0 = (bar0 + b) * bpb
            chord = progs[section][b % 4]
            # Drums
            fill = b == n_bars - 1 and s_index < len(form) - 1
            for pos, pitch, vel in dr.drum_bar(style, bpb, rng, fill=fill, crash=b == 0 and section != "intro",
                                               energy=energy):
                add(drums, beat0 + pos, 0.25, pitch, int(vel * (0.8 + 0.25 * energy)))
            # Bass
            root = 28 + (chord.root - 28) % 12
            if root < 33:
                root += 12
            fifth = root + 7
            bvel = int(75 + 30 * energy)
            if section == "intro" and energy < 0.4 and rng.random() < 0.5:
                add(bass_part, beat0, bpb - 0.1, root, bvel)
            elif bass_style == "root":
                add(bass_part, beat0, bpb / 2, root, bvel)
                add(bass_part, beat0 + bpb / 2, bpb / 2, root if rng.random() < 0.7 else fifth, bvel - 8)
            elif bass_style == "eighths":
                for k in range(bpb * 2):
                    add(bass_part, beat0 + k / 2, 0.45, root, bvel - (0 if k % 2 == 0 else 12))
            elif bass_style == "root_fifth":
                for k in range(bpb):
                    add(bass_part, beat0 + k, 0.9, root if k % 2 == 0 else fifth, bvel)
            elif bass_style == "octave":
                for k in range(bpb * 2):
                    add(bass_part, beat0 + k / 2, 0.4, root + (12 if k % 2 else 0), bvel)
            elif bass_style == "syncopated":
                for pos, dur in ((0, 0.75), (0.75, 0.5), (1.5, 0.5), (2.5, 0.5), (3, 0.5), (3.5, 0.5)):
                    if pos < bpb:
                        add(bass_part, beat0 + pos, dur, root if rng.random() < 0.75 else fifth, bvel)
            else:  # walking: chord tones and approach notes on every beat
                line = [root] + [root + [3, 4, 7, 10, 12, 5][int(rng.integers(0, 6))] for _ in range(bpb - 1)]
                for k, p in enumerate(line):
                    add(bass_part, beat0 + k, 0.95, p, bvel - 5 * (k % 2))
            # Accompaniment ("other")
            for role, part in others:
                if section not in section_sets[part.name]:
                    continue
                vel = int(55 + 40 * energy + rng.integers(-6, 7))
                if role == "comp":
                    voicing = chord.voicing(int(rng.integers(52, 60)), int(rng.integers(3, 5)), rng)
                    pattern = [(k, 1.0) for k in range(bpb)] if energy > 0.5 else [(0, bpb / 2), (bpb / 2, bpb / 2)]
                    if part.program in (24, 25, 26, 27, 28, 29, 30) and energy > 0.5:
                        pattern = [(0, 1.0), (1.5, 0.5), (2, 1.0), (3, 0.5), (3.5, 0.5)][: bpb + 1]
                    for pos, dur in pattern:
                        for j, p in enumerate(voicing):
                            add(part, beat0 + pos + 0.012 * j, dur * 0.95, p, vel - 4 * j)
                elif role == "pad":
                    for p in chord.voicing(int(rng.integers(55, 64)), 3):
                        add(part, beat0, bpb * 0.98, p, vel - 12)
                elif role == "arp":
                    tones = chord.voicing(int(rng.integers(60, 70)), 4)
                    step = 0.5 if tempo > 110 else 0.25
                    for k in range(int(bpb / step)):
                        add(part, beat0 + k * step, step * 0.9, tones[k % 4] if k % 8 < 4 else tones[3 - k % 4],
                            vel - 10)
                elif role == "counter" and section in ("intro", "bridge", "outro") or (
                    role == "counter" and b % 4 == 3
                ):
                    tones = [p for p in key.scale_pitches(67, 84)]
                    p = int(rng.choice(tones))
                    for k in range(bpb):
                        if rng.random() < 0.7:
                            p = tones[int(np.clip(tones.index(p) + rng.integers(-2, 3), 0, len(tones) - 1))]
                            add(part, beat0 + k, 0.9, p, vel - 8)
            if backing is not None and section == "chorus":
                for p in chord.voicing(int(rng.integers(60, 65)), 3):
                    add(backing, beat0, bpb * 0.97, p, 62)
        # Lead vocal: two-bar phrases, one per two bars, a rest between; melody repeats within a section type
        if section in ("verse", "chorus", "bridge"):
            shift = 3 if section == "chorus" else 0
            lo, hi = voice_range[0] + shift, voice_range[1]
            for ph in range(0, n_bars - 1, 2):
                bank_key = f"{section}{ph % 4}"
                if bank_key not in phrase_bank or rng.random() < 0.25:
                    chords = [progs[section][ph % 4], progs[section][(ph + 1) % 4]]
                    start = int(rng.integers(lo + 2, hi - 3))
                    phrase_bank[bank_key] = _melody_phrase(rng, key, chords, lo, hi, bpb, start)
                prev_word = None
                for beat, dur, pitch in phrase_bank[bank_key]:
                    slur = prev_word is not None and rng.random() < 0.12
                    word = prev_word if slur and prev_word else str(rng.choice(WORDS))
                    t0 = clock((bar0 + ph) * bpb + beat)
                    t1 = clock((bar0 + ph) * bpb + beat + dur, humanise=False)
                    melody.append(SungNote(t0, t1 - 0.02, int(pitch), word, slur=bool(slur)))
                    prev_word = word
        bar0 += n_bars

    all_parts = [drums, bass_part] + [p for _, p in others] + ([backing] if backing is not None else [])
    return Song(
        seed=seed, tempo=round(tempo, 3), key=key.name, beats_per_bar=bpb, swing=round(swing, 3),
        drum_style=style, drum_kit=kit, bass_style=bass_style, sections=sections, n_seconds=float(n_seconds),
        parts=all_parts, melody=melody, voice_range=voice_range,
    )
