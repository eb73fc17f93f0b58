"""``.shotoku`` session files: the song, the model and the mixer state, as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.errors import ShotokuError
from engine.playback.mix import MixState

SESSION_SUFFIX = ".shotoku"
SESSION_FORMAT = "shotoku-session"
SESSION_VERSION = 1


class SessionError(ShotokuError):
    """A session file could not be read or written; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")


@dataclass
class Session:
    """What a session remembers. ``song`` is absolute once loaded."""

    song: Path
    model: str | None = None
    device: str | None = None
    mix: MixState = field(default_factory=MixState)
    position_seconds: float = 0.0
    loop_seconds: tuple[float, float] | None = None


def save_session(path: str | Path, session: Session) -> Path:
    """Write ``session`` as JSON (atomically). The song is stored relative to the session file when it can be."""
    path = Path(path)
    if path.suffix != SESSION_SUFFIX:
        path = path.with_name(path.name + SESSION_SUFFIX)
    song = Path(session.song).resolve()
    try:
        relative = os.path.relpath(song, path.resolve().parent)
    except ValueError:  # another drive on Windows
        relative = None
    data = {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "song": str(song),
        "song_relative": relative,
        "model": session.model,
        "device": session.device,
        "mix": session.mix.to_json(),
        "position_seconds": round(float(session.position_seconds), 3),
        "loop_seconds": list(session.loop_seconds) if session.loop_seconds else None,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)
    except OSError as err:
        raise SessionError(path, f"cannot write session: {err.strerror or err}") from None
    return path


def load_session(path: str | Path, stems: list[str] | tuple[str, ...] | None = None) -> Session:
    """Read a session file; :class:`SessionError` if it is unreadable, not a session, or its song is gone.

    ``stems``: the strips to read (others dropped, missing ones at 0 dB); None: every strip the file has (the
    model it was saved with may have other stems than the one it opens with: the controller fits them)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(path, "session file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SessionError(path, f"not a readable session file ({err})") from None
    if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
        raise SessionError(path, "not a Shotoku session file")
    if int(data.get("version", 0)) > SESSION_VERSION:
        raise SessionError(path, f"made by a newer Shotoku (session version {data.get('version')})")
    candidates = []
    if data.get("song_relative"):
        candidates.append((path.resolve().parent / data["song_relative"]).resolve())
    if data.get("song"):
        candidates.append(Path(data["song"]))
    song = next((c for c in candidates if c.is_file()), None)
    if song is None:
        raise SessionError(path, f"the session's song is missing: {data.get('song')}")
    loop = data.get("loop_seconds")
    mix = data.get("mix") or {}
    try:
        return Session(
            song=song,
            model=data.get("model"),
            device=data.get("device"),
            mix=MixState.from_json(mix, stems if stems is not None else _strip_names(mix)),
            position_seconds=float(data.get("position_seconds") or 0.0),
            loop_seconds=(float(loop[0]), float(loop[1])) if loop else None,
        )
    except (TypeError, ValueError, IndexError) as err:
        raise SessionError(path, f"session file is damaged ({err})") from None


def _strip_names(mix: object) -> list[str]:
    """The stem names a saved mix has strips for (TypeError when it is not a dict: a damaged file)."""
    if not isinstance(mix, dict):
        raise TypeError("its mix is not an object")
    strips = mix.get("strips") or {}
    if not isinstance(strips, dict):
        raise TypeError("its mix strips are not an object")
    return [str(name) for name in strips]
