"""``shotoku separate`` / ``models`` end to end: formats, lengths, channel counts, bad input, exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write_song(path: Path, n_channels: int = 2, seconds: float = 1.5, samplerate: int = 44100, **kw) -> np.ndarray:
    t = np.arange(int(seconds * samplerate)) / samplerate
    data = np.stack([np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(n_channels)], axis=1) * 0.3
    sf.write(path, data, samplerate, **kw)
    return data


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("name", "n_channels", "seconds", "samplerate", "kw"),
    [
        ("stereo.wav", 2, 2.3, 44100, {}),
        ("mono.flac", 1, 0.7, 44100, {}),
        ("six.wav", 6, 1.0, 48000, {}),
        ("short.mp3", 2, 1.2, 44100, {"format": "MP3"}),
        ("one_sample.wav", 2, 1 / 44100, 44100, {}),
    ],
)
def test_separate_any_format_length_and_channels(tmp_path, capsys, name, n_channels, seconds, samplerate, kw):
    song = tmp_path / name
    write_song(song, n_channels, seconds, samplerate, **kw)
    frames = sf.info(song).frames
    code, out, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "--model", "identity",
                             "--segment", "0.5")
    assert code == 0, err
    written = [Path(line) for line in out.split()]
    assert sorted(p.stem for p in written) == ["bass", "drums", "other", "vocals"]
    for path in written:
        info = sf.info(path)
        assert (info.channels, info.frames, info.samplerate) == (2, frames, samplerate)


def test_identity_output_equals_input_as_float_wav(tmp_path, capsys):
    song = tmp_path / "exact.wav"
    write_song(song, 2, 3.1, 44100, subtype="FLOAT")
    code, _, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path), "--model", "identity",
                           "--bit-depth", "float", "--segment", "1")
    assert code == 0, err
    original, _ = sf.read(song, dtype="float32")
    vocals, _ = sf.read(tmp_path / "exact" / "vocals.wav", dtype="float32")
    assert np.array_equal(original, vocals)


def test_two_stems_and_stem_subset(tmp_path, capsys):
    song = tmp_path / "s.wav"
    write_song(song)
    code, out, _ = run_cli(capsys, "separate", str(song), "-o", str(tmp_path), "--model", "tiny", "--two-stems", "vocals")
    assert code == 0
    assert sorted(Path(p).name for p in out.split()) == ["no_vocals.wav", "vocals.wav"]
    vocals, _ = sf.read(tmp_path / "s" / "vocals.wav", dtype="float32")
    rest, _ = sf.read(tmp_path / "s" / "no_vocals.wav", dtype="float32")
    mix, _ = sf.read(song, dtype="float32")
    assert np.abs(vocals + rest - mix).max() < 1e-3  # 24-bit rounding of both files
    code, out, _ = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "b"), "--model", "tiny",
                           "--stems", "drums,bass", "--format", "flac")
    assert code == 0 and sorted(Path(p).name for p in out.split()) == ["bass.flac", "drums.flac"]


def test_oracle_with_reference_folder(tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    stems = {}
    for i, stem in enumerate(["vocals", "drums", "bass", "other"]):
        t = np.arange(44100) / 44100
        stems[stem] = np.stack([np.sin(2 * np.pi * 200 * (i + 1) * t)] * 2, axis=1) * 0.2
        sf.write(refs / f"{stem}.wav", stems[stem], 44100, subtype="FLOAT")
    sf.write(refs / "mixture.wav", sum(stems.values()), 44100, subtype="FLOAT")
    with pytest.raises(SystemExit) as exc:  # a usage error: argparse's exit 2
        main(["separate", str(refs / "mixture.wav"), "--model", "irm", "-o", str(tmp_path)])
    assert exc.value.code == 2 and "--reference" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "separate", str(refs / "mixture.wav"), "--model", "irm",
                           "--reference", str(refs), "-o", str(tmp_path))
    assert code == 0, err
    est, _ = sf.read(tmp_path / "mixture" / "bass.wav")
    sdr = 10 * np.log10((stems["bass"] ** 2).sum() / ((stems["bass"] - est) ** 2).sum())
    assert sdr > 20


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.mkdir(), "folder"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not audio at all\n" * 20), ""),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, make, reason):
    bad = tmp_path / "bad.wav"
    make(bad)
    code, out, err = run_cli(capsys, "separate", str(bad), "--model", "identity", "-o", str(tmp_path / "o"))
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("shotoku: error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and reason in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "bad").exists() or not any((tmp_path / "o" / "bad").iterdir())


def test_truncated_file_is_refused(tmp_path, capsys):
    song = tmp_path / "cut.flac"
    write_song(song, 2, 3.0)
    song.write_bytes(song.read_bytes()[: song.stat().st_size // 3])
    code, _, err = run_cli(capsys, "separate", str(song), "--model", "identity", "-o", str(tmp_path / "o"))
    assert code == 1 and str(song) in err and "Traceback" not in err


def test_unknown_model_and_usage_errors(tmp_path, capsys):
    song = tmp_path / "s.wav"
    write_song(song)
    code, _, err = run_cli(capsys, "separate", str(song), "--model", "nope")
    assert code == 1 and "unknown model 'nope'" in err
    with pytest.raises(SystemExit) as exc:
        main(["separate"])
    assert exc.value.code == 2
    assert main([]) == 2


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--overlap", "0.97"], "--overlap 0.97: must be between 0 and 0.95"),
        (["--segment", "0"], "--segment 0.0: must be positive"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda:99"], "device 'cuda:99' asked for"),
        (["--model", "tiny", "--stems", "vocals,kazoo"], "unknown stem(s) kazoo"),
        (["--model", "tiny", "--two-stems", "kazoo"], "--two-stems 'kazoo'"),
    ],
)
def test_usage_errors_exit_2_with_the_option_and_the_reason(tmp_path, capsys, options, reason):
    song = tmp_path / "s.wav"
    write_song(song)
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(song), "-o", str(tmp_path / "o"), *options])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "shotoku separate: error:" in err and reason in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_any_cuda_index_is_an_accepted_device_value():
    from engine.cli import build_parser

    args = build_parser().parse_args(["separate", "x.wav", "--device", "cuda:3"])
    assert args.device == "cuda:3"  # no fixed list of GPUs: select_device checks it against the machine


def test_models_lists_the_registry(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "irm" in out and "identity" not in out
    code, out, _ = run_cli(capsys, "models", "--all")
    assert "identity" in out
    code, out, _ = run_cli(capsys, "models", "irm")
    assert '"architecture": "oracle_mask"' in out


def test_entry_point_runs_as_a_process(tmp_path):
    song = tmp_path / "p.wav"
    write_song(song)
    result = subprocess.run(
        [sys.executable, "-m", "app", "separate", str(song), "--model", "tiny", "-o", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "vocals.wav").is_file()
    result = subprocess.run([sys.executable, "-m", "app", "separate", str(tmp_path / "missing.wav")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("shotoku: error:")


# -- issue 10: hostile names, batches, option values, models given as paths, the play exit code ----------------
@pytest.mark.parametrize(
    ("name", "folder"),
    [("...flac", "__"), ("..wav", "_"), (".hidden.wav", "_hidden"), ("a\nb.wav", "a_b"), ("back\\slash.wav", "back_slash"),
     ("東京 café.flac", "東京 café"), ("song.stem.mp4", "song"), ("noext", "noext"), (".wav", "_wav")],
)
def test_song_folder_names_are_safe(name, folder):
    from engine.separation.stemset import song_folder_name

    assert song_folder_name(Path(name)) == folder


@pytest.mark.parametrize("name", ["...flac", "..wav", ".hidden.wav"])
def test_stems_are_never_written_outside_the_output_folder(tmp_path, capsys, name):
    inputs = tmp_path / "in"
    inputs.mkdir()
    song = inputs / name
    write_song(song, seconds=0.3, format="FLAC" if name.endswith("flac") else "WAV")
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "separate", str(song), "-o", str(out), "--model", "identity")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert [p.name for p in inputs.iterdir()] == [name]
    (folder,) = out.iterdir()
    assert not folder.name.startswith(".") and folder.name not in (".", "..")
    assert all(Path(line).parent == folder for line in stdout.splitlines())


def test_two_inputs_with_one_song_name_refuse_the_batch_up_front(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_song(tmp_path / "a" / "song.flac", format="FLAC")
    write_song(tmp_path / "b" / "song.wav")
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(tmp_path / "a" / "song.flac"), str(tmp_path / "b" / "song.wav"),
              "-o", str(tmp_path / "o"), "--model", "identity"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert str(tmp_path / "a" / "song.flac") in line and str(tmp_path / "b" / "song.wav") in line and "'song'" in line
    assert not (tmp_path / "o").exists()


def test_one_file_given_twice_is_separated_once(tmp_path, capsys):
    song = tmp_path / "twice.wav"
    write_song(song)
    code, out, err = run_cli(capsys, "separate", str(song), str(song), "-o", str(tmp_path / "o"), "--model", "identity")
    assert code == 0 and "given more than once; separated once" in err
    assert len(out.split()) == 4


@pytest.mark.parametrize(
    ("value", "reason"),
    [("0.00001", "must be between 0.05 and 120 seconds"), ("nan", "must be a number of seconds"),
     ("inf", "must be a number of seconds"), ("1e9", "must be between 0.05 and 120 seconds"), ("-1", "must be positive")],
)
def test_segment_values_are_bounded_usage_errors(tmp_path, capsys, value, reason):
    song = tmp_path / "s.wav"
    write_song(song)
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(song), "-o", str(tmp_path / "o"), "--model", "identity", "--segment", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"--segment {float(value)}: {reason}" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["0", "-2", "100000"])
def test_thread_counts_are_bounded_usage_errors(tmp_path, capsys, value):
    song = tmp_path / "s.wav"
    write_song(song)
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(song), "-o", str(tmp_path / "o"), "--model", "identity", "--threads", value])
    assert exc.value.code == 2 and f"--threads {value}: must be between 1 and" in capsys.readouterr().err


def copy_card(tmp_path: Path, name: str = "identity", **changes) -> Path:
    """A model folder outside the registry: a copy of a shipped card with ``changes``."""
    import json

    from engine.paths import models_dir

    folder = tmp_path / "models" / name
    folder.mkdir(parents=True)
    card = json.loads((models_dir() / name / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_a_model_name_is_a_name_and_model_dir_loads_a_folder(tmp_path, capsys):
    song = tmp_path / "s.wav"
    write_song(song)
    folder = copy_card(tmp_path)
    relative = os.path.relpath(folder, ROOT / "resources" / "models")
    with pytest.raises(SystemExit) as exc:
        main(["separate", str(song), "-o", str(tmp_path / "o"), "--model", relative])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "a model name is a name" in err and "--model-dir" in err
    code, out, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "o"), "--model-dir", str(folder))
    assert code == 0 and len(out.split()) == 4, err


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"weights_sha256": 12345}, "weights_sha256 must be"), ({"config": "fast"}, "config must be an object"),
     ({"segment_seconds": 0}, "segment_seconds must be"), ({"config": {"segment_seconds": 0}}, "config.segment_seconds"),
     ({"sources": "vocals"}, "sources must be"), ({"samplerate": "44100"}, "samplerate must be")],
)
def test_malformed_cards_are_one_line_exit_1(tmp_path, capsys, changes, reason):
    song = tmp_path / "s.wav"
    write_song(song)
    folder = copy_card(tmp_path, **changes)
    code, _, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "o"), "--model-dir", str(folder))
    assert code == 1 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("shotoku: error:")]
    assert str(folder / "card.json") in line and "model card is not valid" in line and reason in line, line


def test_weights_full_of_nan_with_a_matching_checksum_are_refused(tmp_path, capsys):
    import json

    import torch

    from engine.models.catalogue import build_model, save_model

    model = build_model("tiny", {"segment_seconds": 0.5, "seed": 1})
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    save_model(model, "nanny", {"architecture": "tiny", "kind": "test", "config": {"segment_seconds": 0.5},
                                "sources": ["vocals", "drums", "bass", "other"], "segment_seconds": 0.5},
               root=tmp_path, dtype=None)  # fmt: skip
    assert json.loads((tmp_path / "nanny" / "card.json").read_text())["weights_sha256"]  # the checksum matches
    song = tmp_path / "s.wav"
    write_song(song)
    code, out, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "o"), "--model-dir",
                             str(tmp_path / "nanny"))  # fmt: skip
    assert code == 1 and out == "" and "Traceback" not in err
    assert "NaN or infinite" in err and str(tmp_path / "nanny" / "weights.safetensors") in err


def test_unreadable_weights_are_one_line_exit_1(tmp_path):
    from tests.hostile.runner import error_lines, permissions_bind, run_shotoku

    if (why := permissions_bind(tmp_path)) is not None:
        pytest.skip(why)
    from engine.paths import models_dir

    folder = tmp_path / "wavenet"
    shutil.copytree(models_dir() / "wavenet", folder)
    (folder / "weights.safetensors").chmod(0)
    song = tmp_path / "s.wav"
    write_song(song)
    result = run_shotoku("separate", song, "-o", tmp_path / "o", "--model-dir", folder, unprivileged=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert "weights cannot be read (permission denied)" in line and str(folder) in line


def test_messages_and_paths_print_whatever_the_name(tmp_path, capsys):
    from engine.cli import display_text

    assert display_text("a\nb\tc\x07d") == "a\\nb\\tc\\x07d"
    assert display_text(os.fsdecode(b"caf\xe9.wav")) == "caf\\xe9.wav"
    assert display_text("東京 café ♫") == "東京 café ♫"
    song = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9\nx.wav")))
    code, _, err = run_cli(capsys, "separate", str(song), "--model", "identity", "-o", str(tmp_path / "o"))
    assert code == 1 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("shotoku: error:")]
    assert "caf\\xe9\\nx.wav: file not found" in line


class _DyingSession:
    """A stand-in PlaybackSession whose separation child dies once playback started."""

    def __init__(self, **_kwargs) -> None:
        from engine.playback.mix import MixState
        from engine.playback.session import SessionState

        self.state, self.message, self.title = SessionState.PLAYING, "", ""
        self.mix, self.position_seconds, self.duration_seconds = MixState.default(["vocals", "drums"]), 0.0, 1.0
        self.separated_fraction, self.underruns, self.closed = 0.0, 0, False
        self.separation = type("Separation", (), {"error": None})()

    def open(self, audio, play: bool = True) -> None:
        self.audio = audio

    def apply_mix(self, mix) -> None:
        self.mix = mix

    def play(self) -> None:
        self.separation.error = "the separation process died (killed by signal 9)"

    def close(self) -> None:
        self.closed = True


def test_play_says_why_when_the_separation_dies_and_exits_1(tmp_path, capsys, monkeypatch):
    from engine.playback import session as session_module

    sessions = []
    monkeypatch.setattr(session_module, "PlaybackSession", lambda **kw: sessions.append(_DyingSession(**kw))
                        or sessions[-1])  # fmt: skip
    song = tmp_path / "s.wav"
    write_song(song)
    assert main(["play", str(song), "--gain", "vocals=-inf"]) == 1
    err = capsys.readouterr().err
    assert "shotoku play: error: separation failed: the separation process died (killed by signal 9)" in err
    assert "Traceback" not in err and sessions[0].closed


def test_sigterm_handling_is_restored_after_main(tmp_path, capsys):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    run_cli(capsys, "separate", str(tmp_path / "missing.wav"), "--model", "identity")
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_forked_worker_dies_of_sigterm_quietly_instead_of_raising():
    import multiprocessing
    import signal

    from engine.cli import _signals_raise

    context = multiprocessing.get_context("fork")
    with _signals_raise():
        ready = context.Event()
        worker = context.Process(target=_wait_forever, args=(ready,))
        worker.start()
        assert ready.wait(60)
        worker.terminate()  # what multiprocessing.Pool.terminate does to its workers
        worker.join(60)
    assert worker.exitcode == -signal.SIGTERM  # killed by the signal: no Terminated traceback, exit code 1


def _wait_forever(ready) -> None:  # noqa: ANN001
    import time

    ready.set()
    while True:
        time.sleep(0.1)


def test_a_long_song_at_another_rate_is_resampled_through_a_file_as_in_memory(monkeypatch, tmp_path):
    """The streamed resampling of long inputs (into an unlinked file) gives what the in-memory one gives."""
    from engine.separation import separator as separator_module

    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, 48000 * 3))).astype(np.float32)
    path = tmp_path / "mix.f32"
    mix.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=mix.shape)
    sep = separator_module.Separator("identity", segment_seconds=1.0, n_threads=1)
    whole = sep.separate(mix, 48000)["vocals"]
    monkeypatch.setattr(separator_module, "_LONG_SAMPLES", 1 << 14)
    streamed = sep.separate(mapped, 48000)["vocals"]
    assert streamed.shape == whole.shape == mix.shape
    assert np.abs(streamed - whole).max() < 1e-6  # the same resampler, run in blocks


def test_the_device_label_names_the_threads_the_separation_uses(tmp_path, capsys):
    """The label showed torch's own thread count of the calling process (2), not the rule's 1 thread."""
    import torch

    from engine.separation.device import describe_device
    from engine.separation.runner import default_threads

    assert describe_device(torch.device("cpu"), 1).endswith(", 1 thread)")
    assert describe_device(torch.device("cpu")).endswith(f", {default_threads()} thread{'s' * (default_threads() != 1)})")
    song = tmp_path / "s.wav"
    write_song(song)
    code, _, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "o"), "--model", "identity",
                           "--threads", "3")
    assert code == 0, err
    assert "3 threads)" in err
