"""``.shotoku`` session files: round trip, moved folders, damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.session_file import Session, SessionError, load_session, save_session
from engine.playback.mix import MixState, apply_preset

STEMS = ("vocals", "drums", "bass", "other")


def test_round_trip(tmp_path: Path) -> None:
    song = tmp_path / "a.wav"
    song.write_bytes(b"x")
    mix = apply_preset(MixState.default(STEMS), "drumless")
    written = save_session(tmp_path / "s", Session(song, "irm", "cpu", mix, 12.5, (1.0, 2.0)))
    assert written.name == "s.shotoku"
    back = load_session(written, STEMS)
    assert back.song == song.resolve()
    assert (back.model, back.device, back.position_seconds, back.loop_seconds) == ("irm", "cpu", 12.5, (1.0, 2.0))
    assert back.mix.strips == mix.strips


def test_song_found_relative_to_a_moved_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "song.flac").write_bytes(b"x")
    save_session(folder / "mix.shotoku", Session(folder / "song.flac"))
    moved = tmp_path / "moved"
    folder.rename(moved)
    assert load_session(moved / "mix.shotoku", STEMS).song == (moved / "song.flac").resolve()


@pytest.mark.parametrize("content", ["{not json", '{"format": "other"}', "[]"])
def test_damaged_files_raise_a_readable_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.shotoku"
    path.write_text(content)
    with pytest.raises(SessionError, match="bad.shotoku"):
        load_session(path, STEMS)


def test_missing_song_is_named(tmp_path: Path) -> None:
    song = tmp_path / "gone.wav"
    song.write_bytes(b"x")
    path = save_session(tmp_path / "s.shotoku", Session(song))
    song.unlink()
    with pytest.raises(SessionError, match="song is missing"):
        load_session(path, STEMS)
