"""engine.atomic: a write replaces the file whole, or leaves the old one byte-identical and no temporary file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from engine import atomic
from engine.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    assert atomic_write_text(target, "old") == target
    assert atomic_write_bytes(target, b"\x00new") == target
    assert target.read_bytes() == b"\x00new"
    atomic_write_json(target, {"a": [1, 2]})
    assert target.read_text(encoding="utf-8") == json.dumps({"a": [1, 2]}, indent=2) + "\n"
    assert listing(tmp_path) == ["card.json"]


def test_temporary_path_is_hidden_beside_the_target(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    with atomic_path(target, suffix=".tmp") as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".weights.safetensors.") and temp.name.endswith(".tmp")
        assert temp.exists() and not target.exists()
        temp.write_bytes(b"abc")
    assert target.read_bytes() == b"abc"
    assert not temp.exists()


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "meta.json"
    target.write_bytes(b"old bytes \xff")
    with pytest.raises(type(error)):
        with atomic_path(target) as temp:
            temp.write_bytes(b"half of the new")
            raise error
    assert target.read_bytes() == b"old bytes \xff"
    assert listing(tmp_path) == ["meta.json"]


def test_unserialisable_json_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "session.json"
    atomic_write_json(target, {"ok": True})
    before = target.read_bytes()
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_bytes() == before
    assert listing(tmp_path) == ["session.json"]


def test_file_and_folder_are_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else str(fd))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"data")
    assert len(flushed) == (2 if os.name != "nt" else 1)
    if os.path.exists("/proc/self/fd"):
        assert Path(flushed[0]).name.startswith(".x.bin.")  # the file, before its rename
        assert Path(flushed[1]) == tmp_path  # then the folder holding the new name
    flushed.clear()
    atomic_write_bytes(target, b"data", fsync=False)
    assert flushed == []
    assert target.read_bytes() == b"data"


def test_fsync_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["x.bin"]


def test_new_file_gets_normal_permissions_and_existing_mode_is_kept(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.json", "{}")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0o600
    private = tmp_path / "private.json"
    private.write_text("x")
    private.chmod(0o600)
    atomic_write_text(private, "y")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
