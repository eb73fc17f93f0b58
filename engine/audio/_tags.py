"""A song's tags (title, artist, album, cover, ...) read from any file mutagen knows and written as MP4 tags.

mutagen reads ID3 (MP3, WAV, AIFF), Vorbis comments (FLAC, OGG, Opus) and MP4 atoms alike through its "easy"
interface; the cover needs each format's own picture field. Unreadable or untagged sources give empty tags: a
missing tag never stops an export.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: easy-interface key -> MP4 atom
_MP4_TEXT = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "albumartist": "aART", "date": "\xa9day",
             "genre": "\xa9gen", "composer": "\xa9wrt", "comment": "\xa9cmt"}  # fmt: skip


@dataclass
class Tags:
    """Text tags by easy-interface name (``title``, ``artist``, ...), the track number and the cover image."""

    text: dict[str, str] = field(default_factory=dict)
    track: tuple[int, int] | None = None  #: (number, total; 0 when unknown)
    cover: bytes | None = None
    cover_mime: str = "image/jpeg"


def _track(value: str) -> tuple[int, int] | None:
    number, _, total = value.partition("/")
    try:
        return int(number), int(total or 0)
    except ValueError:
        return None


def _cover(path: Path) -> tuple[bytes, str] | None:
    """The first embedded picture of ``path`` (any format mutagen reads), or None."""
    import mutagen
    from mutagen.flac import Picture
    from mutagen.mp4 import MP4Cover

    audio = mutagen.File(path)
    if audio is None:
        return None
    pictures = getattr(audio, "pictures", None)  # FLAC
    if pictures:
        return bytes(pictures[0].data), pictures[0].mime or "image/jpeg"
    tags = audio.tags
    if tags is None:
        return None
    if hasattr(tags, "getall"):  # ID3
        frames = tags.getall("APIC")
        if frames:
            return bytes(frames[0].data), frames[0].mime or "image/jpeg"
    covers = tags.get("covr") if hasattr(tags, "get") else None  # MP4
    if covers:
        cover = covers[0]
        return bytes(cover), "image/png" if cover.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg"
    blocks = tags.get("metadata_block_picture") if hasattr(tags, "get") else None  # Vorbis comments
    if blocks:
        picture = Picture(base64.b64decode(blocks[0]))
        return bytes(picture.data), picture.mime or "image/jpeg"
    return None


def read_tags(path: Path) -> Tags:
    """The tags of the audio file at ``path`` (empty when it has none or mutagen cannot read it)."""
    import mutagen

    tags = Tags()
    try:
        easy = mutagen.File(path, easy=True)
        if easy is not None and easy.tags is not None:
            for key in (*_MP4_TEXT, "tracknumber"):
                values = easy.tags.get(key) if hasattr(easy.tags, "get") else None
                if not values:
                    continue
                value = str(values[0]).strip()
                if key == "tracknumber":
                    tags.track = _track(value)
                elif value:
                    tags.text[key] = value
        cover = _cover(path)
        if cover is not None:
            tags.cover, tags.cover_mime = cover
    except Exception as err:  # noqa: BLE001 - a damaged tag block must not stop the export
        log.info("%s: tags not read (%s)", path, err)
    return tags


def write_mp4_tags(path: Path, tags: Tags, encoder: str = "Shotoku") -> None:
    """Write ``tags`` into the MP4 at ``path`` (in place; mutagen updates sizes and chunk offsets)."""
    from mutagen.mp4 import MP4, MP4Cover

    mp4 = MP4(path)
    if mp4.tags is None:
        mp4.add_tags()
    assert mp4.tags is not None
    for key, value in tags.text.items():
        mp4.tags[_MP4_TEXT[key]] = [value]
    if tags.track is not None:
        mp4.tags["trkn"] = [tags.track]
    if tags.cover:
        kind = MP4Cover.FORMAT_PNG if tags.cover_mime == "image/png" else MP4Cover.FORMAT_JPEG
        mp4.tags["covr"] = [MP4Cover(tags.cover, imageformat=kind)]
    mp4.tags["\xa9too"] = [encoder]
    mp4.save()
