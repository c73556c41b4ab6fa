"""Another encoder as backbone, by config alone: a tiny BERT with its own WordPiece tokenizer (no
prefix, pad id 0, 2 layers) trains through the normal `train()` and loads back with the spec its
config recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cxnlp
from cxnlp.backbone.spec import E5_SPEC, BackboneSpec
from cxnlp.modeldir import CONFIG_FILE, WEIGHTS_FILE
from cxnlp.models.transformer import TransformerSentimentModel, build_net
from training.config import Config
from training.train import train


@pytest.fixture(scope="module")
def tiny_bert(tiny_bert_factory) -> Path:
    """A randomly initialised 2-layer BERT with its own character-level WordPiece vocabulary."""
    return tiny_bert_factory(2)


@pytest.fixture()
def labeled_csv(tmp_path: Path, tiny_train) -> Path:
    rows = [
        {"text": text, "label": label, "lang": lang, "split": "dev" if i % 3 == 2 else "train"}
        for i, (lang, text, label) in enumerate(tiny_train)
    ]
    path = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def bert_config(backbone: Path, **model) -> Config:
    return Config.from_dict(
        {
            "name": "tiny-bert",
            "model": {
                "backbone": str(backbone),
                "max_length": 32,
                "trained_from_layer": 1,
                **model,
            },
            "data": {"dev_per_lang": 10},
            "train": {"epochs": 1, "examples_per_epoch": 16, "batch_size": 8},
        }
    )


def test_backbone_spec_another_encoder_trains_and_loads_by_config_alone(
    tiny_bert: Path, labeled_csv: Path, tmp_path: Path
):
    out = train(bert_config(tiny_bert, pooling="cls"), tmp_path / "model", data_file=labeled_csv)

    config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["backbone_spec"] == {
        "prefix": "",
        "pooling": "cls",
        "pad_id": 0,
        "layer_path": "encoder.layer",
        "n_layers": 2,
    }
    from safetensors.torch import load_file

    stored = load_file(str(out / WEIGHTS_FILE))
    assert stored and all(k.startswith(("encoder.encoder.layer.1.", "head.")) for k in stored)

    model = cxnlp.load(out)
    assert isinstance(model, TransformerSentimentModel)
    assert model.net.spec == BackboneSpec.from_dict(config["backbone_spec"])
    # No e5 prefix in front of the texts: the tokens are the tokenizer's own.
    assert model.tokenize(["خدمة"])["input_ids"][0].tolist() == model.tokenizer("خدمة")["input_ids"]
    texts = ["الخدمة سيئة", "Love this app", "غذا سرد رسید"]
    probabilities = model.predict_proba(texts)
    assert probabilities.shape == (3, 3) and np.allclose(probabilities.sum(axis=1), 1.0)
    resaved = cxnlp.load(model.save(tmp_path / "again"))
    np.testing.assert_allclose(resaved.predict_proba(texts), probabilities, atol=2e-3)


def test_backbone_spec_trained_from_layer_is_checked_against_the_backbones_layers(
    tiny_bert: Path, labeled_csv: Path, tmp_path: Path
):
    with pytest.raises(ValueError, match=r"trained_from_layer must be in 0\.\.1 .* got 2"):
        train(bert_config(tiny_bert, trained_from_layer=2), tmp_path / "m", data_file=labeled_csv)


def test_backbone_spec_that_does_not_fit_the_backbone_is_refused(tiny_bert: Path):
    with pytest.raises(ValueError, match="has 2 layers at 'encoder.layer'.*one with 12"):
        build_net(str(tiny_bert), spec=E5_SPEC)
    with pytest.raises(ValueError, match="no 'blocks'.*model.layer_path"):
        build_net(str(tiny_bert), layer_path="encoder.blocks")


def test_backbone_spec_model_saved_before_the_spec_loads_with_e5_defaults(
    tiny_bert: Path, tmp_path: Path
):
    tokenizer, net = build_net(str(tiny_bert), prefix="query: ")
    model = TransformerSentimentModel(tokenizer, net, backbone=str(tiny_bert), dtype="float32")
    model.save(tmp_path / "old")
    config_path = tmp_path / "old" / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    del config["backbone_spec"]  # as configs were written before it existed
    config_path.write_text(json.dumps({**config, "pooling": "mean", "prefix": "query: "}))
    loaded = cxnlp.load(tmp_path / "old")
    assert loaded.net.spec == BackboneSpec(prefix="query: ", pad_id=0, n_layers=2)
    texts = ["great food", "غذا سرد بود"]
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=2e-3)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pooling": "max"}, r"pooling must be one of \['mean', 'cls'\]"),
        ({"n_layers": 0}, "at least one layer"),
        ({"layer_path": "encoder..layer"}, "dotted attribute path"),
        ({"heads": 2}, r"unknown backbone spec keys \['heads'\]"),
    ],
)
def test_backbone_spec_rejects_invalid_settings(raw, message):
    with pytest.raises(ValueError, match=message):
        BackboneSpec.from_dict(raw)
