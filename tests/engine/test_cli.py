"""``shotoku separate`` / ``models`` end to end: formats, lengths, channel counts, bad input, exit codes."""

from __future__ import annotations

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
