"""The hostile-input corpus (tests/hostile/corpus.py) through ``shotoku separate`` and ``shotoku play``, as a user
runs them: a child process, its exit code, its stderr, and what it left in ``-o``.

Every kind is refused with exit 1 and one line naming the file and the reason, or separated completely (with a
note when something was repaired or skipped); never a traceback, a hang, a partial or hidden file, or a file
outside ``-o``.
"""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from engine.cli import display_text, main
from engine.separation.stemset import read_stem_set, song_folder_name
from tests.hostile.corpus import KINDS, Kind, kind, tone, write
from tests.hostile.runner import Result, error_lines, leftovers, permissions_bind, run_shotoku

STEMS = ["bass", "drums", "other", "vocals"]


def _params(kinds: list[Kind]) -> list:
    return [pytest.param(k, id=k.name, marks=[pytest.mark.slow] if k.slow else []) for k in kinds]


def names_shown(path: Path) -> set[str]:
    """The ways a message may name ``path``: its full path or its name, as :func:`display_text` prints them."""
    return {display_text(path), display_text(path.name)}


def listing(folder: Path) -> list[str]:
    return sorted(os.fsdecode(p.relative_to(folder)) for p in folder.rglob("*"))


def make_inputs(k: Kind, tmp_path: Path) -> tuple[Path, list[Path]]:
    if k.unprivileged and (why := permissions_bind(tmp_path)) is not None:
        pytest.skip(why)
    folder = tmp_path / "in"
    folder.mkdir()
    return folder, k.make(folder)


def _info(path: Path) -> Any:
    """soundfile's header of ``path`` (opened by Python: soundfile cannot name a path that is not UTF-8)."""
    with open(path, "rb") as f:
        return sf.info(f)


def check_refused(k: Kind, result: Result, paths: list[Path], out: Path) -> None:
    assert result.returncode == 1, result.stderr
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr
    assert any(name in errors[0] for name in names_shown(paths[0])), errors
    after_name = errors[0].split(display_text(paths[0].name), 1)[-1]
    assert re.search(k.reason, after_name, re.IGNORECASE), f"reason {k.reason!r} not in {errors[0]!r}"
    assert not out.exists() or listing(out) == [], listing(out)  # nothing partial, nothing hidden


def check_separated(k: Kind, result: Result, paths: list[Path], out: Path) -> None:
    assert result.returncode == 0, result.stderr
    assert error_lines(result) == []
    assert leftovers(out) == [], "hidden or temporary files left in -o"
    for path in dict.fromkeys(paths):
        folder = out / song_folder_name(path)
        stem_set = read_stem_set(folder, verify=True)
        assert stem_set is not None, f"{folder}: no complete set ({listing(out)})"
        assert sorted(stem_set.files) == STEMS
        infos = [_info(stem_set.files[s]) for s in STEMS]
        assert len({(i.frames, i.samplerate, i.channels) for i in infos}) == 1
        assert infos[0].frames == stem_set.manifest["n_samples"] > 0
    if k.expect == "note":
        notes = [line for line in result.stderr.splitlines() if line.startswith("shotoku:") and "error" not in line]
        assert any(re.search(k.reason, line, re.IGNORECASE) and any(n in line for n in names_shown(paths[0]))
                   for line in notes), result.stderr  # fmt: skip


@pytest.mark.parametrize("k", _params(KINDS))
def test_separate_survives(k: Kind, tmp_path: Path) -> None:
    folder, paths = make_inputs(k, tmp_path)
    before = listing(folder)
    out = tmp_path / "out"
    options = ["--stems", "vocals", "--format", "flac"] if k.slow else []
    with k.live(paths) if k.live else nullcontext():
        result = run_shotoku("separate", *paths, "-o", out, "--model", "identity", *options,
                             unprivileged=k.unprivileged)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert listing(folder) == before, "something was written beside the input (outside -o)"
    assert sorted(p.name for p in tmp_path.iterdir()) in (["in"], ["in", "out"]), "written outside -o"
    expect = k.expect
    if expect == "any":
        expect = "refused" if result.returncode == 1 else "accepted"
    if expect == "refused":
        check_refused(k, result, paths, out)
    elif expect == "usage":
        assert result.returncode == 2, result.stderr
        assert all(any(n in result.stderr for n in names_shown(p)) for p in paths), result.stderr
        assert re.search(k.reason, result.stderr, re.IGNORECASE)
        assert not out.exists() or listing(out) == []
    elif k.slow:  # the long file: one FLAC stem of 3.4 h of silence, in flat memory
        assert result.returncode == 0, result.stderr
        stem_set = read_stem_set(out / "long")
        assert stem_set is not None and sf.info(str(stem_set.files["vocals"])).frames == stem_set.manifest["n_samples"]
        print(f"sparse 2 GiB WAV: peak RSS {result.peak_rss_mb:.0f} MB")
        assert result.peak_rss_mb < 1500, f"peak RSS {result.peak_rss_mb:.0f} MB for a 3.4-hour input"
    else:
        check_separated(k, result, paths, out)


def test_one_bad_file_does_not_stop_the_batch(tmp_path: Path) -> None:
    """Every refused kind and one good song in one command: each bad file gets its own line, the song its stems."""
    folder = tmp_path / "in"
    folder.mkdir()
    bad: list[Path] = []
    for k in KINDS:
        if k.expect == "refused" and not k.unprivileged:
            sub = folder / k.name
            sub.mkdir()
            for path in k.make(sub):  # one song folder name each (the batch refuses two that share one)
                unique = path if path.is_symlink() else path.rename(path.with_name(f"{k.name}-{path.name}"))
                bad.append(unique)
    good = write(folder / "good.wav", tone(1.0))
    out = tmp_path / "out"
    result = run_shotoku("separate", *bad, good, "-o", out, "--model", "identity")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = error_lines(result)
    assert len(errors) == len(bad), result.stderr
    for path, line in zip(bad, errors):
        assert display_text(path) in line
    assert f"{len(bad)} of {len(bad) + 1} files failed" in result.stderr
    assert read_stem_set(out / "good", verify=True) is not None
    assert listing(out) == ["good", *(f"good/{n}" for n in ["bass.wav", "drums.wav", "other.wav", "stems.json",
                                                              "vocals.wav"])]  # fmt: skip


REFUSED = [k for k in KINDS if k.expect == "refused"]


@pytest.mark.parametrize("k", _params(REFUSED))
def test_play_refuses_bad_input(k: Kind, tmp_path: Path) -> None:
    """``shotoku play`` refuses each bad file with its reason (exit 1), before any audio output opens (this
    machine may have none: the reason must still be the file's)."""
    _, paths = make_inputs(k, tmp_path)
    result = run_shotoku("play", paths[0], "--duration", "0.5", unprivileged=k.unprivileged)
    assert "Traceback" not in result.stderr, result.stderr
    check_refused(k, result, paths, tmp_path / "no-output-folder")


@pytest.mark.parametrize("name", ["empty", "random_wav", "directory", "all_nan", "mp4_video_only"])
def test_play_decodes_before_opening_any_output(name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    from engine.playback import session as session_module

    def no_output(*_args, **_kwargs):
        raise AssertionError("an audio output was opened for a file that cannot be played")

    monkeypatch.setattr(session_module.PlaybackSession, "__init__", no_output)
    (path,) = kind(name).make(tmp_path)
    assert main(["play", str(path)]) == 1
    err = capsys.readouterr().err
    assert display_text(path) in err and "Traceback" not in err
