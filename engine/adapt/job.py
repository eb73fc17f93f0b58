"""The adaptation job: the user's library in, a model of their own out (``shotoku adapt``, the app's dialog).

A job lives in ``<data_dir>/adapt/<name>/`` (:func:`engine.paths.data_dir`) and runs in phases, each recorded in
``job.json`` (through :mod:`engine.atomic`), so a job stopped anywhere (cancel, Ctrl-C, a crash, a restart of the
app) resumes where it was:

1. **scan**: the songs' passages with and without singing, found by a vocals model, decoded into pool files
   (:mod:`engine.adapt.pools`); what was found (minutes of each) is reported;
2. **before**: the source model's vocal leakage on the held-out instrument-only pieces (of the training songs, and
   of the songs kept out) and its vocals uSDR on those pieces with a reference voice sung over them (the demo
   song's vocals, ``resources/demo/vocals.flac``: our synthetic singing, never the user's);
3. **train**: the source semi-supervised model fine-tuned with the ``semisup`` objective (R1-R4 and both GANs, its
   discriminators trained afresh) by the one :class:`~engine.train.trainer.Trainer` (checkpoint after every epoch,
   resume); the validation that picks ``best.safetensors`` is the reference-voice uSDR on the held-out pieces of
   the training songs (never the songs kept out); the time budget covers the whole job: what the scan and the
   scoring took (and will take) is taken out of the training's share;
4. **publish**: the best weights scored again like in 2, written with a card (which songs, how long, before and
   after) into a staging folder and renamed into :func:`engine.paths.user_models_dir` at once; a model of the same
   name is replaced only then, so a cancelled or failed job leaves every model as it was.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.adapt.passages import THRESHOLD_DB
from engine.adapt.pools import Detector, PoolClips, build_pools, heldout_pieces, library_files, read_pools
from engine.atomic import atomic_write_json
from engine.errors import DatasetError, ModelLoadError, SeparationCancelled, ShotokuError
from engine.paths import data_dir, models_dir, resources_dir, user_models_dir

JOB_FILE = "job.json"
#: The source model when none is named: the shipped semi-supervised model.
DEFAULT_SOURCE = "semisup"
#: Training settings of an adaptation (``objective_args`` come from the source's card): the paper's Adam, short
#: epochs so the time limit (checked after each epoch) is kept within about a minute.
TRAIN = {"batch_size": 4, "lr": 1e-4, "grad_clip": 0.0, "samples_per_epoch": 48, "patience": 1_000_000,
         "weight_decay": 0.0, "valid_tracks": 6, "valid_seconds": 10.0, "epochs": 100_000, "augment": False}
#: The training never gets less than this share of the budget, however long the scan took.
MIN_TRAIN_SHARE = 0.1
#: Vocals are mixed over the held-out pieces at this level relative to the piece (dB, RMS) for the validation.
REFERENCE_VOICE_DB = 0.0


@dataclass
class AdaptProgress:
    """One progress report: the phase, the whole job's fraction done, an estimate of the seconds left (None before
    one exists) and a short detail."""

    phase: str
    fraction: float
    seconds_left: float | None
    detail: str


@dataclass
class AdaptRequest:
    """What to adapt: the songs folder, the model's name, an optional instrument-only folder, the budget (minutes,
    the whole job), the source model (default :data:`DEFAULT_SOURCE`), the vocals model that finds the passages
    (default the default model), ``replace`` an existing model of that name, ``overrides`` (tests: ``train``
    settings and ``objective_args``)."""

    songs: str
    name: str
    instrumentals: str | None = None
    max_minutes: float = 60.0
    source: str | None = None
    detector: str | None = None
    replace: bool = False
    threshold_db: float = THRESHOLD_DB
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdaptRequest:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def jobs_dir() -> Path:
    """Where adaptation jobs live: ``<data_dir>/adapt``."""
    return data_dir() / "adapt"


def unfinished_jobs() -> list[dict[str, Any]]:
    """The jobs that can be resumed (``job.json`` of every job not published), newest first."""
    out = []
    for path in sorted(jobs_dir().glob(f"*/{JOB_FILE}")) if jobs_dir().is_dir() else []:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if state.get("phase") != "published":
            out.append(state)
    return sorted(out, key=lambda s: -float(s.get("updated", 0)))


def leakage_db(vocals: np.ndarray, audio: np.ndarray) -> float:
    """The vocal leakage on instrument-only audio: ``10 log10(sum vocals^2 / sum audio^2)`` (dB; lower is better;
    below -30 dB a karaoke is clean). Both ``(n_channels, n_samples)``."""
    num = float(np.sum(np.square(vocals, dtype=np.float64)))
    den = float(np.sum(np.square(audio, dtype=np.float64)))
    return float(10 * np.log10((num + 1e-12) / (den + 1e-12)))


def reference_voice(samplerate: int) -> np.ndarray:
    """The reference voice of the validation: the demo song's vocals ``(2, n)`` at ``samplerate``, its silent
    frames (below -50 dBFS over 0.25 s) cut out."""
    from engine.audio import load_audio

    voice = load_audio(resources_dir() / "demo" / "vocals.flac", samplerate=samplerate, n_channels=2).samples
    n = int(0.25 * samplerate)
    frames = voice[:, : voice.shape[-1] // n * n].reshape(2, -1, n)
    loud = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=(0, 2)) + 1e-12) > -50
    return np.ascontiguousarray(frames[:, loud].reshape(2, -1), dtype=np.float32)


def voice_tracks(pieces: list[tuple[str, np.ndarray]], sources: list[str], samplerate: int,
                 seconds: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Validation tracks ``(name, mixture, stems (n_stems, 2, n))``: each piece (cut to ``seconds``) with the
    reference voice over it at :data:`REFERENCE_VOICE_DB`, stems in ``sources`` order (vocals, accompaniment)."""
    voice = reference_voice(samplerate)
    tracks = []
    for k, (label, piece) in enumerate(pieces):
        piece = piece[:, : int(seconds * samplerate)]
        n = piece.shape[-1]
        start = (k * 7 * samplerate) % voice.shape[-1]
        vocals = np.resize(np.roll(voice, -start, axis=-1), (2, n)).astype(np.float32)
        gain = np.sqrt(np.mean(np.square(piece, dtype=np.float64)) / (np.mean(np.square(vocals)) + 1e-12))
        vocals *= np.float32(gain * 10 ** (REFERENCE_VOICE_DB / 20))
        stems = {"vocals": vocals, "accompaniment": piece.astype(np.float32)}
        tracks.append((label, (vocals + piece).astype(np.float32), np.stack([stems[s] for s in sources])))
    return tracks


def score_model(model: nn.Module, folder: Path, valid_seconds: float, n_threads: int) -> dict[str, Any]:
    """Leakage (median over pieces, dB) on the held-out pieces of each group and the reference-voice vocals uSDR
    (mean over the training songs' held-out pieces)."""
    from engine.separation.separator import Separator
    from engine.train.validation import evaluate_usdr

    separator = Separator(model, n_threads=n_threads)
    scores: dict[str, Any] = {"leakage_db": {}, "pieces": {}}
    for group in ("passages", "songs"):
        values = {}
        for label, piece in heldout_pieces(folder, group):
            values[label] = round(leakage_db(separator.separate(piece, model.samplerate, stems=["vocals"])["vocals"],
                                             piece), 2)
        scores["pieces"][group] = values
        scores["leakage_db"][group] = round(float(np.median(list(values.values()))), 2) if values else None
    tracks = voice_tracks(heldout_pieces(folder, "passages"), list(model.sources), model.samplerate, valid_seconds)
    usdr = evaluate_usdr(model, tracks, "cpu") if tracks else {}
    scores["voice_usdr"] = {k: round(v, 2) for k, v in usdr.items()}
    return scores


class AdaptJob:
    """One adaptation, run (or resumed) by :meth:`run`; see the module docstring.

    Args:
        request: what to adapt (ignored on resume: the job's own request is used).
        progress: called with :class:`AdaptProgress` often (after every file, every training step).
        cancel: set it to stop at the next file, step or piece (:class:`SeparationCancelled`; resumable).
        n_threads: torch threads (default: :func:`engine.separation.runner.default_threads`).
        detector: the vocals detector (default: the request's ``detector`` model through the Separator).
    """

    def __init__(self, request: AdaptRequest, progress: Callable[[AdaptProgress], None] | None = None,
                 cancel: threading.Event | None = None, n_threads: int | None = None,
                 detector: Detector | None = None) -> None:
        from engine.models.cards import check_name

        check_name(request.name)
        self.folder = jobs_dir() / request.name
        self.progress_fn = progress
        self.detector = detector
        self.cancel = cancel or threading.Event()
        from engine.separation.runner import default_threads

        self.n_threads = n_threads or default_threads()
        state = self._read_state()
        if state is not None and state.get("phase") != "published":
            self.request = AdaptRequest.from_json(state["request"])
            self.state = state
        else:
            self.request = request
            self.state = {"request": request.to_json(), "phase": "new", "seconds": {}}
        self._phase_started = time.monotonic()

    @classmethod
    def resume(cls, name: str, **kwargs: Any) -> AdaptJob:
        """The unfinished job ``name``; DatasetError when there is none."""
        path = jobs_dir() / name / JOB_FILE
        if not path.is_file():
            raise DatasetError(None, f"there is no unfinished adaptation called {name!r}")
        state = json.loads(path.read_text(encoding="utf-8"))
        return cls(AdaptRequest.from_json(state["request"]), **kwargs)

    @property
    def resuming(self) -> bool:
        return self.state.get("phase", "new") != "new"

    # -- state -------------------------------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / JOB_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise DatasetError(self.folder / JOB_FILE, f"the adaptation's state is damaged ({err}); remove the "
                                                        "folder to start afresh") from None

    def _save(self, phase: str | None = None) -> None:
        if phase is not None:
            self.state["phase"] = phase
        self.state["updated"] = time.time()
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write_json(self.folder / JOB_FILE, self.state)
        except OSError as err:
            raise DatasetError(self.folder / JOB_FILE, f"cannot be written ({err.strerror or err})") from None

    def _add_seconds(self, phase: str) -> None:
        now = time.monotonic()
        seconds = self.state.setdefault("seconds", {})
        seconds[phase] = round(seconds.get(phase, 0.0) + now - self._phase_started, 1)
        self._phase_started = now

    def _report(self, phase: str, fraction: float, seconds_left: float | None, detail: str) -> None:
        if self.cancel.is_set():
            raise SeparationCancelled("adaptation cancelled (resume it to go on)")
        if self.progress_fn is not None:
            self.progress_fn(AdaptProgress(phase, min(1.0, max(0.0, fraction)), seconds_left, detail))

    @property
    def budget_seconds(self) -> float:
        return 60.0 * float(self.request.max_minutes)

    def _elapsed(self) -> float:
        return sum(self.state.get("seconds", {}).values()) + time.monotonic() - self._phase_started

    # -- the phases ----------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse a bad request before any work: the name of a shipped model, an existing model (without
        ``replace``), no source model, folders without audio."""
        request = self.request
        if (models_dir() / request.name).is_dir():
            raise ModelLoadError(None, f"{request.name!r} is the name of a model that comes with Shotoku: choose "
                                       "another name")
        if (user_models_dir() / request.name).is_dir() and not request.replace and not self.resuming:
            raise ModelLoadError(None, f"you already have a model called {request.name!r}: choose another name, or "
                                       "replace it (--replace)")
        if request.max_minutes <= 0:
            raise DatasetError(None, f"the time budget must be positive, not {request.max_minutes:g} minutes")
        self.source_card()
        library_files(Path(request.songs))
        if request.instrumentals:
            library_files(Path(request.instrumentals))

    def source_card(self) -> Any:
        """The card of the model to adapt; ModelLoadError when it is missing or not a semi-supervised model."""
        from engine.models.catalogue import get_card

        name = self.request.source or DEFAULT_SOURCE
        try:
            card = get_card(name)
        except ModelLoadError:
            if self.request.source is None:
                raise ModelLoadError(None, f"no semi-supervised model ({DEFAULT_SOURCE!r}) is installed to adapt; "
                                           "name one with --from") from None
            raise
        if card.architecture != "semisup" or card.weights_sha256 is None:
            raise ModelLoadError(card.folder, f"model {name!r} is a {card.architecture!r} model: only trained "
                                              "semi-supervised ('semisup') models can be adapted")
        return card

    def scan(self) -> dict[str, Any]:
        """Phase 1 (see the module docstring); returns the summary (songs, minutes found, files skipped)."""
        from engine.adapt.pools import separator_detector
        from engine.models.catalogue import build_model, default_model_name

        card = self.source_card()
        model = build_model(card.architecture, dict(card.config))
        n_clip = (model.estimator.patch_frames - 1) * model.hop_length
        songs = library_files(Path(self.request.songs))
        instrumentals = library_files(Path(self.request.instrumentals)) if self.request.instrumentals else []
        detector = self.detector or separator_detector(self.request.detector or default_model_name(),
                                                       self.n_threads, self.cancel)
        started = time.monotonic()

        def report(fraction: float, detail: str) -> None:
            spent = time.monotonic() - started
            left = spent / max(fraction, 1e-3) * (1 - fraction) + self._train_budget(spent / max(fraction, 1e-3))
            self._report("scan", fraction * 0.1, left, f"finding passages: {detail}")

        pools = self.folder / "pools"
        if pools.exists():
            shutil.rmtree(pools)
        summary = build_pools(songs, instrumentals, pools, detector, card.samplerate, model.network_rate, n_clip,
                              self.request.threshold_db, report, self.cancel)
        self.state["found"] = summary.to_json()
        self._add_seconds("scan")
        self._save("scanned")
        return self.state["found"]

    def _train_budget(self, scan_seconds: float | None = None) -> float:
        """Seconds of training: the budget less the scan and twice the scoring (before, and after to come)."""
        spent = self.state.get("seconds", {})
        scan = spent.get("scan", 0.0) if scan_seconds is None else scan_seconds
        score = spent.get("before", 0.0)
        return max(MIN_TRAIN_SHARE * self.budget_seconds, self.budget_seconds - scan - 2 * score)

    def config(self) -> Any:
        """The training config: the source's architecture and arguments, its objective arguments (the pools
        replaced by the library's), :data:`TRAIN` and the job's time limit."""
        from engine.train.config import TrainConfig

        if "config" in self.state:
            return TrainConfig.from_json(self.state["config"])
        card = self.source_card()
        args = dict(card.training.get("objective", {}).get("args", {}))
        # the library's pools replace the recipe's; the source's weights are loaded by train(), not init_from
        for key in ("pool", "mixtures", "instrumentals", "valid_split", "supervised", "init_from"):
            args.pop(key, None)
        args.update(self.request.overrides.get("objective_args", {}))
        train = {**TRAIN, **self.request.overrides.get("train", {})}
        train["max_minutes"] = round(self._train_budget() / 60, 3)
        train.setdefault("threads", self.n_threads)
        config = TrainConfig.from_json({"architecture": "semisup", "model": dict(card.config),
                                        "objective": "semisup", "objective_args": args, "train": train,
                                        "notes": f"adaptation of {card.name!r} to {self.request.songs}"})
        self.state["config"] = config.to_json()
        return config

    def source_model(self) -> nn.Module:
        from engine.models.catalogue import load_from_card

        return load_from_card(self.source_card())

    def score_before(self) -> None:
        """Phase 2: the source model's scores."""
        self._report("score", 0.1, None, "scoring the model before adapting")
        seconds = self.config().train.valid_seconds
        self.state["before"] = score_model(self.source_model(), self.folder / "pools", seconds, self.n_threads)
        self._add_seconds("before")
        self.state.pop("config", None)  # the training's share of the budget is known now
        self.config()
        self._save("scored")

    def train(self) -> Any:
        """Phase 3: fine-tune through the semisup objective and the trainer (resumes its checkpoint)."""
        from engine.train.objectives import build_objective
        from engine.train.runtime import seed_everything
        from engine.train.trainer import Trainer

        config = self.config()
        settings = config.train
        seed_everything(settings.seed)
        objective = build_objective(config)
        source = self.source_model()
        objective.separator.estimator.load_state_dict(source.estimator.state_dict())
        model = objective.separator
        clips = PoolClips(self.folder / "pools", (model.estimator.patch_frames - 1) * model.hop_length,
                          settings.samples_per_epoch, settings.seed)
        pieces = heldout_pieces(self.folder / "pools", "passages")[: settings.valid_tracks]
        tracks = voice_tracks(pieces, list(model.sources), model.samplerate, settings.valid_seconds)
        budget = 60 * settings.max_minutes
        after = self.state.get("seconds", {}).get("before", 0.0)
        trainer: Trainer | None = None

        def progress(fraction: float, detail: str) -> None:
            done = trainer.elapsed() if trainer is not None else 0.0
            left = max(0.0, budget - done) + after
            total = self._elapsed() + left
            self._report("train", self._elapsed() / max(total, 1.0), left,
                         f"epoch {trainer.epoch + 1 if trainer else 1}: {detail}")

        trainer = Trainer(objective, config, self.folder / "run", show_progress=False,
                          progress=progress)
        self._save("training")
        try:
            result = trainer.fit(clips, tracks)
        finally:
            self._add_seconds("train")
            self.state["train"] = {"epochs": trainer.epoch, "steps": trainer.global_step,
                                   "seconds": round(trainer.elapsed(), 1)}
            self._save()
        self.state["train"].update(best_epoch=result.best_epoch, stopped=result.stopped,
                                   best_voice_usdr=result.best_usdr_per_stem)
        self._save("trained")
        return result

    def publish(self) -> Path:
        """Phase 4: score the best weights, write the model and its card, rename it into the user's models."""
        from safetensors.torch import load_file

        from engine.models.catalogue import save_model

        best = self.folder / "run" / "best.safetensors"
        if not best.is_file():
            raise DatasetError(best, "no training epoch finished within the time budget: give it more minutes")
        card = self.source_card()
        model = self.source_model()
        model.load_state_dict(load_file(str(best)))
        self._report("score", 0.95, self.state.get("seconds", {}).get("before"), "scoring the adapted model")
        after = score_model(model, self.folder / "pools", self.config().train.valid_seconds, self.n_threads)
        found = self.state["found"]
        before = self.state["before"]
        fields = {
            "architecture": card.architecture, "kind": "neural", "config": dict(card.config),
            "sources": list(card.sources), "samplerate": card.samplerate, "n_channels": card.n_channels,
            "segment_seconds": card.segment_seconds, "paper": card.paper,
            "summary": (f"Your model: {card.name} adapted to {len(found['songs'])} song(s) of "
                        f"{Path(self.request.songs).name} ({found['minutes']['mixtures']:.0f} + "
                        f"{found['minutes']['instrumentals']:.0f} min) in {self._elapsed() / 60:.0f} min"),
            "training": {"adapted_from": card.name, "source_sha256": card.weights_sha256,
                         "songs_folder": self.request.songs, "instrumentals_folder": self.request.instrumentals,
                         "found": found, "threshold_db": self.request.threshold_db, "seconds": self.state["seconds"],
                         "train": self.state.get("train", {}), "settings": self.state["config"]["train"],
                         "objective": {"name": "semisup", "args": self.state["config"]["objective_args"]}},
            "scores": {"before": before, "after": after},
        }
        staging = self.folder / "publish"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            built = save_model(model, self.request.name, fields, root=staging, dtype=None)
            target = user_models_dir() / self.request.name
            target.parent.mkdir(parents=True, exist_ok=True)
            old = target.with_name(f".replaced-{self.request.name}")
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                target.rename(old)
            built.rename(target)
        except OSError as err:
            raise DatasetError(staging, f"the adapted model cannot be written ({err.strerror or err}); your models "
                                        "are unchanged") from None
        shutil.rmtree(old, ignore_errors=True)
        self.state["after"] = after
        self._add_seconds("after")
        self._save("published")
        for leftover in ("pools", "publish"):  # the pool files are big; the run folder keeps the logs
            shutil.rmtree(self.folder / leftover, ignore_errors=True)
        return target

    def run(self) -> Path:
        """Every phase not done yet, in order; returns the new model's folder."""
        self.check()
        phase = self.state.get("phase", "new")
        try:
            if phase == "new":  # a published job of the same name leaves its folder: start it afresh
                shutil.rmtree(self.folder, ignore_errors=True)
                self._save("new")
                self.scan()
            else:
                read_pools(self.folder / "pools")
            if self.state["phase"] == "scanned":
                self.score_before()
            if self.state["phase"] in ("scored", "training"):
                self.train()
            return self.publish()
        except (MemoryError, torch.cuda.OutOfMemoryError):
            raise ShotokuError("the adaptation ran out of memory; close other programs and resume it") from None
