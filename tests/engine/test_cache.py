"""The on-disk stem store: keys, resume, corruption detection, LRU eviction."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from engine.separation.cache import DATA_FILE, META_FILE, StemCache, cache_key

SOURCES = ["vocals", "drums", "bass", "other"]


@pytest.fixture(autouse=True)
def _cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOTOKU_CACHE", str(tmp_path / "cache"))


def open_entry(cache: StemCache, key: str = "k1", n_samples: int = 10_000, region: int = 4096):
    return cache.open(key, SOURCES, 2, n_samples, 44100, region)


def test_default_root_follows_shotoku_cache(tmp_path: Path) -> None:
    assert StemCache().root == tmp_path / "cache" / "stems"


def test_key_depends_on_audio_model_and_weights() -> None:
    audio = np.zeros((2, 1000), dtype=np.float32)
    base = cache_key(audio, 44100, "m", "aa")
    assert base == cache_key(audio.copy(), 44100, "m", "aa")
    other = audio.copy()
    other[1, 500] = 1e-6
    assert len({base, cache_key(other, 44100, "m", "aa"), cache_key(audio, 44100, "n", "aa"),
                cache_key(audio, 44100, "m", "bb"), cache_key(audio, 48000, "m", "aa")}) == 5


def test_regions_persist_and_reopen_verified() -> None:
    cache = StemCache()
    entry = open_entry(cache)
    assert entry.n_regions == 3 and entry.stems.shape == (4, 2, 10_000)
    data = np.random.default_rng(0).standard_normal((4, 2, 10_000)).astype(np.float32)
    entry.write(0, data[:, :, :5000])
    entry.mark_done(0)  # [0, 4096)
    entry.close()
    again = open_entry(cache)
    assert again.recorded.tolist() == [1, 0, 0], "a partial entry resumes"
    assert again.verify(0) and not again.verify(1)
    np.testing.assert_array_equal(np.asarray(again.stems[:, :, :4096]), data[:, :, :4096])
    again.write(5000, data[:, :, 5000:])
    again.mark_done(1)
    again.mark_done(2)
    assert again.complete
    again.close()
    assert [e.complete for e in cache.entries()] == [True]


def test_corrupt_region_is_detected_and_forgotten() -> None:
    cache = StemCache()
    entry = open_entry(cache)
    entry.write(0, np.ones((4, 2, 10_000), dtype=np.float32))
    for k in range(3):
        entry.mark_done(k)
    path = entry.path
    entry.close()
    with open(path / DATA_FILE, "r+b") as handle:  # flip bytes inside region 1 of stem 2
        handle.seek((2 * 2 * 10_000 + 5000) * 4)
        handle.write(b"\x00\x00\xc0\x7f")
    again = open_entry(cache)
    assert again.recorded.tolist() == [1, 1, 1]
    assert [again.verify(k) for k in range(3)] == [True, False, True]
    assert again.recorded.tolist() == [1, 0, 1]
    assert "1" not in json.loads((path / META_FILE).read_text())["regions"]
    again.close()


@pytest.mark.parametrize("damage", ["truncate", "bad-json", "no-meta", "other-shape"])
def test_broken_entry_is_recreated(damage: str) -> None:
    cache = StemCache()
    entry = open_entry(cache)
    entry.write(0, np.ones((4, 2, 10_000), dtype=np.float32))
    entry.mark_done(0)
    path = entry.path
    entry.close()
    n_samples = 10_000
    if damage == "truncate":
        with open(path / DATA_FILE, "r+b") as handle:
            handle.truncate(1000)
    elif damage == "bad-json":
        (path / META_FILE).write_text("{not json")
    elif damage == "no-meta":
        (path / META_FILE).unlink()
    else:
        n_samples = 12_000
    again = open_entry(cache, n_samples=n_samples)
    assert again.recorded.sum() == 0
    assert (path / DATA_FILE).stat().st_size == 4 * 2 * n_samples * 4
    assert not np.asarray(again.stems).any()
    again.close()


def test_lru_eviction_keeps_open_and_recent_entries() -> None:
    size = 4 * 2 * 10_000 * 4
    cache = StemCache(max_bytes=int(2.5 * size))
    for key in ("a", "b"):
        open_entry(cache, key).close()
        time.sleep(0.01)
    open_entry(cache, "a").close()  # "a" is now more recent than "b"
    time.sleep(0.01)
    held = open_entry(cache, "c")  # 3 entries > 2.5: the least recently used ("b") goes
    assert sorted(e.key for e in cache.entries()) == ["a", "c"]
    cache.max_bytes = size // 2
    open_entry(cache, "d").close()  # over the limit: everything not open goes except the new one
    assert sorted(e.key for e in cache.entries()) == ["c", "d"]
    held.close()
    assert cache.evict() == ["c", "d"], "both exceed the limit once nothing is open; oldest first"
    cache.clear()
    assert cache.entries() == []


WRONG_TYPES = [
    {"regions": {"0": "abc"}}, {"regions": {"x": 1}}, {"regions": [1, 2]}, {"regions": {"0": -5}},
    {"last_used": "yesterday"}, {"created": None}, {"region_samples": 0}, {"region_samples": "4096"},
    {"samplerate": 44100.5}, {"shape": "big"}, {"shape": [4, 2]}, {"shape": [4, 2, -1]}, {"sources": 4},
    {"sources": ["vocals"]}, {"version": "1"}, {"info": "x"},
]


@pytest.mark.parametrize("damage", WRONG_TYPES, ids=[json.dumps(d) for d in WRONG_TYPES])
def test_meta_with_wrongly_typed_values_is_a_corrupt_entry(damage: dict, caplog: pytest.LogCaptureFixture) -> None:
    cache = StemCache()
    entry = open_entry(cache)
    entry.write(0, np.ones((4, 2, 10_000), dtype=np.float32))
    entry.mark_done(0)
    path = entry.path
    entry.close()
    meta = json.loads((path / META_FILE).read_text())
    meta.update(damage)
    (path / META_FILE).write_text(json.dumps(meta))
    assert len(cache.entries()) == 1 and cache.size_bytes() > 0  # listing and eviction read it without a crash
    with caplog.at_level("WARNING", logger="engine.separation.cache"):
        again = open_entry(cache)
    assert again.recorded.sum() == 0 and not np.asarray(again.stems).any()  # recomputed from nothing
    (note,) = [r.getMessage() for r in caplog.records]
    assert "meta.json" in note and "recomputing" in note and "\n" not in note
    again.mark_done(0)
    again.close()
    assert json.loads((path / META_FILE).read_text())["regions"] == {"0": again._meta["regions"]["0"]}  # repaired
    cache.evict(reserve_bytes=1 << 40)  # eviction copes with the repaired entry too
    assert cache.entries() == []
