"""``StretchPath``: tempo and pitch while playing, with Rubber Band running outside the audio callback.

The remix is stretched, not the stems one by one, so the stems stay sample-synchronous. A second
:class:`~engine.playback.mixer.Mixer`, the *feed*, renders the remix in song time (the deck mirrors every
transport and mix request to it, so seeks, loops, fades and cross-fades happen exactly in song time); a worker
thread feeds that stream to a :class:`~engine.playback.stretch.RealtimeStretcher` and writes what comes out into a
preallocated ring of frames, each tagged with the song frame it plays. The audio callback (:meth:`render`) only
copies ring frames into the output block: no allocation, no lock, no logging, no torch.

At 100 % and no transposition the callback renders the deck's own mixer (the *direct* mixer) as before and the
worker idles. Engaging: the worker picks a song frame ``S`` a little ahead of the direct mixer, starts the feed a
fade length before it, primes the stretcher and fills the ring from ``S`` on; the callback cross-fades from the
direct mixer to the ring over the block in which the direct mixer reaches ``S``. Leaving: the callback puts the
direct mixer at the ring's current song frame and cross-fades back. A tempo or pitch change while engaged reaches
the ear after the ring's depth (about two output blocks) plus the stretcher's latency (1024 frames): under 100 ms
for blocks up to 1024 frames at 44.1 kHz (``tests/engine/test_stretch_path.py`` measures it in frames).

The ring is single-producer (the worker writes frames, then advances :attr:`written`) and single-consumer (the
callback reads, then advances :attr:`read`); each counter has one writer.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from engine.playback.mixer import Mixer
from engine.playback.mixsource import BUS_CHANNELS
from engine.playback.stretch import RealtimeStretcher, is_neutral

log = logging.getLogger(__name__)

#: Frames the ring holds (a power of two).
RING_FRAMES = 1 << 15
#: Song frames the feed renders per step (the granularity of the worker's work and of the song-frame tags).
FEED_BLOCK = 256
#: Fewest output frames the worker keeps queued in the ring (more when the callback's blocks are larger): 1024
#: starved 2 blocks in 9 s of bench/realtime.py at load 4 on 2 cores; 2048 (46 ms) keeps a change under 100 ms.
MIN_QUEUED = 2048


class StretchPath:
    """Tempo/pitch around one direct mixer: :meth:`render` is the audio callback's entry, the rest control side.

    Args:
        direct: the deck's mixer (rendered by :meth:`render` while nothing is stretched).
        samplerate: output rate.
        start_thread: run the worker in a thread (False: call :meth:`pump` yourself, as tests do).
    """

    def __init__(self, direct: Mixer, samplerate: int, start_thread: bool = True) -> None:
        self.direct = direct
        self.samplerate = int(samplerate)
        self.feed = Mixer(direct.n_stems, BUS_CHANNELS, max_block=FEED_BLOCK, fade_frames=direct.fade_frames,
                          samplerate=samplerate)
        self.feed.set_gains(direct.target_gain, direct.master_target)
        # --- control (written by the control side, read by the worker) ---
        self.tempo = 1.0
        self.semitones = 0.0
        self.want = False  #: stretching asked for (tempo or pitch not neutral)
        # --- worker -> callback ---
        self._prepared = False  # the ring holds a stream from song frame _engage_at, ready to take over
        self._engage_at = 0
        self.written = 0  #: frames ever written to the ring (worker)
        # --- callback state and what it publishes ---
        self.engaged = False  #: the callback plays the ring
        self.read = 0  #: frames ever read from the ring (callback)
        self.position = 0  #: song frame of the next frame the callback plays from the ring
        self.last_block = 1024  #: frames of the callback's last block
        self.starved_blocks = 0  #: blocks the ring could not fill entirely
        self._missed = False  # the direct mixer passed (or jumped away from) _engage_at: prepare again
        # --- preallocated buffers ---
        f32 = np.float32
        self._ring = np.zeros((BUS_CHANNELS, RING_FRAMES), dtype=f32)
        self._tags = np.zeros(RING_FRAMES, dtype=np.int64)
        max_block = direct.max_block
        self._scratch = np.zeros((BUS_CHANNELS, max_block), dtype=f32)
        self._ramp = np.zeros(max_block, dtype=f32)
        self._index = np.arange(max_block, dtype=f32)
        self._tmp = np.zeros(max_block, dtype=f32)
        # --- worker state ---
        self._feed_out = np.zeros((FEED_BLOCK, BUS_CHANNELS), dtype=f32)
        self._feed_in = np.zeros((BUS_CHANNELS, FEED_BLOCK), dtype=f32)
        self._stretcher: RealtimeStretcher | None = None
        self._in_count = 0  # frames fed to the stretcher since its reset
        self._out_in = 0.0  # input frame (since reset) of the next output frame
        self._blocks: list[tuple[int, int, int]] = []  # (in_count at start, song frame at start, 1 moving / 0 still)
        self.error: str | None = None  #: why the worker stopped (one line), else None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._main, name="shotoku-stretch", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ control side
    def set(self, tempo: float, semitones: float) -> None:
        """Play at ``tempo`` (ratio) transposed by ``semitones``; neutral values hand back to the direct mixer."""
        self.tempo, self.semitones = float(tempo), float(semitones)
        self.want = not is_neutral(self.tempo, self.semitones) and self.error is None
        self._wake.set()

    def close(self, timeout: float = 2.0) -> bool:
        """Stop the worker (the callback hands back to the direct mixer first); True when its thread ended."""
        self.want = False
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def transport(self) -> Mixer:
        """The mixer whose transport is audible: the feed while engaged, else the direct mixer."""
        return self.feed if self.engaged else self.direct

    @property
    def song_position(self) -> int:
        """The song frame playing (a pending seek's target while it fades)."""
        mixer = self.transport
        pending = mixer.seek_pending
        if pending is not None:
            return pending
        return self.position if self.engaged else mixer.position

    @property
    def queued(self) -> int:
        """Output frames waiting in the ring."""
        return self.written - self.read

    # ------------------------------------------------------------------ audio thread
    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` ``(n_frames, n_out_channels)`` float32: the direct mixer, the ring, or a cross-fade."""
        n = out.shape[0]
        self.last_block = n
        direct = self.direct
        if n > direct.max_block:
            direct.render(out)  # zero-filled and counted there
            return
        if not self.engaged:
            start = direct.next_frame
            direct.render(out)
            if self.want and self._prepared and not self._missed:
                at = self._engage_at
                if start <= at < start + n or not direct.playing:
                    self._crossfade(out, n, to_ring=True)
                    direct.cut_to(direct.position)
                    self._prepared = False
                    self.engaged = True
                elif start > at or start + 4 * RING_FRAMES < at:
                    self._missed = True
            return
        if not self.want:  # back to the direct mixer, at the song frame the ring has reached
            direct.cut_to(self.position, keep_seek=self.feed.seek_pending is not None)
            direct.render(out)  # fades in from silence
            self._crossfade(out, n, to_ring=False)
            self.engaged = False
            return
        got = self._pull(self._scratch, n)
        self._to_out(out, n)
        if got < n:
            self.starved_blocks += 1

    def _pull(self, dest: np.ndarray, n: int) -> int:
        """Move up to ``n`` ring frames into ``dest[:, :n]`` (zeros after them); returns how many there were."""
        got = self.written - self.read
        if got > n:
            got = n
        if got < 0:
            got = 0
        start = self.read % RING_FRAMES
        first = min(got, RING_FRAMES - start)
        for c in range(BUS_CHANNELS):
            np.copyto(dest[c, :first], self._ring[c, start:start + first])
            if got > first:
                np.copyto(dest[c, first:got], self._ring[c, :got - first])
            if got < n:
                dest[c, got:n].fill(0.0)
        if got:
            self.position = int(self._tags[(self.read + got - 1) % RING_FRAMES]) + 1
            self.read += got
        return got

    def _to_out(self, out: np.ndarray, n: int) -> None:
        """``self._scratch[:, :n]`` (hard-limited to +-1) into ``out`` ``(n, n_out_channels)``."""
        scratch = self._scratch
        for c in range(BUS_CHANNELS):
            row = scratch[c, :n]
            np.minimum(row, 1.0, out=row)
            np.maximum(row, -1.0, out=row)
        n_out = out.shape[1]
        if n_out == 1:
            np.add(scratch[0, :n], scratch[1, :n], out=self._tmp[:n])
            np.multiply(self._tmp[:n], 0.5, out=out[:, 0])
        else:
            for c in range(BUS_CHANNELS):
                np.copyto(out[:, c], scratch[c, :n])
            if n_out > BUS_CHANNELS:
                out[:, BUS_CHANNELS:].fill(0.0)

    def _crossfade(self, out: np.ndarray, n: int, to_ring: bool) -> None:
        """``out`` (the direct mixer's block) cross-faded with the next ``n`` ring frames over the block:
        towards the ring when ``to_ring``, else away from it."""
        self._pull(self._scratch, n)
        ramp = self._ramp[:n]
        np.multiply(self._index[:n], 1.0 / n, out=ramp)  # 0 .. (n-1)/n
        if not to_ring:
            np.subtract(1.0, ramp, out=ramp)
        tmp = self._tmp[:n]
        n_out = out.shape[1]
        for c in range(min(n_out, BUS_CHANNELS)):
            ring = self._scratch[c, :n] if n_out > 1 else self._scratch[0, :n]
            if n_out == 1:
                np.add(ring, self._scratch[1, :n], out=ring)
                np.multiply(ring, 0.5, out=ring)
            np.subtract(ring, out[:, c], out=tmp)  # out + ramp * (ring - out)
            np.multiply(tmp, ramp, out=tmp)
            np.add(out[:, c], tmp, out=out[:, c])

    # ------------------------------------------------------------------ worker
    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.pump()
            except Exception as err:  # the stretcher failed: play unstretched, say why once
                log.exception("tempo/pitch worker")
                self.error = f"tempo and pitch stopped: {err}"
                self.want = False
                busy = False
            if not busy:
                self._wake.wait(0.003 if (self.want or self.engaged) else 0.1)
                self._wake.clear()

    def target_queued(self) -> int:
        """Output frames the worker keeps in the ring: two of the callback's blocks, at least :data:`MIN_QUEUED`."""
        return max(MIN_QUEUED, 2 * int(self.last_block))

    def pump(self) -> bool:
        """One step of the worker: prepare an engage, or top the ring up. Returns True if there is more to do."""
        if not self.want:
            if not self.engaged:
                self._prepared = False
            elif self.queued < self.target_queued():
                self._step()  # keep playing until the callback hands back
            return False
        if not self.engaged:
            if not self._prepared or self._missed:
                self._prepare()
            return False
        if self.queued < self.target_queued():
            self._step()
            return self.queued < self.target_queued()
        return False

    def _prepare(self) -> None:
        """Start the feed just ahead of the direct mixer and fill the ring from song frame ``S`` on."""
        self._prepared = False
        direct = self.direct
        source = direct.source
        if source is None:
            return
        if self._stretcher is None:
            self._stretcher = RealtimeStretcher(self.samplerate, BUS_CHANNELS, max_process=FEED_BLOCK)
        here = direct.next_frame
        playing = direct.playing
        loop = direct.loop
        lead = 2 * self.target_queued() if playing else 0
        at = here + lead
        low = 0
        if loop is not None and here < loop[1]:
            low = loop[0]
            if at >= loop[1]:
                at = loop[0] + (at - loop[1]) % (loop[1] - loop[0])
        if at >= source.n_frames:
            return  # too near the end: play it out unstretched
        feed = self.feed
        feed.set_source(source)
        feed.set_gains(direct.target_gain, direct.master_target)
        if loop is not None:
            feed.set_loop(*loop)
        feed.request_seek(max(low, at - feed.fade_frames) if playing else at)
        if playing:
            feed.request_play()
        stretcher = self._stretcher
        stretcher.set(self.tempo, self.semitones)
        stretcher.reset()
        self._in_count, self._out_in, self._blocks = 0, 0.0, []
        self.written = self.read  # empty (the callback does not read the ring until _prepared)
        self._engage_at = at
        for _ in range(RING_FRAMES // FEED_BLOCK):
            if self.queued >= self.target_queued() or self._stop.is_set():
                break
            self._step(drop_before=at)
        self._missed = False
        self._prepared = True

    def _step(self, drop_before: int | None = None) -> None:
        """Render one feed block in song time, stretch it, and append the frames that came out to the ring."""
        feed, stretcher = self.feed, self._stretcher
        if stretcher is None:
            return
        stretcher.set(self.tempo, self.semitones)
        start = feed.next_frame
        n = FEED_BLOCK
        loop = feed.loop
        if loop is not None and start < loop[1]:
            n = max(1, min(n, loop[1] - start))  # a block never crosses the loop's end: its tags stay linear
        block = self._feed_out[:n]
        feed.render(block)
        moving = 1 if feed.position == start + n else 0
        self._blocks.append((self._in_count, start, moving))
        np.copyto(self._feed_in[:, :n], block.T)
        stretcher.process(self._feed_in[:, :n])
        self._in_count += n
        if len(self._blocks) > 256:
            del self._blocks[:128]
        chunk = stretcher.retrieve()
        if chunk is None:
            return
        tags = self._tags_for(chunk.shape[1])
        if drop_before is not None:
            keep = tags >= drop_before
            if not keep.any():
                return
            first = int(np.argmax(keep))
            chunk, tags = chunk[:, first:], tags[first:]
        self._append(chunk, tags)

    def _tags_for(self, m: int) -> np.ndarray:
        """Song frames of the next ``m`` output frames (input position integrated at the current tempo)."""
        tempo = self._stretcher.tempo if self._stretcher is not None else 1.0
        inputs = self._out_in + tempo * np.arange(m, dtype=np.float64)
        self._out_in += tempo * m
        table = np.asarray(self._blocks, dtype=np.int64)
        k = np.clip(np.searchsorted(table[:, 0], inputs, side="right") - 1, 0, len(table) - 1)
        offset = np.maximum(0, np.floor(inputs).astype(np.int64) - table[k, 0])
        return table[k, 1] + table[k, 2] * offset

    def _append(self, chunk: np.ndarray, tags: np.ndarray) -> None:
        m = chunk.shape[1]
        if m > RING_FRAMES - self.queued:  # cannot happen with the queue targets above; never overwrite
            m = RING_FRAMES - self.queued
        start = self.written % RING_FRAMES
        first = min(m, RING_FRAMES - start)
        self._ring[:, start:start + first] = chunk[:, :first]
        self._tags[start:start + first] = tags[:first]
        if m > first:
            self._ring[:, :m - first] = chunk[:, first:m]
            self._tags[:m - first] = tags[first:m]
        self.written += m
