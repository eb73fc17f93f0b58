"""Faults a musician's machine has: a kill mid-export, a full disk, a folder that cannot be written, a flipped byte
in the weights or the stem cache, two runs at once, a long song. Nothing written before is lost; nothing
half-written sits under a final name; the next run cleans up what a killed one left.

The exports are real ``shotoku separate`` processes (tests/hostile/runner.py); a full disk is a 256 KiB tmpfs
(mounting needs root: skipped with the reason where it is refused).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.separation.stemset import MANIFEST_FILE, STAGING_PREFIX, read_stem_set
from tests.hostile.corpus import tone, write
from tests.hostile.runner import (
    HANG_SECONDS,
    ROOT,
    error_lines,
    leftovers,
    permissions_bind,
    run_shotoku,
    start_shotoku,
)

SR = 44100
STEM_FILES = ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes)."""
    return {os.fsdecode(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def old_set(tmp_path: Path, out: Path, seconds: float = 0.05) -> dict[str, bytes]:
    """A complete earlier set in ``out/song/`` (separated from a short tone); returns its bytes."""
    source = tmp_path / "earlier" / "song.wav"
    source.parent.mkdir(exist_ok=True)
    write(source, tone(seconds, amplitude=0.1))
    result = run_shotoku("separate", source, "-o", out, "--model", "identity")
    assert result.returncode == 0, result.stderr
    return snapshot(out)


def staged_bytes(out: Path) -> int:
    """Bytes written so far in the staging folders of ``out``."""
    total = 0
    for folder in out.glob(STAGING_PREFIX + "*"):
        for f in folder.rglob("*"):
            try:
                total += f.stat().st_size
            except OSError:
                pass
    return total


def wait_for_writing(process: subprocess.Popen, out: Path, at_least: int = 1 << 18) -> None:
    """Wait until ``process`` has written ``at_least`` bytes of stems (and still runs); fail on a hang or an end."""
    deadline = time.monotonic() + HANG_SECONDS
    while staged_bytes(out) < at_least:
        if process.poll() is not None:
            pytest.fail(f"the export ended (exit {process.returncode}) before it could be interrupted: "
                        f"{process.stderr.read().decode(errors='replace')[-1000:]}")  # fmt: skip
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the export wrote nothing")
        time.sleep(0.005)


@pytest.fixture
def long_song(tmp_path: Path) -> Path:
    """Two minutes of tone under the same song name as :func:`old_set`'s, in another folder."""
    path = tmp_path / "new" / "song.wav"
    path.parent.mkdir()
    return write(path, tone(120.0))


def test_kill_9_mid_export_loses_nothing_and_the_next_run_cleans_up(tmp_path: Path, long_song: Path) -> None:
    out = tmp_path / "out"
    before = old_set(tmp_path, out)
    process = start_shotoku("separate", long_song, "-o", out, "--model", "identity", "--segment", "1")
    wait_for_writing(process, out)
    process.kill()  # SIGKILL: no cleanup can run
    process.wait(HANG_SECONDS)
    # Every file under a final name is the earlier, complete one; what was being written is in a staging folder.
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(STAGING_PREFIX)} == before
    assert read_stem_set(out / "song", verify=True) is not None
    assert list(out.glob(STAGING_PREFIX + "*")), "the killed run left nothing to clean up (was it writing?)"

    again = run_shotoku("separate", long_song, "-o", out, "--model", "identity")
    assert again.returncode == 0, again.stderr
    assert "removed 1 temporary folder(s)" in again.stderr
    assert leftovers(out) == []
    stem_set = read_stem_set(out / "song", verify=True)
    assert stem_set is not None and stem_set.manifest["n_samples"] == 120 * SR


def test_a_running_export_is_not_cleaned_up_by_another_run(tmp_path: Path, long_song: Path) -> None:
    out = tmp_path / "out"
    process = start_shotoku("separate", long_song, "-o", out, "--model", "identity", "--segment", "1")
    try:
        wait_for_writing(process, out)
        other = write(tmp_path / "other.wav", tone(0.2))
        result = run_shotoku("separate", other, "-o", out, "--model", "identity")
        assert result.returncode == 0 and "removed" not in result.stderr
    finally:
        process.wait(HANG_SECONDS)
    assert process.returncode == 0, process.stderr.read().decode(errors="replace")
    assert read_stem_set(out / "song", verify=True) is not None and leftovers(out) == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_remove_the_temporary_files(tmp_path: Path, long_song: Path, signum: int,
                                                       code: int) -> None:  # fmt: skip
    out = tmp_path / "out"
    before = old_set(tmp_path, out)
    process = start_shotoku("separate", long_song, "-o", out, "--model", "identity", "--segment", "1")
    wait_for_writing(process, out)
    process.send_signal(signum)
    _, err = process.communicate(timeout=HANG_SECONDS)
    assert process.returncode == code, err.decode(errors="replace")
    assert b"Traceback" not in err
    assert leftovers(out) == [] and snapshot(out) == before


KILL_BETWEEN_RENAMES = textwrap.dedent("""
    import os, signal, sys
    from engine.separation.stemset import STAGING_PREFIX
    real, renamed = os.replace, []
    def replace(src, dst):
        if STAGING_PREFIX not in os.fspath(dst) and os.fspath(dst).endswith(".wav"):
            renamed.append(dst)
            if len(renamed) == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # the second stem of four: killed between two renames
        return real(src, dst)
    os.replace = replace
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_kill_between_renames_leaves_a_set_that_says_it_is_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = old_set(tmp_path, out)
    new = write(tmp_path / "song.wav", tone(1.0, amplitude=0.5))
    command = [sys.executable, "-c", KILL_BETWEEN_RENAMES, "separate", str(new), "-o", str(out), "--model",
               "identity"]  # fmt: skip
    killed = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=HANG_SECONDS)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    now = snapshot(out)
    changed = [name for name in STEM_FILES if now.get(f"song/{name}") != before[f"song/{name}"]]
    assert len(changed) == 1, changed  # one new stem beside three old ones...
    assert f"song/{MANIFEST_FILE}" not in now  # ...and no manifest: the folder does not look complete
    assert read_stem_set(out / "song") is None

    again = run_shotoku("separate", new, "-o", out, "--model", "identity")
    assert again.returncode == 0 and "removed 1 temporary folder(s)" in again.stderr
    stem_set = read_stem_set(out / "song", verify=True)
    assert stem_set is not None and leftovers(out) == []
    mix, _ = sf.read(new, dtype="float32")
    for path in stem_set.files.values():
        assert np.abs(sf.read(path, dtype="float32")[0] - mix).max() < 1e-4  # all four from the new run


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs at ``tmp_path/disk`` (unmounted afterwards)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True,
                             text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_earlier_stems(tmp_path: Path, small_disk: Path) -> None:
    out = small_disk / "out"
    before = old_set(tmp_path, out)
    (tmp_path / "new").mkdir()
    new = write(tmp_path / "new" / "song.wav", tone(2.0))
    result = run_shotoku("separate", new, "-o", out, "--model", "identity")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert "no space left on device" in line and str(out / "song") in line, line
    assert snapshot(out) == before and leftovers(out) == []


@pytest.mark.parametrize("how", ["permissions", "read-only"])
def test_an_unwritable_output_folder_is_one_line_and_keeps_the_earlier_stems(tmp_path: Path, how: str) -> None:
    out = tmp_path / "out"
    before = old_set(tmp_path, out)
    new = write(tmp_path / "song.wav", tone(1.0))
    if how == "permissions":
        if (why := permissions_bind(tmp_path)) is not None:
            pytest.skip(why)
        for folder in (out, out / "song"):
            folder.chmod(0o555)
        expected = "permission denied"
    else:
        bound = subprocess.run(["mount", "--bind", "-o", "ro", str(out), str(out)], capture_output=True, text=True)
        if bound.returncode != 0:
            pytest.skip(f"cannot mount the folder read-only (needs root): {bound.stderr.strip()}")
        subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], check=False)
        expected = "read-only"
    try:
        result = run_shotoku("separate", new, "-o", out, "--model", "identity", unprivileged=how == "permissions")
    finally:
        if how == "permissions":
            for folder in (out, out / "song"):
                folder.chmod(0o755)
        else:
            subprocess.run(["umount", str(out)], check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert expected in line and str(out) in line, line
    assert snapshot(out) == before and leftovers(out) == []


@pytest.fixture
def models_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A resources root with a copy of the shipped ``wavenet`` model (``SHOTOKU_RESOURCES`` points at it)."""
    from engine.paths import models_dir

    root = tmp_path / "resources"
    shutil.copytree(models_dir() / "wavenet", root / "models" / "wavenet")
    monkeypatch.setenv("SHOTOKU_RESOURCES", str(root))
    return root / "models" / "wavenet"


def test_a_flipped_byte_in_shipped_weights_is_refused(tmp_path: Path, models_copy: Path) -> None:
    weights = models_copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    song = write(tmp_path / "song.wav", tone(0.5))
    result = run_shotoku("separate", song, "-o", tmp_path / "out", "--model", "wavenet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert str(weights) in line and "corrupt" in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_flipped_byte_in_the_stem_cache_is_recomputed_with_a_message(cache, caplog) -> None:
    from engine.audio import Audio
    from engine.models.catalogue import build_model
    from engine.playback.session import PlaybackSession

    model = build_model("tiny", {"segment_seconds": 0.5})
    audio = Audio(tone(3.0).T.astype(np.float32).copy(), SR)
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1, worker_process=False)
    try:
        session.open(audio, model=model, region_samples=16384, play=False)
        _wait(lambda: session.worker is not None and session.worker.done)
        first = np.array(session.separation.stems)
        entry = session.worker.entry.path
        session.close_song()
        data = entry / "stems.f32"
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 3] ^= 0x40
        data.write_bytes(bytes(raw))
        with caplog.at_level(logging.WARNING, logger="engine.separation.cache"):
            session.open(audio, model=model, region_samples=16384, play=False)
            _wait(lambda: session.worker is not None and session.worker.done)
        worker = session.worker
        assert worker.regions_separated == 1, "the corrupt region is separated again, the others are trusted"
        assert any("corrupt" in r.getMessage() for r in caplog.records)
        assert np.array_equal(np.array(session.separation.stems), first)
    finally:
        session.close()


@pytest.mark.parametrize("damage", [{"regions": {"0": "abc"}}, {"regions": {"x": 1}}, {"last_used": "yesterday"},
                                    {"region_samples": 0}, {"shape": "big"}, {"sources": 4}])
def test_a_stem_cache_meta_with_wrong_types_is_recomputed_with_a_note(cache, caplog, damage: dict) -> None:
    import json

    from engine.audio import Audio
    from engine.models.catalogue import build_model
    from engine.playback.session import PlaybackSession

    model = build_model("tiny", {"segment_seconds": 0.5})
    audio = Audio(tone(2.0).T.astype(np.float32).copy(), SR)
    session = PlaybackSession(cache=cache, open_output=False, worker_threads=1, worker_process=False)
    try:
        session.open(audio, model=model, region_samples=16384, play=False)
        _wait(lambda: session.worker is not None and session.worker.done)
        meta_path = session.worker.entry.path / "meta.json"
        session.close_song()
        meta = json.loads(meta_path.read_text())
        meta.update(damage)
        meta_path.write_text(json.dumps(meta))
        with caplog.at_level(logging.WARNING, logger="engine.separation.cache"):
            session.open(audio, model=model, region_samples=16384, play=False)
            _wait(lambda: session.worker is not None and session.worker.done)
        assert session.separation.error is None
        assert session.worker.regions_separated == session.worker.entry.n_regions  # recomputed whole
        notes = [r.getMessage() for r in caplog.records if "meta.json" in r.getMessage()]
        assert len(notes) == 1 and "\n" not in notes[0] and "recomputing" in notes[0], notes
        assert json.loads(meta_path.read_text())["regions"]  # and repaired on disk
    finally:
        session.close()


def _wait(condition, timeout: float = HANG_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("models", [("identity", "identity"), ("identity", "tiny")])
def test_two_runs_on_one_song_at_once_end_complete_and_consistent(tmp_path: Path, models: tuple[str, str]) -> None:
    song = write(tmp_path / "song.wav", tone(8.0))
    out = tmp_path / "out"
    alone = {}
    for model in set(models):  # what each model writes on its own
        result = run_shotoku("separate", song, "-o", tmp_path / model, "--model", model, "--segment", "0.5")
        assert result.returncode == 0, result.stderr
        alone[model] = snapshot(tmp_path / model / "song")
    runs = [start_shotoku("separate", song, "-o", out, "--model", m, "--segment", "0.5") for m in models]
    for run in runs:
        _, err = run.communicate(timeout=HANG_SECONDS)
        assert run.returncode == 0, err.decode(errors="replace")
    stem_set = read_stem_set(out / "song", verify=True)
    assert stem_set is not None and leftovers(out) == []
    winner = stem_set.manifest["model"]
    final = {name: data for name, data in snapshot(out / "song").items() if name != MANIFEST_FILE}
    assert final == {n: d for n, d in alone[winner].items() if n != MANIFEST_FILE}, "a mix of two runs"


@pytest.mark.slow
def test_a_20_minute_song_separates_within_the_memory_target(tmp_path: Path) -> None:
    """The default model on 20 minutes of audio: peak RSS under 1.5 GB (the separate path streams)."""
    song = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(song, "w", SR, 2, subtype="PCM_16") as f:
        for _ in range(20 * 6):  # 10-s blocks: a tone and a little noise
            f.write(tone(10.0) + 0.01 * rng.standard_normal((10 * SR, 2)))
    result = run_shotoku("separate", song, "-o", tmp_path / "out", timeout=3600)
    assert result.returncode == 0, result.stderr
    stem_set = read_stem_set(tmp_path / "out" / "long")
    assert stem_set is not None and stem_set.manifest["n_samples"] == 20 * 60 * SR
    print(f"20-minute song, default model: peak RSS {result.peak_rss_mb:.0f} MB")
    assert result.peak_rss_mb < 1500, f"peak RSS {result.peak_rss_mb:.0f} MB"
