"""``shotoku dataset fetch``: download the real-audio Debian packages, unpack them and prepare the pools.

Writes into ``out`` (keep it outside git, e.g. ``~/.cache/shotoku/real`` or ``corpus/real``)::

    debs/<package>_<version>_all.deb           the downloaded packages (``apt-get download``)
    unpacked/<package>/...                     ``dpkg -x`` of each (nothing is installed)
    licences/<package>.copyright               the package's copyright file
    pools/<split>/<package>__<piece>/instrumental.flac   44.1 kHz stereo 24-bit FLAC of each real piece
    real_manifest.json                         every file with package, licence, duration, split

The pool folders work directly as ``--sources`` of the unpaired loader (``source_names=("instrumental",)``).
Decoding is deterministic, so the pools (and the manifest) are the same bytes on every machine with the same
package versions. Reserved packages are refused (:func:`~engine.data.real.sources.refuse_reserved`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing as mp
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.data.real import sources as srcs
from engine.data.real.splits import SPLIT_NAMES, SPLIT_SALT, SPLITS, split_of
from engine.errors import DatasetError

log = logging.getLogger("shotoku.data")

MANIFEST = "real_manifest.json"
SAMPLERATE = 44100
_FLAC_PEAK_CHUNK = 0x1050


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as err:
        raise DatasetError(None, f"{cmd[0]} failed: {err}") from err
    if proc.returncode != 0:
        raise DatasetError(None, f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}"
                           + (" (run `apt-get update` first)" if cmd[0] == "apt-get" else ""))
    return proc.stdout


def download(package: str, debs: Path) -> Path:
    """The package's ``.deb`` in ``debs``, downloaded with ``apt-get download`` unless already there."""
    srcs.refuse_reserved(package)
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        if shutil.which("apt-get") is None:
            raise DatasetError(None, "apt-get is needed to download Debian packages")
        _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise DatasetError(debs, f"apt-get download {package} left no .deb here")
    return found[-1]


def unpack(deb: Path, into: Path) -> Path:
    """``dpkg -x deb into`` once (a stamp file marks a finished unpack); returns ``into``."""
    stamp = into / ".unpacked"
    if not stamp.is_file():
        if into.exists():
            shutil.rmtree(into)
        into.mkdir(parents=True)
        _run(["dpkg", "-x", str(deb), str(into)])
        stamp.write_text(deb.name + "\n")
    return into


def deb_version(deb: Path) -> str:
    """The package version recorded in the ``.deb``."""
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_music(source: srcs.Source, root: Path) -> list[tuple[str, str]]:
    """``(piece, where)`` for every music file of ``source`` in its unpacked ``root``, sorted, duplicates by
    content removed; ``where`` is a path relative to ``root`` (or ``archive!member``)."""
    found: list[tuple[str, str, bytes]] = []
    if source.archive is not None:
        with zipfile.ZipFile(root / source.archive) as z:
            for member in sorted(z.namelist()):
                if any(Path(member).match(p) for p in source.files):
                    found.append((Path(member).stem, f"{source.archive}!{member}",
                                  hashlib.sha256(z.read(member)).digest()))
    else:
        for pattern in source.files:
            for path in sorted(root.glob(pattern)):
                if path.is_file():
                    found.append((path.stem, str(path.relative_to(root)), hashlib.sha256(path.read_bytes()).digest()))
    seen: set[bytes] = set()
    out = []
    for piece, where, digest in sorted(found):
        if digest not in seen:
            seen.add(digest)
            out.append((piece, where))
    return out


def read_music(root: Path, where: str) -> tuple[np.ndarray, int, dict[str, str]]:
    """Decode one music file: float32 ``(n_channels, n_samples)``, its rate, and its title/artist tags."""
    if "!" in where:
        archive, member = where.split("!", 1)
        with zipfile.ZipFile(root / archive) as z:
            handle: io.BytesIO | str = io.BytesIO(z.read(member))
    else:
        handle = str(root / where)
    with sf.SoundFile(handle) as f:
        tags = {k: getattr(f, k) for k in ("title", "artist") if getattr(f, k, "")}
        data = f.read(dtype="float32", always_2d=True)
        rate = f.samplerate
    return np.ascontiguousarray(data.T), rate, tags


def to_pool_audio(x: np.ndarray, rate: int) -> np.ndarray:
    """Stereo 44.1 kHz float32 ``(2, n_samples)`` (soxr for other rates; mono is duplicated)."""
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    x = x[:2]
    if rate != SAMPLERATE:
        import soxr

        x = soxr.resample(x.T, rate, SAMPLERATE, quality="HQ").T
    return np.ascontiguousarray(x, dtype=np.float32)


def loudness_lufs(x: np.ndarray, rate: int = SAMPLERATE) -> float:
    """Integrated loudness (ITU-R BS.1770, pyloudnorm) of ``(n_channels, n_samples)``; -70 for silence."""
    import pyloudnorm

    value = pyloudnorm.Meter(rate).integrated_loudness(np.asarray(x, dtype=np.float64).T)
    return float(value) if np.isfinite(value) else -70.0


def _prepare_piece(job: tuple[str, str, str, str, str]) -> dict:
    """Decode one piece into its pool (or reuse it); ``job`` = (out, package, root, piece, where)."""
    out, package, root, piece, where = job
    out_dir = Path(out)
    split = split_of(package, piece)
    name = f"{package}__{piece}"
    rel = Path("pools") / split / name / "instrumental.flac"
    sidecar = out_dir / rel.parent / "piece.json"
    if sidecar.is_file() and (out_dir / rel).is_file():
        return json.loads(sidecar.read_text())
    x, rate, tags = read_music(Path(root), where)
    entry = {"name": name, "package": package, "piece": piece, "source_path": where, "split": split,
             "original_samplerate": rate, "n_samples": int(round(x.shape[1] * SAMPLERATE / rate)),
             "seconds": round(x.shape[1] / rate, 3)} | tags
    if x.shape[1] / rate < srcs.MIN_PIECE_SECONDS:
        return entry | {"excluded": f"shorter than {srcs.MIN_PIECE_SECONDS:.0f} s (a stinger)"}
    y = to_pool_audio(x, rate)
    entry["n_samples"] = int(y.shape[1])
    entry["lufs"] = round(loudness_lufs(y), 2)
    entry["peak"] = round(float(np.abs(y).max()), 4)
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / rel.with_name(".instrumental.part.flac")
    sf.write(str(tmp), np.clip(y, -1.0, 1.0).T, SAMPLERATE, subtype="PCM_24", format="FLAC")
    tmp.replace(out_dir / rel)
    entry["file"] = str(rel)
    sidecar.write_text(json.dumps(entry, indent=1) + "\n")
    return entry


def fetch_real_audio(out: Path, *, packages: list[str] | None = None, debs: Path | None = None,
                     workers: int = 2, progress: Callable[[float, str], None] | None = None) -> dict:
    """Fetch every catalogue source (or only ``packages``), prepare the pools and write ``real_manifest.json``.

    Returns the manifest. Idempotent: finished downloads, unpacks and pool files are reused.
    """
    out = Path(out)
    debs = Path(debs) if debs is not None else out / "debs"
    wanted = list(packages) if packages else [s.package for s in srcs.ALL_SOURCES]
    for p in wanted:
        srcs.refuse_reserved(p)
    catalogue = [srcs.source(p) for p in wanted]
    (out / "licences").mkdir(parents=True, exist_ok=True)
    sources_meta, jobs, excluded = [], [], []
    for k, s in enumerate(catalogue):
        if progress is not None:
            progress(0.3 * k / len(catalogue), f"fetch {s.package}")
        deb = download(s.package, debs)
        root = unpack(deb, out / "unpacked" / s.package)
        copyright_file = root / "usr/share/doc" / s.package / "copyright"
        if copyright_file.is_file():
            shutil.copyfile(copyright_file, out / "licences" / f"{s.package}.copyright")
        sources_meta.append({"package": s.package, "version": deb_version(deb), "kind": s.kind, "licence": s.licence,
                             "deb": deb.name, "deb_sha256": _sha256(deb), "note": s.note,
                             "copyright_file": f"licences/{s.package}.copyright"})
        if s.kind != "music":
            continue
        for piece, where in list_music(s, root):
            reason = srcs.EXCLUDED_PIECES.get((s.package, piece))
            if reason is not None:
                excluded.append({"package": s.package, "piece": piece, "source_path": where, "reason": reason})
                continue
            jobs.append((str(out), s.package, str(root), piece, where))
    entries: list[dict] = []
    with mp.get_context("fork").Pool(max(1, workers)) as pool:
        for done, entry in enumerate(pool.imap_unordered(_prepare_piece, jobs), start=1):
            entries.append(entry)
            if progress is not None:
                progress(0.3 + 0.7 * done / max(len(jobs), 1), entry["name"])
    _remove_stale(out, {e["file"] for e in entries if "file" in e and "excluded" not in e})
    pieces = []
    for e in sorted(entries, key=lambda e: e["name"]):
        if "excluded" in e:
            excluded.append({"package": e["package"], "piece": e["piece"], "source_path": e["source_path"],
                             "reason": e["excluded"]})
            continue
        e["licence"] = srcs.source(e["package"]).licence_of(e["piece"])
        pieces.append(e)
    manifest = {
        "generator": "shotoku.real", "version": 1, "samplerate": SAMPLERATE,
        "split_rule": f"sha256('{SPLIT_SALT}/<package>/<group>')[:16] / 2**64, cut at cumulative fractions "
                      + ", ".join(f"{n} {f:g}" for n, f in SPLITS),
        "splits": {name: {"n_pieces": sum(p["split"] == name for p in pieces),
                          "minutes": round(sum(p["seconds"] for p in pieces if p["split"] == name) / 60, 2)}
                   for name in SPLIT_NAMES},
        "reserved_never_used": list(srcs.RESERVED_PACKAGES),
        "sources": sources_meta, "pieces": pieces,
        "excluded": sorted(excluded, key=lambda e: (e["package"], e["piece"])),
        "sounds": list_sounds(out, catalogue),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete pool folders (those with a ``piece.json``) of pieces no longer in the pools (e.g. newly excluded)."""
    for sidecar in sorted((out / "pools").glob("*/*/piece.json")):
        folder = sidecar.parent
        if str((folder / "instrumental.flac").relative_to(out)) not in keep:
            log.info("%s: no longer in the pools; removed", folder)
            shutil.rmtree(folder)


def list_sounds(out: Path, catalogue: list[srcs.Source]) -> list[dict]:
    """The SoundFonts and drum kits among the fetched sources, with their licences (for the manifest)."""
    from engine.data.synth.drumkit import load_drumkit

    sounds: list[dict] = []
    for s in catalogue:
        root = out / "unpacked" / s.package
        if s.kind in ("gm_bank", "drum_sf2"):
            for pattern in s.files:
                for path in sorted(root.glob(pattern)):
                    srcs.refuse_reserved(path)
                    sounds.append({"kind": s.kind, "package": s.package, "name": path.stem,
                                   "file": str(path.relative_to(out)), "licence": s.licence_of(path.name),
                                   "bytes": path.stat().st_size})
        elif s.kind == "drumkits":
            for pattern in s.files:
                for xml in sorted(root.glob(pattern)):
                    try:
                        kit = load_drumkit(xml.parent, load_samples=False)
                    except DatasetError as err:
                        log.warning("%s; kit left out", err)
                        continue
                    sounds.append({"kind": "drumkit", "package": s.package, "name": xml.parent.name,
                                   "file": str(xml.relative_to(out)), "licence": s.licence_of(xml.parent.name),
                                   "kit_licence": kit.licence, "role": kit.role,
                                   "gm_pitches": sorted(kit.pitches), "n_samples": kit.n_sample_files})
    return sounds


def load_manifest(real_dir: Path) -> dict:
    """The fetched manifest of ``real_dir``; :class:`DatasetError` with the command to make it when missing."""
    path = Path(real_dir) / MANIFEST
    if not path.is_file():
        raise DatasetError(path, f"no real-audio manifest; make it with: shotoku dataset fetch --out {real_dir}")
    manifest = json.loads(path.read_text())
    for p in manifest.get("pieces", []):
        srcs.refuse_reserved(p["package"])
    return manifest
