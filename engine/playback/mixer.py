"""The real-time mixing kernel: the body of the audio callback, and the control values it reads.

:class:`Mixer` owns every buffer the callback touches, allocated once in ``__init__``. :meth:`Mixer.render` fills
one output block ``(n_frames, n_out_channels)``: it allocates no array, takes no lock, logs nothing and never
touches torch. Control values (stem gains, master gain, transport requests) are plain attributes and small arrays
that the control side writes and the callback reads once per block; every change is ramped across the block, so
nothing jumps (Mixxx's rule: a jump clicks).

Signal flow for one block, per sample ``t``::

    stems_sum[c, t] = sum_s gain[s, c](t) * stems[s, c, pos + t]        # only over separated regions
    old_sum[c, t]   = sum_s gain[s, c](t) * fallback[s, c, pos + t]     # the replaced model's stems, if any
    mix[c, t]       = mixture[c, pos + t] + w(t) * (stems_sum[c, t] - mixture[c, pos + t])
                                          + v(t) * (old_sum[c, t] - mixture[c, pos + t])
    out[t, c]       = soft_clip(limiter(t) * master(t) * fade(t) * loop_env(t) * mix[c, t])

``w`` is the "separated" weight: it moves from 0 (original mixture) to 1 (stems) over ``fade_frames`` once every
region the next two blocks touch is ready, and back before the play position reaches a region that is not.
``v`` is the fallback weight, for a source that also carries the stems of the model it replaces (another model
was chosen while the song plays): where the new stems are not ready but the old ones are, ``v`` moves to 1 instead
of the mixture, so a muted stem stays muted across a model change; ``w + v <= 1`` at every sample, and every
switch between new stems, old stems and the mixture is the same ``fade_frames`` cross-fade.
``fade`` is the transport fade: pause, stop and seek fade out before the position changes and fade in after.
"""

from __future__ import annotations

import numpy as np

from engine.playback.mixsource import BUS_CHANNELS, MixerSource

__all__ = ["BUS_CHANNELS", "MODE_CROSSFADE", "MODE_FALLBACK", "MODE_MIXTURE", "MODE_STEMS", "Mixer", "MixerSource"]

#: What a block plays (bits of :meth:`Mixer._render_segment`'s ``mode``).
MODE_MIXTURE, MODE_STEMS, MODE_FALLBACK, MODE_CROSSFADE = 0, 1, 2, 4


def _towards(value: float, target: float, step: float) -> float:
    """``value`` moved towards ``target`` by at most ``step``."""
    if value < target:
        return min(target, value + step)
    return max(target, value - step)


class Mixer:
    """Preallocated real-time mixer for ``n_stems`` stereo stems into ``n_out_channels`` output channels.

    Control side (any thread): :meth:`set_gains` (or :meth:`set_stem_gains` and :attr:`master_target`),
    :meth:`set_source`, :meth:`request_play`, :meth:`request_pause`, :meth:`request_seek`, :meth:`set_loop`. Callback side:
    :meth:`render`. Published by the callback (read them from a timer): :attr:`position`, :attr:`levels`,
    :attr:`out_level`, :attr:`blocks`, :attr:`starved_blocks`, :attr:`at_end`, :attr:`separated_weight`,
    :attr:`fallback_weight`.

    Args:
        n_stems: number of stems.
        n_out_channels: channels of the output block (1: mono downmix; 2: stereo; more: the rest are silent).
        max_block: the largest block :meth:`render` fills (larger blocks are zero-filled and counted as starved).
        fade_frames: length of the transport fade and of the original-to-stems cross-fade, in frames.
        ceiling: the limiter keeps the output peak at or below this (linear).
        release_seconds: limiter release time (from full reduction back to unity).
        samplerate: output sample rate (for the limiter release).
    """

    def __init__(
        self,
        n_stems: int,
        n_out_channels: int = 2,
        max_block: int = 8192,
        fade_frames: int = 512,
        ceiling: float = 0.98,
        release_seconds: float = 0.3,
        samplerate: int = 44100,
    ) -> None:
        if n_stems < 1 or n_out_channels < 1 or max_block < 1:
            raise ValueError("n_stems, n_out_channels and max_block must be positive")
        self.n_stems = n_stems
        self.n_out_channels = n_out_channels
        self.max_block = max_block
        self.fade_frames = max(1, int(fade_frames))
        self.ceiling = float(ceiling)
        self.clip_threshold = 0.9 * self.ceiling
        self.release_per_frame = 1.0 / max(1.0, release_seconds * samplerate)
        f32 = np.float32
        # --- control values (written by the control side, read once per block) ---
        self.target_gain = np.ones((n_stems, BUS_CHANNELS), dtype=f32)  #: linear, mute/solo/pan resolved
        self.master_target = 1.0  #: linear master gain
        # (source, handover number): one attribute, so the callback reads a swapped source and its handover at once
        self._installed: tuple[MixerSource | None, int] = (None, 0)
        self._handover_done = 0
        self._generation = 0
        self._playing = False
        self._seek: tuple[int, int] = (0, 0)  # (request number, frame)
        self._loop: tuple[int, int] | None = None
        # --- callback state ---
        self._gain_prev = np.ones((n_stems, BUS_CHANNELS), dtype=f32)
        self._gain_cur = np.ones((n_stems, BUS_CHANNELS), dtype=f32)
        self._gain_delta = np.zeros((n_stems, BUS_CHANNELS), dtype=f32)
        self._master_prev = 1.0
        self._fade_prev = 0.0
        self._w_prev = 0.0
        self._v_prev = 0.0
        self._limit_prev = 1.0
        self._seek_done = 0
        self._loop_wrapped = False
        # --- scratch buffers ---
        self._index = np.arange(max_block, dtype=f32)
        self._ramp = np.zeros(max_block, dtype=f32)
        self._bus = np.zeros((BUS_CHANNELS, max_block), dtype=f32)
        self._abs = np.zeros((BUS_CHANNELS, max_block), dtype=f32)
        self._excess = np.zeros((BUS_CHANNELS, max_block), dtype=f32)
        self._env = np.zeros(max_block, dtype=f32)
        self._tmp = np.zeros(max_block, dtype=f32)
        self._wramp = np.zeros(max_block, dtype=f32)
        self._vramp = np.zeros(max_block, dtype=f32)
        self._bus_alt = np.zeros((BUS_CHANNELS, max_block), dtype=f32)
        self._block_peak = np.zeros(n_stems, dtype=f32)
        self._loopenv = np.ones(max_block, dtype=f32)
        self._scalar = np.zeros((), dtype=f32)
        # --- published by the callback ---
        self.position = 0  #: next frame to play (output-rate samples)
        self.levels = np.zeros(n_stems, dtype=f32)  #: per-stem peak of the last block, after gain
        self.out_level = 0.0  #: output peak of the last block, after the limiter
        self.limiter_gain = 1.0  #: the limiter's gain at the end of the last block
        self.separated_weight = 0.0  #: 0: original mixture audible, 1: stems audible
        self.fallback_weight = 0.0  #: share of the replaced model's stems (the source's fallback) audible
        self.blocks = 0  #: blocks rendered
        self.frames_rendered = 0  #: frames of every block rendered (silent ones too)
        self.starved_blocks = 0  #: blocks zero-filled because there was nothing to play
        self.at_end = False  #: True once the song ran out (not looping); cleared by play/seek

    # ------------------------------------------------------------------ control side
    def _check_stems(self, source: MixerSource) -> None:
        for stems in (source.stems, source.fallback):
            if stems is not None and stems.shape[0] != self.n_stems:
                raise ValueError(f"source has {stems.shape[0]} stems, mixer has {self.n_stems}")

    def set_source(self, source: MixerSource | None) -> None:
        """Play from ``source`` (stops playback and rewinds; the callback picks it up on its next block)."""
        if source is not None:
            self._check_stems(source)
        self._generation += 1  # a block being rendered from the old source must not write its state back
        self._playing = False
        self._installed = (None, self._handover_done)
        self._fade_prev = 0.0
        self._w_prev = 0.0
        self._v_prev = 0.0
        self.position = 0
        self._seek_done = self._seek[0]
        self._loop = None
        self.at_end = False
        self._installed = (source, self._handover_done)

    def swap_source(self, source: MixerSource, handover: bool = False) -> None:
        """Replace the source by another of the same song (same length): position, transport and cross-fades carry
        on. ``handover``: ``source.fallback`` is the stems the current source plays (another model was chosen):
        what was audible of them stays audible, now as the fallback, so nothing jumps."""
        current, pending = self._installed
        if current is None or current.n_frames != source.n_frames:
            raise ValueError("swap_source needs a source of the same length as the current one")
        self._check_stems(source)
        self._installed = (source, pending + 1 if handover else pending)

    @property
    def source(self) -> MixerSource | None:
        return self._installed[0]

    def set_stem_gains(self, gains: np.ndarray) -> None:
        """Set the effective linear gain of every stem on each bus channel, ``(n_stems, 2)``."""
        np.copyto(self.target_gain, np.asarray(gains, dtype=np.float32))

    def set_gains(self, gains: np.ndarray, master: float) -> None:
        """One mix update: every stem's bus gains ``(n_stems, 2)`` (linear, see
        :func:`engine.playback.mix.resolve_gains`) and the linear master gain; the next block ramps to both."""
        np.copyto(self.target_gain, np.asarray(gains, dtype=np.float32))
        self.master_target = float(master)

    def request_play(self) -> None:
        """Start or resume playing (fades in)."""
        self.at_end = False
        self._playing = True

    def request_pause(self) -> None:
        """Pause (fades out, keeps the position)."""
        self._playing = False

    @property
    def playing(self) -> bool:
        return self._playing

    def request_seek(self, frame: int) -> None:
        """Jump to ``frame``: the current sound fades out, the position changes, the new one fades in."""
        src = self._installed[0]
        limit = src.n_frames if src is not None else 0
        frame = int(min(max(0, frame), max(0, limit)))
        self.at_end = False
        self._seek = (self._seek[0] + 1, frame)

    @property
    def seek_pending(self) -> int | None:
        """The frame of a seek the callback has not carried out yet, else None."""
        number, frame = self._seek
        return frame if number != self._seek_done else None

    def set_loop(self, start: int | None, stop: int | None) -> None:
        """Loop ``[start, stop)`` in frames (None clears it). Crossing ``stop`` jumps to ``start``, with short fades."""
        if start is None or stop is None:
            self._loop = None
            return
        start, stop = int(start), int(stop)
        if stop - start < 2 * 64:
            raise ValueError("a loop must be at least 128 frames long")
        self._loop = (max(0, start), stop)

    @property
    def loop(self) -> tuple[int, int] | None:
        return self._loop

    @property
    def next_frame(self) -> int:
        """The frame the next :meth:`render` starts at (a pending seek's target once the sound has faded out)."""
        number, frame = self._seek
        return frame if number != self._seek_done and self._fade_prev == 0.0 else self.position

    def cut_to(self, frame: int, keep_seek: bool = False) -> None:
        """Callback side (the tempo/pitch path, :mod:`engine.playback.stretchpath`): continue at ``frame`` from
        silence (the transport fade restarts at 0, so the next block fades in); pending seeks are dropped unless
        ``keep_seek``. Allocation-free."""
        self.position = frame
        self._fade_prev = 0.0
        self._loop_wrapped = False
        if not keep_seek:
            self._seek_done = self._seek[0]

    # ------------------------------------------------------------------ callback side
    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` ``(n_frames, n_out_channels)`` float32 with the next block. Real-time safe."""
        n = out.shape[0]
        self.blocks += 1
        self.frames_rendered += n
        generation = self._generation
        src, handover = self._installed
        if handover != self._handover_done:  # the stems playing became the fallback: their weight moves with them
            self._v_prev = min(1.0, self._w_prev + self._v_prev)
            self._w_prev = 0.0
            self._handover_done = handover
        if src is None or n > self.max_block or n == 0:
            out.fill(0.0)
            self.starved_blocks += 1
            self.levels.fill(0.0)
            self.out_level = 0.0
            return
        # Transport: a pending seek happens once the sound has faded out.
        number, seek_frame = self._seek
        pending = number != self._seek_done
        if pending and self._fade_prev == 0.0:
            self.position = seek_frame
            self._seek_done = number
            self._loop_wrapped = False
            pending = False
        fade_target = 1.0 if (self._playing and not pending) else 0.0
        if self._fade_prev == 0.0 and fade_target == 0.0:
            out.fill(0.0)
            self.levels.fill(0.0)
            self.out_level = 0.0
            np.copyto(self._gain_prev, self.target_gain)
            self._master_prev = self.master_target
            return
        fade_next = _towards(self._fade_prev, fade_target, n / self.fade_frames)

        ramp = self._ramp[:n]
        np.multiply(self._index[:n], 1.0 / n, out=ramp)
        np.add(ramp, 1.0 / n, out=ramp)  # ramp[t] = (t + 1) / n: reaches the target on the last sample

        # Gains: snapshot the control values once, ramp from the previous block's values.
        np.copyto(self._gain_cur, self.target_gain)
        np.subtract(self._gain_cur, self._gain_prev, out=self._gain_delta)
        w_target, v_target = 0.0, 0.0
        if src.stems is not None and self._covered(src.ready, src.region_frames, src.n_regions, self.position, 2 * n):
            w_target = 1.0
        elif src.fallback is not None and self._covered(src.fallback_ready, src.fallback_region_frames,
                                                        src.n_fallback_regions, self.position, 2 * n):
            v_target = 1.0
        step = n / self.fade_frames
        w_prev, v_prev = self._w_prev, self._v_prev
        if src.stems is None:  # no stems (any more): their share is the mixture
            w_prev = 0.0
        if src.fallback is None:
            v_prev = 0.0
        w_next, v_next = _towards(w_prev, w_target, step), _towards(v_prev, v_target, step)
        wramp, vramp = self._wramp[:n], self._vramp[:n]
        np.multiply(ramp, w_next - w_prev, out=wramp)
        np.add(wramp, w_prev, out=wramp)
        np.multiply(ramp, v_next - v_prev, out=vramp)
        np.add(vramp, v_prev, out=vramp)

        if w_prev == 0.0 and w_next == 0.0 and v_prev == 0.0 and v_next == 0.0:
            mode = MODE_MIXTURE
        elif w_prev == 1.0 and w_next == 1.0:
            mode = MODE_STEMS
        elif v_prev == 1.0 and v_next == 1.0:
            mode = MODE_FALLBACK
        else:
            mode = MODE_CROSSFADE | (MODE_STEMS if w_prev or w_next else 0) | (MODE_FALLBACK if v_prev or v_next else 0)
        self._block_peak.fill(0.0)
        pos = self.position
        offset = 0
        loop = self._loop
        env_loop = False
        if loop is not None:
            self._loopenv[:n].fill(1.0)
        while offset < n:
            end = src.n_frames
            if loop is not None and pos < loop[1]:
                end = min(end, loop[1])
            count = min(n - offset, end - pos)
            if count <= 0:
                self._bus[:, offset:n].fill(0.0)
                self._playing = False
                self.at_end = True
                break
            self._render_segment(src, mode, pos, offset, count)
            if loop is not None and self._loop_envelope(loop, pos, offset, count):
                env_loop = True
            pos += count
            offset += count
            if loop is not None and pos == loop[1]:
                pos = loop[0]
                self._loop_wrapped = True
        self._finish(out, n, fade_next, env_loop)
        if generation != self._generation:  # set_source() ran meanwhile: its reset state wins
            return
        self.position = pos
        np.copyto(self._gain_prev, self._gain_cur)
        self._fade_prev = fade_next
        self._w_prev, self._v_prev = w_next, v_next
        self.separated_weight, self.fallback_weight = w_next, v_next
        np.copyto(self.levels, self._block_peak)

    def _covered(self, ready: np.ndarray | None, region_frames: int, n_regions: int, pos: int, span: int) -> bool:
        """True if ``ready`` flags every region in ``[pos, pos + span)`` (and near the loop start, if the loop end
        is near) on the ``region_frames`` grid. Plain loops over scalars: nothing is allocated."""
        if ready is None:
            return False
        first = pos // region_frames
        last = min(n_regions - 1, (pos + span - 1) // region_frames)
        for k in range(first, last + 1):
            if not ready[k]:
                return False
        loop = self._loop
        if loop is not None and pos < loop[1] <= pos + span:
            first = loop[0] // region_frames
            last = min(n_regions - 1, (loop[0] + span - 1) // region_frames)
            for k in range(first, last + 1):
                if not ready[k]:
                    return False
        return True

    def _render_segment(self, src: MixerSource, mode: int, pos: int, offset: int, count: int) -> None:
        """Mix frames ``[pos, pos + count)`` of ``src`` into ``self._bus[:, offset:offset + count]``.

        ``mode``: :data:`MODE_MIXTURE`, :data:`MODE_STEMS` or :data:`MODE_FALLBACK` alone (that source only), or
        :data:`MODE_CROSSFADE` with the bits of the stem sets that take part. Works row by row on 1-D contiguous
        slices: numpy's strided/multi-axis paths allocate iterator buffers.
        """
        stop = offset + count
        for c in range(BUS_CHANNELS):
            bus = self._bus[c, offset:stop]
            mixture = src.mixture[c, pos:pos + count]
            if mode == MODE_MIXTURE:
                np.copyto(bus, mixture)
            elif mode == MODE_STEMS:
                self._stem_sum(src.stems, bus, c, pos, offset, count)
            elif mode == MODE_FALLBACK:
                self._stem_sum(src.fallback, bus, c, pos, offset, count)
            else:  # bus = mixture + w * (stems_sum - mixture) + v * (old_sum - mixture)
                if mode & MODE_STEMS:
                    self._stem_sum(src.stems, bus, c, pos, offset, count)
                    np.subtract(bus, mixture, out=bus)
                    np.multiply(bus, self._wramp[offset:stop], out=bus)
                else:
                    bus.fill(0.0)
                if mode & MODE_FALLBACK:
                    alt = self._bus_alt[c, offset:stop]
                    self._stem_sum(src.fallback, alt, c, pos, offset, count)
                    np.subtract(alt, mixture, out=alt)
                    np.multiply(alt, self._vramp[offset:stop], out=alt)
                    np.add(bus, alt, out=bus)
                np.add(bus, mixture, out=bus)

    def _stem_sum(self, stems: np.ndarray, bus: np.ndarray, c: int, pos: int, offset: int, count: int) -> None:
        """``bus`` ``(count,)`` = the gain-ramped sum over stems of ``stems[:, c, pos:pos + count]``; updates the
        per-stem block peaks."""
        ramp = self._ramp[offset:offset + count]
        gain = self._tmp[:count]
        prod = self._excess[0, :count]
        bus.fill(0.0)
        for s in range(self.n_stems):
            delta = self._gain_delta[s, c]
            x = stems[s, c, pos:pos + count]
            if delta == 0.0:
                np.multiply(x, self._gain_prev[s, c], out=prod)
            else:
                np.multiply(ramp, delta, out=gain)
                np.add(gain, self._gain_prev[s, c], out=gain)
                np.multiply(x, gain, out=prod)
            np.add(bus, prod, out=bus)
            np.abs(prod, out=prod)
            np.max(prod, out=self._scalar)
            if self._scalar > self._block_peak[s]:
                self._block_peak[s] = self._scalar

    def _loop_envelope(self, loop: tuple[int, int], pos: int, offset: int, count: int) -> bool:
        """Write the loop's fade-out before B and fade-in after A into ``_loopenv``; True if any sample < 1."""
        a, b = loop
        fade = max(1, min(self.fade_frames // 2, (b - a) // 4))
        touched = False
        if pos < b and pos + count > b - fade:  # fade-out: env = (b - p) / fade
            tmp = self._tmp[:count]
            np.multiply(self._index[:count], -1.0 / fade, out=tmp)
            np.add(tmp, (b - pos) / fade, out=tmp)
            np.minimum(tmp, 1.0, out=tmp)
            np.multiply(self._loopenv[offset:offset + count], tmp, out=self._loopenv[offset:offset + count])
            touched = True
        if self._loop_wrapped:
            if pos >= a + fade or pos < a:
                self._loop_wrapped = False
            else:  # fade-in: env = (p - a + 1) / fade
                tmp = self._tmp[:count]
                np.multiply(self._index[:count], 1.0 / fade, out=tmp)
                np.add(tmp, (pos - a + 1) / fade, out=tmp)
                np.minimum(tmp, 1.0, out=tmp)
                np.multiply(self._loopenv[offset:offset + count], tmp, out=self._loopenv[offset:offset + count])
                touched = True
        return touched

    def _finish(self, out: np.ndarray, n: int, fade_next: float, env_loop: bool) -> None:
        """Master gain, transport fade, loop envelope, limiter and soft clip on ``_bus``; copy into ``out``."""
        ramp = self._ramp[:n]
        env = self._env[:n]
        tmp = self._tmp[:n]
        bus = self._bus[:, :n]
        master_next = self.master_target
        np.multiply(ramp, master_next - self._master_prev, out=env)
        np.add(env, self._master_prev, out=env)
        self._master_prev = master_next
        if self._fade_prev != 1.0 or fade_next != 1.0:
            np.multiply(ramp, fade_next - self._fade_prev, out=tmp)
            np.add(tmp, self._fade_prev, out=tmp)
            np.multiply(env, tmp, out=env)
        if env_loop:
            np.multiply(env, self._loopenv[:n], out=env)
        peak = 0.0
        for c in range(BUS_CHANNELS):
            row = bus[c]
            np.multiply(row, env, out=row)
            np.abs(row, out=self._abs[c, :n])
            np.max(self._abs[c, :n], out=self._scalar)
            if self._scalar > peak:
                peak = float(self._scalar)
        # Limiter: block peak -> the gain that brings it under the ceiling, ramped; slow release.
        need = self.ceiling / peak if peak > self.ceiling else 1.0
        prev = self._limit_prev
        lim_next = need if need < prev else min(need, prev + self.release_per_frame * n)
        if prev != 1.0 or lim_next != 1.0:
            np.multiply(ramp, lim_next - prev, out=tmp)
            np.add(tmp, prev, out=tmp)
            for c in range(BUS_CHANNELS):
                np.multiply(bus[c], tmp, out=bus[c])
        self._limit_prev = lim_next
        self.limiter_gain = lim_next
        level = peak * max(prev, lim_next)
        if level > self.clip_threshold:
            for c in range(BUS_CHANNELS):
                self._soft_clip(bus[c], self._abs[c, :n], self._excess[c, :n])
            level = min(level, self.ceiling)
        self.out_level = level
        n_out = self.n_out_channels
        if n_out == 1:
            np.add(bus[0], bus[1], out=tmp)
            np.multiply(tmp, 0.5, out=out[:, 0])
        else:
            for c in range(BUS_CHANNELS):
                np.copyto(out[:, c], bus[c])
            if n_out > BUS_CHANNELS:
                out[:, BUS_CHANNELS:].fill(0.0)

    def _soft_clip(self, row: np.ndarray, absrow: np.ndarray, excess: np.ndarray) -> None:
        """Above ``clip_threshold`` t, map ``|x|`` to ``t + (c - t) * tanh((|x| - t) / (c - t))`` (< ceiling c).

        ``row``, ``absrow``, ``excess``: ``(n_frames,)`` contiguous; ``row`` is clipped in place.
        """
        t = self.clip_threshold
        knee = self.ceiling - t
        np.abs(row, out=absrow)
        np.subtract(absrow, t, out=excess)
        np.maximum(excess, 0.0, out=excess)
        np.multiply(excess, 1.0 / knee, out=excess)
        np.tanh(excess, out=excess)
        np.multiply(excess, knee, out=excess)
        np.minimum(absrow, t, out=absrow)
        np.add(absrow, excess, out=absrow)
        np.copysign(absrow, row, out=row)
