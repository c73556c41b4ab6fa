"""A distilled student (fewer layers, learned from a teacher), per-language calibration (blend
weights and prior offsets) and the encoder's token-budget batches, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cxnlp
from cxnlp.backbone.spec import BackboneSpec
from cxnlp.modeldir import CONFIG_FILE, WEIGHTS_FILE
from cxnlp.models.blend import BlendedSentimentModel
from cxnlp.models.transformer import _length_batches, build_net
from training.config import Config
from training.recalibrate import choose_biases, macro_f1, recalibrate
from training.train import train
from training.transformer_trainer import cut_student


@pytest.fixture(scope="module")
def bert4(tiny_bert_factory) -> Path:
    """A randomly initialised 4-layer BERT with a character-level vocabulary."""
    return tiny_bert_factory(4)


@pytest.fixture(scope="module")
def labeled_csv(tmp_path_factory: pytest.TempPathFactory, tiny_train) -> Path:
    rows = [
        {"text": text, "label": label, "lang": lang, "split": "dev" if i % 3 == 2 else "train"}
        for i, (lang, text, label) in enumerate(tiny_train)
    ]
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def config_for(backbone: Path, model: dict, train_options: dict | None = None) -> Config:
    return Config.from_dict(
        {
            "name": "tiny",
            "model": {"backbone": str(backbone), "max_length": 32, **model},
            "data": {"dev_per_lang": 10},
            "train": {
                "epochs": 1,
                "examples_per_epoch": 16,
                "batch_size": 8,
                **(train_options or {}),
            },
        }
    )


@pytest.fixture(scope="module")
def teacher(bert4: Path, labeled_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "teacher"
    return train(config_for(bert4, {"trained_from_layer": 1}), out, data_file=labeled_csv)


def test_student_keeps_the_named_layers_learns_from_the_teacher_and_loads(
    bert4: Path, teacher: Path, labeled_csv: Path, tmp_path: Path
):
    config = config_for(
        bert4,
        {"trained_from_layer": 1, "keep_layers": [0, 3], "init_from": str(teacher)},
        {"distill_logits": 0.5, "distill_features": 1.0},
    )
    out = train(config, tmp_path / "student", data_file=labeled_csv)

    spec = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))["backbone_spec"]
    assert spec["keep_layers"] == [0, 3] and spec["n_layers"] == 2
    from safetensors.torch import load_file

    stored = load_file(str(out / WEIGHTS_FILE))
    # Only the student's one trained layer (its index 1, the teacher's layer 3) and the head.
    assert stored and all(k.startswith(("encoder.encoder.layer.1.", "head.")) for k in stored)
    model = cxnlp.load(out)
    assert len(model.net.layers) == 2
    texts = ["الخدمة سيئة", "Love this app", "غذا سرد رسید"]
    probabilities = model.predict_proba(texts)
    assert probabilities.shape == (3, 3) and np.allclose(probabilities.sum(axis=1), 1.0)


def test_cut_student_keeps_the_teachers_layer_objects_in_order(bert4: Path):
    _, net = build_net(str(bert4))
    layers = list(net.layers)
    cut_student(net, [0, 2, 3])
    assert list(net.layers) == [layers[0], layers[2], layers[3]]
    assert net.spec.keep_layers == (0, 2, 3) and net.spec.n_layers == 3


def test_spec_keep_layers_round_trips_and_is_checked():
    spec = BackboneSpec(n_layers=2, keep_layers=[0, 5])
    assert spec.keep_layers == (0, 5)
    assert BackboneSpec.from_dict(spec.to_dict()) == spec
    assert "keep_layers" not in BackboneSpec(n_layers=3).to_dict()
    with pytest.raises(ValueError, match="increasing"):
        BackboneSpec(n_layers=2, keep_layers=[3, 1])
    with pytest.raises(ValueError, match="increasing"):
        BackboneSpec(n_layers=3, keep_layers=[0, 1])


def test_student_config_needs_a_teacher_and_the_frozen_layers():
    base = {"trained_from_layer": 2, "keep_layers": [0, 1, 5]}
    with pytest.raises(ValueError, match="teacher"):
        Config.from_dict({"model": base})
    with pytest.raises(ValueError, match="frozen layers"):
        Config.from_dict({"model": {**base, "keep_layers": [0, 4, 5], "init_from": "default"}})


def test_length_batches_cover_every_row_once_within_the_token_budget():
    rng = np.random.default_rng(0)
    rows = [(i, list(range(int(n))), 0, 0) for i, n in enumerate(rng.integers(3, 120, 300))]
    batches = _length_batches(rows, batch_size=64, batch_tokens=1024)
    seen = [r[0] for batch in batches for r in batch]
    assert sorted(seen) == list(range(300))
    for batch in batches:
        longest = max(len(r[1]) for r in batch)
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * longest <= 1024
    # Short rows share wide batches; long ones go in narrow ones.
    assert len(batches[0]) > 40 and len(batches[-1]) < 16


def test_biases_are_chosen_where_a_language_drifts_to_neutral():
    rng = np.random.default_rng(1)
    n = 600
    gold = rng.integers(0, 3, 2 * n)
    logits = np.eye(3)[gold] * 2.0 + rng.normal(0, 0.8, (2 * n, 3))
    logits[:n, 1] += 1.5  # "fa" drifts to neutral; "en" does not
    langs = np.array(["fa"] * n + ["en"] * n)
    chosen, report = choose_biases(logits, gold, langs)
    assert "fa" in chosen and chosen["fa"][1] < -0.5
    assert report["fa"]["cv_gain"] > 0.02 and report["fa"]["dev"] > report["fa"]["baseline"]
    assert abs(chosen.get("en", [0, 0, 0])[1]) < 0.5


def test_recalibrated_blend_keeps_per_language_weights_and_offsets_through_save(
    tiny_fast_model, tmp_path: Path
):
    from cxnlp.models.fast import FastSentimentModel

    other = FastSentimentModel()
    other.kind = "fast2"  # a second member kind, only for this test
    blend = BlendedSentimentModel([tiny_fast_model, other], [0.7, 0.3])
    blend.lang_weights = {"fa": [0.4, 0.6]}
    blend.biases_ = {"fa": [0.0, -0.5, 0.2]}
    assert blend.weights_for(["fa", "en"], 2).tolist() == [[0.4, 0.6], [0.7, 0.3]]
    logits = np.zeros((2, 3))
    shifted = blend.calibrated(logits, ["fa", "en"])
    assert shifted[0].argmax() == 2 and np.allclose(shifted[1], 1 / 3)
    config = blend.calibration_config()
    assert config["biases"] == {"fa": [0.0, -0.5, 0.2]}
    with pytest.raises(ValueError, match="3 numbers"):
        blend.read_calibration({"biases": {"fa": [1.0]}})
    with pytest.raises(ValueError, match="sum to 1"):
        BlendedSentimentModel([tiny_fast_model], [1.0], lang_weights={"fa": [0.5]})


def test_recalibrate_on_a_fast_model_sets_offsets_and_temperatures(tiny_fast_model, tiny_train):
    import copy

    model = copy.deepcopy(tiny_fast_model)
    dev = pd.DataFrame(
        [{"text": text, "label": label, "lang": lang} for lang, text, label in tiny_train]
    )
    report = recalibrate(model, dev)
    assert set(report["temperatures"]) >= {"*"}
    assert report["confusion"]["*"] and model.temperatures_ == report["temperatures"]
    gold = np.array([["negative", "neutral", "positive"].index(x) for x in dev["label"]])
    assert 0.0 <= macro_f1(gold, gold) == 1.0
