"""Decoders: a file in, float32 blocks ``(n_frames, n_channels)`` at the file's rate out, with damage decoded around.

:func:`open_decoder` picks libsndfile (WAV, FLAC, OGG, MP3, AIFF, ...) and falls back to the ``ffmpeg`` command
(M4A/AAC, MP4, Opus in other containers, WMA, ...; :mod:`engine.audio._ffmpeg`). A decoder's ``blocks()`` yields
arrays (views into a reused buffer: use each before asking for the next) and, where the file is damaged, an ``int``:
that many frames of silence standing in for what could not be decoded. Each gap gets a note saying where it starts
and how long it is.

What "decoding around damage" means per format:

- FLAC (and any exactly seekable libsndfile format): a read that fails mid-file is retried in small steps to find
  the last good frame, then later positions are probed (doubling, then bisecting to 1/100 s) until decoding works
  again; the span between is silence. Every FLAC frame carries its position, so what follows is exactly in place.
- OGG Vorbis: libvorbis drops a damaged page itself and libsndfile's position jumps by its length; the jump is the
  gap. Pages whose structure is broken are spliced out first (:mod:`engine.audio._repair`), so libsndfile's
  length and seeking stay right.
- MP3: the frames are walked before decoding (:mod:`engine.audio._repair`); damaged bytes are spliced out and the
  frames they held become silence at their place.
- A read that fails with nothing decodable after it is a truncated file: refused, saying how much was there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio import _ffmpeg, _repair
from engine.audio._files import HEAD_BYTES, sndfile_name
from engine.audio._flac import FlacChecksum, int32_to_float, streaminfo_md5
from engine.audio._headers import declared_frames, describe_non_audio
from engine.audio._quiet import quiet_decoder
from engine.errors import AudioLoadError

log = logging.getLogger("engine.audio")

#: Formats whose header frame count is exact, so fewer decoded frames means the file was cut short.
#: (MP3's is an estimate from the bitrate; OGG's comes from the last page present, so a cut file looks shorter.)
EXACT_LENGTH_FORMATS = frozenset({"WAV", "WAVEX", "AIFF", "FLAC", "W64", "RF64", "CAF", "AU"})
#: libsndfile formats whose seeking lands exactly on a sample (damage is probed past by seeking).
_SEEKABLE_FORMATS = EXACT_LENGTH_FORMATS
BLOCK_FRAMES = 1 << 16
_FINE_FRAMES = 256  # read size while finding the last good frame before damage
#: OGG read size: with larger reads libsndfile 1.2 reports only part of a lost page as a position jump and hands
#: back misplaced frames instead (measured on pages cut out of Vorbis noise: 65536 -> 704 of 37888 frames).
_OGG_FRAMES = 4096
_PROBE_FRAMES = 8192  # frames a probe must decode to count as "decoding works again"
_SNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError)


def clock(seconds: float) -> str:
    """``m:ss.ss`` (or ``h:mm:ss.ss``) for notes."""
    minutes, secs = divmod(max(seconds, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


def gap_note(start: int, length: int, samplerate: int, why: str = "damaged data") -> str:
    """The note for ``length`` frames of silence put in at frame ``start``."""
    return (
        f"{why} at {clock(start / samplerate)}: {length / samplerate:.2f} s could not be decoded and "
        f"is silence"
    )


def sndfile_reason(err: BaseException) -> str:
    """libsndfile's message without its "Error opening 'path': " prefix."""
    text = getattr(err, "error_string", None) or str(err)
    if text.startswith("Error opening") and "': " in text:
        text = text.split("': ", 1)[1]
    return text.strip().rstrip(".") or type(err).__name__


@dataclass
class Source:
    """What a decoder delivers: ``n_frames`` is the announced length (0 when unknown; an estimate unless
    ``exact_length``); ``format``/``subtype`` are libsndfile's names, or for ffmpeg the extension and codec."""

    samplerate: int
    n_channels: int
    n_frames: int
    format: str
    subtype: str
    exact_length: bool


@dataclass
class SndfileDecoder:
    """libsndfile, block by block, decoding around damage (see the module docstring)."""

    path: Path
    handle: sf.SoundFile | None
    source: Source
    opener: object = None  #: what to give ``sf.SoundFile`` to open the file again (a name, or a spliced reader)
    gaps: list[tuple[int, int]] = field(default_factory=list)  #: gaps to put in, (frame, length), from _repair
    notes: list[str] = field(default_factory=list)
    checksum: FlacChecksum | None = None
    n_gaps: int = 0
    gap_label: str = "damaged MP3 frames"
    ogg: _repair.OggPlan | None = None  #: an OGG plan: where the cuts are in time, where the stream ends

    def _reopen(self, position: int) -> sf.SoundFile | None:
        with quiet_decoder():
            try:
                handle = sf.SoundFile(self.opener if not callable(self.opener) else self.opener())
            except _SNDFILE_ERRORS:
                return None
            try:
                handle.seek(position)
            except _SNDFILE_ERRORS:
                handle.close()
                return None
        return handle

    def _decodes_at(self, position: int) -> bool:
        handle = self._reopen(position)
        if handle is None:
            return False
        try:
            with handle, quiet_decoder():
                return handle.read(_PROBE_FRAMES, dtype="float32").shape[0] > 0
        except _SNDFILE_ERRORS:
            return False

    def _jump_at(self, position: int, n: int, cut_frames: list[int]) -> int:
        """Where in the ``n`` frames read from ``position`` the position jumped: at a cut's known frame (the end
        of the last good page before it) when one lies there, else found by reading again in small steps."""
        for frame in cut_frames:
            if position <= frame <= position + n:
                return frame - position
        return self._locate_jump(position, n)

    def _locate_jump(self, position: int, n: int) -> int:
        """How many of the ``n`` frames read from ``position`` come before the position jump (small steps on a
        second handle); 0 when it cannot be told."""
        handle = self._reopen(position)
        if handle is None:
            return 0
        done = 0
        try:
            with handle:
                while done < n:
                    before = handle.tell()
                    got = handle.read(min(_FINE_FRAMES, n - done), dtype="float32").shape[0]
                    if got == 0 or handle.tell() - before > got:
                        return done if got else 0
                    done += got
        except _SNDFILE_ERRORS:
            return 0
        return 0

    def _resume_after(self, position: int) -> int | None:
        """The first position after ``position`` where decoding works again (1/100 s resolution), or ``None``."""
        total = self.source.n_frames
        resolution = max(self.source.samplerate // 100, _FINE_FRAMES)
        bad, step = position, resolution
        while position + step < total:
            if self._decodes_at(position + step):
                break
            bad, step = position + step, 2 * step
        else:
            return None
        good = position + step
        while good - bad > resolution:
            middle = (bad + good) // 2
            if self._decodes_at(middle):
                good = middle
            else:
                bad = middle
        return good

    def _read(self, handle: sf.SoundFile, n: int, buffer: np.ndarray, ints: np.ndarray | None) -> np.ndarray:
        if self.source.format == "MP3":
            with quiet_decoder():
                return self._read_loud(handle, n, buffer, ints)
        return self._read_loud(handle, n, buffer, ints)

    def _read_loud(self, handle: sf.SoundFile, n: int, buffer: np.ndarray, ints: np.ndarray | None) -> np.ndarray:
        if ints is None:
            return handle.read(n, dtype="float32", always_2d=True, out=buffer[:n])
        got = handle.read(n, dtype="int32", always_2d=True, out=ints[:n])
        if self.checksum is not None:
            self.checksum.update(got)
        return int32_to_float(got, buffer[: got.shape[0]])

    def blocks(self) -> Iterator[np.ndarray | int]:
        src = self.source
        buffer = np.empty((BLOCK_FRAMES, src.n_channels), dtype=np.float32)
        ints = np.empty_like(buffer, dtype=np.int32) if self.checksum is not None else None
        handle, position = self.handle, 0
        assert handle is not None
        fine_until = -1  # below this position, read in small steps (finding where the damage starts)
        pending = sorted(self.gaps)
        track_jumps = src.format == "OGG"
        cut_frames = list(self.ogg.cut_frames) if self.ogg is not None else []
        # Spliced MP3: the Xing frame count still counts the left-out frames, so the decoder does not trim the
        # encoder's end padding; with the gaps in, the announced length is the true one.
        cap = src.n_frames if pending and src.format == "MP3" and src.n_frames > 0 else None
        if self.gap_label != "damaged MP3 frames":
            cap = None
        while True:
            if pending and pending[0][0] <= position:
                length = pending.pop(0)[1]
                self._gap(position, length, self.gap_label)
                yield length
                position += length
                continue
            want = _FINE_FRAMES if position < fine_until else BLOCK_FRAMES if not track_jumps else _OGG_FRAMES
            if pending:
                want = max(1, min(want, pending[0][0] - position))
            before = handle.tell() if track_jumps else 0
            failure: BaseException | None = None
            try:
                block = self._read(handle, want, buffer, ints)
            except _SNDFILE_ERRORS as err:
                block, failure = None, err
            if block is not None and block.shape[0] > 0:
                if cap is not None:
                    block = block[: max(0, cap - position)]
                    if block.shape[0] == 0:
                        return
                jump = handle.tell() - before - block.shape[0] if track_jumps else 0
                if jump > 0:  # libvorbis dropped a damaged page: its frames are missing in this block
                    split = self._jump_at(position, block.shape[0], cut_frames)
                    yield block[:split]
                    self._gap(position + split, jump)
                    yield jump
                    block, position = block[split:], position + split + jump
                yield block
                position += block.shape[0]
                continue
            if block is not None and not (src.exact_length and position < src.n_frames):
                return  # the normal end
            if src.format not in _SEEKABLE_FORMATS:
                if block is not None:
                    return
                raise self._stopped(position, failure)
            handle.close()
            if position >= fine_until:  # read again up to the damage, in small steps
                handle = self._reopen(position)
                self.handle = handle
                if handle is None:
                    raise self._stopped(position, failure)
                fine_until = position + BLOCK_FRAMES
                continue
            resume = self._resume_after(position)
            handle = self._reopen(resume) if resume is not None else None
            self.handle = handle
            if handle is None or resume is None:
                raise self._stopped(position, failure)
            self._gap(position, resume - position)
            yield resume - position
            position, fine_until = resume, -1

    def _gap(self, start: int, length: int, why: str = "damaged data") -> None:
        self.n_gaps += 1
        note = gap_note(start, length, self.source.samplerate, why)
        log.warning("%s: %s", self.path, note)
        self.notes.append(note)

    def _stopped(self, position: int, err: BaseException | None) -> AudioLoadError:
        rate, total = self.source.samplerate, self.source.n_frames
        got = f"decoding stopped at {position / rate:.2f} s"
        if total > position:
            got += f" of {total / rate:.2f} s"
        detail = "" if err is None else f"; the decoder said: {_plain_reason(err)}"
        return AudioLoadError(
            self.path, f"the file is damaged or truncated: {got} (the rest is missing or unreadable{detail})"
        )

    def restart_gaps(self, n_total: int) -> bool:
        """After a pass that delivered ``n_total`` frames: when an OGG's pages were cut out and frames are still
        missing (the first audio pages were lost, so no position jump showed where), plan a second pass with the
        missing frames as silence where the first cut is, and return True (once)."""
        plan, self.ogg = self.ogg, None
        if plan is None or plan.end_frame is None or not plan.cut_frames:
            return False
        missing = plan.end_frame - n_total
        if missing < max(self.source.samplerate // 100, _FINE_FRAMES):
            return False
        handle = self._reopen(0)
        if handle is None:
            return False
        self.close()
        self.handle, self.notes, self.n_gaps = handle, [], 0
        self.gaps, self.gap_label = [(plan.cut_frames[0], missing)], "damaged OGG pages"
        if self.checksum is not None:
            self.checksum = FlacChecksum(self.checksum.expected, self.checksum.bits)
        return True

    def finish_notes(self) -> list[str]:
        """Notes that only the end of decoding knows (the FLAC checksum)."""
        if self.checksum is not None and self.n_gaps == 0 and not self.checksum.matches():
            note = (
                "the FLAC checksum (MD5 of the audio) does not match: the file is damaged, some samples may "
                "be wrong"
            )
            log.warning("%s: %s", self.path, note)
            self.notes.append(note)
        return self.notes

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _plain_reason(err: BaseException) -> str:
    """libsndfile's reason, without its internal jargon."""
    text = sndfile_reason(err)
    lowered = text.lower()
    if "psf_fseek" in lowered or "internal" in lowered or "unspecified" in lowered or not text:
        return "the data is corrupt"
    return text


def refuse_unopenable(path: Path, head: bytes, sndfile_why: str, ffmpeg_why: str | None) -> AudioLoadError:
    """The error for a file neither libsndfile nor ffmpeg could open."""
    from engine.audio.io import FFMPEG_EXTENSIONS, NATIVE_EXTENSIONS

    ext = path.suffix.lower()
    other = describe_non_audio(head)
    if other:
        return AudioLoadError(path, f"is not an audio file (it looks like {other})")
    if ffmpeg_why is None and ext in FFMPEG_EXTENSIONS:
        return AudioLoadError(path, f"needs ffmpeg to decode {ext} files; {_ffmpeg.INSTALL_HINT}")
    if ffmpeg_why is not None and ("codec" in ffmpeg_why or "no audio stream" in ffmpeg_why):
        return AudioLoadError(path, ffmpeg_why)
    sndfile_why = _readable_open_reason(sndfile_why)
    if ext in NATIVE_EXTENSIONS:
        name = ext.lstrip(".").upper()
        return AudioLoadError(path, f"is damaged or not a valid {name} file ({sndfile_why})")
    if ffmpeg_why is None:
        supported = ", ".join(e.lstrip(".") for e in NATIVE_EXTENSIONS)
        return AudioLoadError(
            path,
            f"is not a supported audio file ({sndfile_why}); readable formats: {supported}, "
            f"and more once ffmpeg is installed",
        )
    return AudioLoadError(path, ffmpeg_why)


def _readable_open_reason(text: str) -> str:
    """libsndfile's open failure in words: "not seekable (possibly a pipe?)" on a regular file means it found no
    format it knows (its MPEG probe gives up that way on random bytes)."""
    lowered = text.lower()
    if "pipe" in lowered or "seek" in lowered or "internal" in lowered or "unspecified" in lowered:
        return "no known audio format found in it"
    return text


def _checksum_for(path: Path, handle: sf.SoundFile, head: bytes) -> FlacChecksum | None:
    if handle.format != "FLAC":
        return None
    found = streaminfo_md5(head)
    return FlacChecksum(*found) if found is not None else None


def open_sndfile(path: Path, head: bytes) -> SndfileDecoder | str:
    """A libsndfile decoder for ``path``, or libsndfile's reason for refusing it (a ``str``)."""
    name = sndfile_name(path)
    opener: object = name
    gaps: list[tuple[int, int]] = []
    repaired = _repair.plan(path, head)
    if repaired is not None:
        opener, gaps = repaired.opener, repaired.gaps
    try:
        with quiet_decoder():
            handle = sf.SoundFile(opener() if callable(opener) else opener)
    except _SNDFILE_ERRORS as err:
        return sndfile_reason(err)
    fmt = str(handle.format)
    source = Source(
        samplerate=int(handle.samplerate),
        n_channels=int(handle.channels),
        n_frames=max(int(handle.frames), 0),
        format=fmt,
        subtype=str(handle.subtype),
        exact_length=fmt in EXACT_LENGTH_FORMATS,
    )
    decoder = SndfileDecoder(path, handle, source, opener=opener, gaps=gaps)
    if isinstance(repaired, _repair.OggPlan) and source.subtype == "VORBIS":
        decoder.ogg = repaired
    decoder.checksum = _checksum_for(path, handle, head)
    return decoder


def check_announced_length(path: Path, source: Source) -> None:
    """Refuse a WAV/AIFF whose header announces more audio than the file holds."""
    announced = declared_frames(path)
    if announced is not None and announced > source.n_frames + 1:
        raise truncated(path, announced, source.n_frames, source.samplerate)


def truncated(path: Path, announced: int, present: int, samplerate: int) -> AudioLoadError:
    return AudioLoadError(
        path,
        f"the file is truncated (incomplete download or copy?): the header announces "
        f"{announced / samplerate:.2f} s of audio but only {present / samplerate:.2f} s is there",
    )


def open_decoder(path: Path, head: bytes, size: int) -> SndfileDecoder | _ffmpeg.PipeDecoder:
    """The decoder for ``path`` (whose first bytes are ``head`` and size ``size``); raises AudioLoadError."""
    decoder = open_sndfile(path, head)
    if isinstance(decoder, SndfileDecoder):
        # A recording that was never finalised has "0 bytes of audio" in its header but audio after it:
        # libsndfile then reads nothing, ffmpeg reads to the end of the file.
        unfinished = decoder.source.n_frames == 0 and size > HEAD_BYTES and _ffmpeg.find_ffmpeg() is not None
        if not unfinished:
            return decoder
        decoder.close()
        sndfile_why = "the header announces no audio"
    else:
        sndfile_why = decoder
    ffmpeg = _ffmpeg.find_ffmpeg()
    if ffmpeg is None:
        raise refuse_unopenable(path, head, sndfile_why, None)
    try:
        return _ffmpeg.PipeDecoder.open(path, ffmpeg)
    except _ffmpeg.FFmpegError as err:
        raise refuse_unopenable(path, head, sndfile_why, str(err)) from None
