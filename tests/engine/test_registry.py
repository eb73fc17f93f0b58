"""Model cards, safetensors weights and their sha256 checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ModelLoadError
from engine.models.catalogue import (
    architectures,
    build_model,
    default_model_name,
    get_card,
    list_cards,
    load_model,
    save_model,
)

TINY_FIELDS = {
    "architecture": "tiny",
    "kind": "test",
    "summary": "tiny test model",
    "config": {"hidden": 4, "kernel_size": 3, "segment_seconds": 0.1, "seed": 3},
    "sources": ["vocals", "drums", "bass", "other"],
    "segment_seconds": 0.1,
}


@pytest.fixture
def saved_tiny(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = build_model("tiny", TINY_FIELDS["config"])
    save_model(model, "mytiny", TINY_FIELDS, root=tmp_path, dtype=None)
    return tmp_path, model


def test_bundled_cards_parse_and_reference_models_load():
    names = {c.name for c in list_cards(include_hidden=True)}
    assert {"identity", "tiny", "irm", "ibm"} <= names
    assert "identity" not in {c.name for c in list_cards()}  # test-only models are hidden by default
    for name in ("identity", "tiny", "irm", "ibm"):
        model = load_model(name)
        assert model.sources == get_card(name).sources
        assert not model.training


def test_every_architecture_is_registered():
    assert {"identity", "tiny", "oracle_mask"} <= set(architectures())


def test_save_and_load_round_trip(saved_tiny):
    root, model = saved_tiny
    card = json.loads((root / "mytiny" / "card.json").read_text())
    assert len(card["weights_sha256"]) == 64
    loaded = load_model("mytiny", root=root)
    x = torch.randn(1, 2, 500)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_float16_weights_load_into_float32_model(tmp_path):
    model = build_model("tiny", TINY_FIELDS["config"])
    save_model(model, "half", TINY_FIELDS, root=tmp_path)
    assert get_card("half", root=tmp_path).weights_dtype == "float16"
    loaded = load_model("half", root=tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32


def test_corrupt_weights_are_refused(saved_tiny):
    root, _ = saved_tiny
    weights = root / "mytiny" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="corrupt or do not match") as err:
        load_model("mytiny", root=root)
    assert "weights.safetensors" in str(err.value)


def test_missing_weights_are_refused(saved_tiny):
    root, _ = saved_tiny
    (root / "mytiny" / "weights.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        load_model("mytiny", root=root)


def test_weights_of_another_architecture_are_refused(saved_tiny):
    root, _ = saved_tiny
    card_path = root / "mytiny" / "card.json"
    card = json.loads(card_path.read_text())
    card["config"]["hidden"] = 6  # shapes no longer fit; sha256 still matches
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model("mytiny", root=root)


def test_pickles_are_never_loaded(saved_tiny):
    root, model = saved_tiny
    weights = root / "mytiny" / "weights.safetensors"
    torch.save(model.state_dict(), weights)  # a pickle where safetensors belongs
    card_path = root / "mytiny" / "card.json"
    card = json.loads(card_path.read_text())
    from engine.models.catalogue import sha256_file

    card["weights_sha256"] = sha256_file(weights)
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="not a valid safetensors"):
        load_model("mytiny", root=root)


def test_bad_cards_and_unknown_names(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="card is not valid"):
        get_card("broken", root=tmp_path)
    with pytest.raises(ModelLoadError, match="unknown model 'nope'"):
        get_card("nope", root=tmp_path)
    assert list_cards(root=tmp_path) == []  # a broken card hides nothing else and raises nothing here


def test_default_model_prefers_the_flagged_card(saved_tiny):
    root, model = saved_tiny
    fields = dict(TINY_FIELDS, kind="neural", default=True)
    save_model(model, "flagged", fields, root=root)
    assert default_model_name(root=root) == "flagged"


BAD_FIELDS = [
    ({"weights_sha256": 12345}, "weights_sha256 must be"),
    ({"weights_sha256": "abc"}, "weights_sha256 must be"),
    ({"config": "fast"}, "config must be an object"),
    ({"segment_seconds": 0}, "segment_seconds must be"),
    ({"segment_seconds": "long"}, "segment_seconds must be"),
    ({"segment_seconds": 1e9}, "segment_seconds must be"),
    ({"config": {"segment_seconds": 0}}, "config.segment_seconds must be"),
    ({"config": {"n_fft": -4}}, "config.n_fft must be"),
    ({"sources": []}, "sources must be"),
    ({"sources": ["vocals", "vocals"]}, "sources must be"),
    ({"samplerate": 0}, "samplerate must be"),
    ({"n_channels": True}, "n_channels must be"),
    ({"default": "yes"}, "default must be"),
    ({"summary": 3}, "summary must be text"),
    ({"scores": []}, "scores must be an object"),
]


@pytest.mark.parametrize(("changes", "reason"), BAD_FIELDS, ids=[json.dumps(c) for c, _ in BAD_FIELDS])
def test_malformed_cards_are_refused_naming_the_field(saved_tiny, changes, reason):
    root, _ = saved_tiny
    card_path = root / "mytiny" / "card.json"
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="model card is not valid") as err:
        load_model("mytiny", root=root)
    assert reason in str(err.value) and str(card_path) in str(err.value) and "\n" not in str(err.value)
    assert list_cards(include_hidden=True, root=root) == []  # skipped in the list, never raised there


@pytest.mark.parametrize("text", ["[1, 2]", '"a string"', "null", "\xff\xfe"])
def test_a_card_that_is_not_an_object_is_refused(tmp_path, text):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "card.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelLoadError, match="model card is not valid"):
        get_card("odd", root=tmp_path)


@pytest.mark.parametrize("name", ["../somewhere", "a/b", "/etc", "..", ".hidden", "", "with space"])
def test_a_model_name_is_never_a_path(tmp_path, name):
    (tmp_path / "somewhere").mkdir()
    with pytest.raises(ModelLoadError, match="is not a model name"):
        get_card(name, root=tmp_path / "registry")


def test_weights_full_of_nan_with_a_matching_checksum_are_refused(tmp_path):
    model = build_model("tiny", TINY_FIELDS["config"])
    with torch.no_grad():
        next(model.parameters()).view(-1)[3] = float("inf")
    save_model(model, "broken", TINY_FIELDS, root=tmp_path, dtype=None)
    with pytest.raises(ModelLoadError, match="NaN or infinite values") as err:
        load_model("broken", root=tmp_path)
    assert "weights.safetensors" in str(err.value)


def test_weights_that_are_not_a_file_are_refused(saved_tiny):
    root, _ = saved_tiny
    weights = root / "mytiny" / "weights.safetensors"
    weights.unlink()
    weights.mkdir()
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model("mytiny", root=root)


def test_a_config_the_architecture_cannot_build_is_a_model_load_error(saved_tiny):
    root, _ = saved_tiny
    card_path = root / "mytiny" / "card.json"
    card = json.loads(card_path.read_text())
    card["config"]["hidden"] = -3
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="does not fit architecture"):
        load_model("mytiny", root=root)
