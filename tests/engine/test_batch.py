"""``shotoku separate DIR --recursive [--jobs N] [--format stem.mp4]``: the mirrored tree, resume, the summary, the
song count and time left, several songs at once; and the batch's pieces (:mod:`engine.separation.batch`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cli import main
from engine.separation.batch import BatchItem, BatchProgress, find_songs

SR = 44100


def _song(path: Path, seconds: float = 1.0, freq: float = 330.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, np.stack([np.sin(2 * np.pi * freq * t)] * 2, axis=1) * 0.3, SR)


def _library(root: Path) -> list[Path]:
    songs = [root / "one.wav", root / "a" / "two.flac", root / "a" / "b" / "three.wav"]
    for k, path in enumerate(songs):
        _song(path, freq=220.0 * (k + 1))
    (root / "notes.txt").write_text("not audio")
    _song(root / ".hidden" / "secret.wav")
    _song(root / "a" / ".dot.wav")
    return songs


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["separate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_folder_is_separated_into_a_mirrored_tree_with_count_time_left_and_summary(tmp_path, capsys):
    _library(tmp_path / "lib")
    out = tmp_path / "lib" / "separated"  # inside the folder: its outputs are never read as songs
    code, stdout, err = _run(capsys, str(tmp_path / "lib"), "--recursive", "-o", str(out), "--model", "identity")
    assert code == 0, err
    for folder in ("one", "a/two", "a/b/three"):
        assert (out / folder / "stems.json").is_file() and (out / folder / "vocals.wav").is_file()
    assert not (out / "secret").exists() and not (out / "a" / "_dot").exists() and not (out / "notes").exists()
    assert "[1/3]" in err and "[3/3]" in err and "1/3 songs done, about" in err
    assert "3 done, 0 skipped (already done), 0 failed" in err
    assert len(stdout.split()) == 12  # every stem path printed
    code, _, err = _run(capsys, str(tmp_path / "lib"), "--recursive", "-o", str(out), "--model", "identity")
    assert code == 0 and "0 done, 3 skipped (already done), 0 failed" in err  # the output was not read as input


def test_without_recursive_only_the_folders_own_files(tmp_path, capsys):
    _library(tmp_path / "lib")
    code, _, err = _run(capsys, str(tmp_path / "lib"), "-o", str(tmp_path / "out"), "--model", "identity")
    assert code == 0 and "1 done" in err
    assert (tmp_path / "out" / "one" / "stems.json").is_file() and not (tmp_path / "out" / "a").exists()


def test_resume_redoes_only_what_is_missing_and_force_redoes_all(tmp_path, capsys):
    _library(tmp_path / "lib")
    out = tmp_path / "out"
    args = (str(tmp_path / "lib"), "-r", "-o", str(out), "--model", "identity")
    assert _run(capsys, *args)[0] == 0
    (out / "a" / "two" / "stems.json").unlink()  # as a run interrupted before this song's commit leaves it
    before = (out / "one" / "vocals.wav").stat().st_mtime_ns
    code, stdout, err = _run(capsys, *args)
    assert code == 0 and "1 done, 2 skipped (already done), 0 failed" in err
    assert stdout.split() and all("/a/two/" in line for line in stdout.split())
    assert (out / "a" / "two" / "stems.json").is_file() and (out / "one" / "vocals.wav").stat().st_mtime_ns == before
    code, _, err = _run(capsys, *args, "--model", "tiny")  # another model: not done yet
    assert code == 0 and "3 done, 0 skipped" in err
    code, _, err = _run(capsys, *args, "--model", "tiny", "--force")
    assert code == 0 and "3 done, 0 skipped" in err


def test_a_bad_file_fails_alone_and_the_summary_gives_its_reason(tmp_path, capsys):
    _library(tmp_path / "lib")
    bad = tmp_path / "lib" / "a" / "broken.wav"
    bad.write_bytes(b"RIFF" + b"\x00" * 40)
    code, _, err = _run(capsys, str(tmp_path / "lib"), "-r", "-o", str(tmp_path / "out"), "--model", "identity")
    assert code == 1 and "3 done, 0 skipped (already done), 1 failed" in err
    failure = next(line for line in err.splitlines() if line.startswith("shotoku: failed:"))
    assert str(bad) in failure and "Traceback" not in err
    assert (tmp_path / "out" / "a" / "b" / "three" / "stems.json").is_file()


def test_no_audio_in_the_folder_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--model", "identity")
    assert code == 1 and "a folder with no audio files" in err and "--recursive" in err


def test_an_empty_folder_beside_a_song_fails_in_its_place_not_silently(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _song(tmp_path / "good.wav")
    code, _, err = _run(capsys, str(tmp_path / "empty"), str(tmp_path / "good.wav"), "-o", str(tmp_path / "out"),
                        "--model", "identity")
    assert code == 1 and "1 done, 0 skipped (already done), 1 failed" in err
    failure = next(line for line in err.splitlines() if line.startswith("shotoku: failed:"))
    assert str(tmp_path / "empty") in failure and "folder" in failure
    assert (tmp_path / "out" / "good" / "stems.json").is_file()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stem_mp4_format_writes_one_stem_file_per_song_and_resumes(tmp_path, capsys):
    from engine.audio.stem_mp4 import STEM_ORDER, read_stem_mp4

    songs = _library(tmp_path / "lib")
    out = tmp_path / "out"
    args = (str(tmp_path / "lib"), "-r", "-o", str(out), "--model", "identity", "--format", "stem.mp4")
    code, stdout, err = _run(capsys, *args)
    assert code == 0, err
    assert sorted(Path(p).relative_to(out).as_posix() for p in stdout.split()) == [
        "a/b/three.stem.mp4", "a/two.stem.mp4", "one.stem.mp4"]
    read = read_stem_mp4(out / "a" / "b" / "three.stem.mp4")
    original = sf.read(songs[2], dtype="float32")[0].T
    assert list(read.stems) == list(STEM_ORDER) and read.master.shape == original.shape
    assert np.corrcoef(read.master[0], original[0])[0, 1] > 0.99  # identity model: every stem is the song
    assert np.corrcoef(read.stems["vocals"][0], original[0])[0, 1] > 0.99
    assert not [p for p in out.rglob(".*")]  # no staging left
    assert "0 done, 3 skipped" in _run(capsys, *args)[2]


def test_stem_mp4_refuses_options_it_cannot_hold(tmp_path, capsys):
    _song(tmp_path / "s.wav")
    for option in (["--stems", "vocals"], ["--two-stems", "vocals"], ["--bit-depth", "16"]):
        with pytest.raises(SystemExit) as exc:
            main(["separate", str(tmp_path / "s.wav"), "--format", "stem.mp4", "-o", str(tmp_path / "o"), *option])
        assert exc.value.code == 2 and option[0] in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(tmp_path / "s.wav"), "--jobs", "0"])
    assert exc.value.code == 2 and "--jobs 0" in capsys.readouterr().err


@pytest.mark.slow
def test_jobs_runs_songs_in_worker_processes(tmp_path, capsys):
    _library(tmp_path / "lib")
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, str(tmp_path / "lib"), "-r", "-o", str(out), "--model", "tiny", "--jobs", "2")
    assert code == 0, err
    assert "3 done, 0 skipped (already done), 0 failed" in err and len(stdout.split()) == 12
    for folder in ("one", "a/two", "a/b/three"):
        assert (out / folder / "stems.json").is_file()


def test_time_left_comes_from_the_audio_separated_so_far(tmp_path):
    now = [0.0]
    items = [BatchItem(tmp_path / f"{k}.wav", tmp_path, str(k)) for k in range(3)]
    lengths = {items[0]: 60.0, items[1]: 120.0, items[2]: None}  # the unknown one counts as the mean (90 s)
    progress = BatchProgress(items, lengths.get, clock=lambda: now[0])
    assert progress.seconds_left() is None and progress.line() == "0/3 songs done"
    now[0] = 30.0  # 60 s of audio in 30 s: 0.5 s per second of audio
    progress.finish(items[0])
    assert progress.seconds_left() == pytest.approx((120 + 90) * 0.5)
    assert progress.line() == "1/3 songs done, about 1 min 45 s left"


def test_find_songs_keeps_files_given_by_name_at_the_top(tmp_path):
    _library(tmp_path / "lib")
    lone = tmp_path / "elsewhere" / "lone.wav"
    _song(lone)
    items = find_songs([lone, tmp_path / "lib"], tmp_path / "out", recursive=True)
    assert [(i.source.name, i.out_dir, i.from_folder) for i in items] == [
        ("lone.wav", tmp_path / "out", False), ("one.wav", tmp_path / "out", True),
        ("two.flac", tmp_path / "out" / "a", True), ("three.wav", tmp_path / "out" / "a" / "b", True)]
