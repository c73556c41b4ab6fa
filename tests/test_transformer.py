"""The transformer tier and its trainer, on a tiny randomly initialised encoder that shares the real
backbone's tokenizer (the real weights are not the point here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cxnlp.labels import SENTIMENTS
from cxnlp.models.transformer import TransformerSentimentModel, build_net, resolve_inference_dtype
from training import transformer_trainer
from training.config import Config
from training.train import train

TEXTS = {
    ("fa", "positive"): ["غذا خیلی خوشمزه بود", "عالی بود ممنون", "کیفیت گوشی عالیه"],
    ("fa", "negative"): ["غذا سرد رسید", "پیک خیلی دیر آمد", "اصلا راضی نبودم"],
    ("fa", "neutral"): ["سفارش دادم", "گوشی را امروز گرفتم", "رنگ آبی است"],
    ("ar", "positive"): ["الطعام رائع جدا", "خدمة ممتازة", "أحببت المكان"],
    ("ar", "negative"): ["التوصيل متأخر جدا", "الخدمة سيئة", "لن أعود مرة أخرى"],
    ("ar", "neutral"): ["طلبت وجبة", "المطعم في الرياض", "الغرفة في الطابق الثاني"],
    ("en", "positive"): ["Great food and fast delivery", "Love this app", "Excellent service"],
    ("en", "negative"): ["The courier was late", "Terrible support", "The app keeps crashing"],
    ("en", "neutral"): ["I ordered a pizza", "The store opens at nine", "It is a phone"],
}


@pytest.fixture()
def labeled_csv(tmp_path: Path) -> Path:
    rows = [
        {"text": text, "label": label, "lang": lang, "split": split}
        for (lang, label), texts in TEXTS.items()
        for text, split in zip(texts, ["train", "train", "dev"], strict=True)
    ]
    path = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def tiny_config(backbone: Path, **train_overrides) -> Config:
    return Config.from_dict(
        {
            "name": "tiny",
            "model": {"backbone": str(backbone), "max_length": 32, "trained_from_layer": 1},
            "data": {"dev_per_lang": 10},
            "train": {
                "epochs": 2,
                "examples_per_epoch": 32,
                "batch_size": 8,
                "checkpoint_every": 2,
                **train_overrides,
            },
        }
    )


def test_transformer_forward_from_cached_layers_equals_full_forward(tiny_backbone: Path):
    tokenizer, net = build_net(str(tiny_backbone))
    net.eval()
    batch = tokenizer(
        ["query: سلام", "query: a longer English text here"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        full = net(batch["input_ids"], batch["attention_mask"])
        lower = net.lower(batch["input_ids"], batch["attention_mask"], 2)
        partial = net.forward_from(lower, batch["attention_mask"], 2)
    torch.testing.assert_close(full, partial, rtol=1e-5, atol=1e-5)


def test_transformer_padding_does_not_change_a_texts_logits(tiny_backbone: Path):
    tokenizer, net = build_net(str(tiny_backbone))
    model = TransformerSentimentModel(tokenizer, net, dtype="float32")
    alone = model._logits(["short"])
    padded = model._logits(["short", "a much longer text that forces padding of the first one"])
    np.testing.assert_allclose(alone[0], padded[0], rtol=1e-4, atol=1e-5)


def test_transformer_save_load_round_trip_keeps_probabilities(tiny_backbone: Path, tmp_path: Path):
    tokenizer, net = build_net(str(tiny_backbone))
    torch.nn.init.normal_(net.head.weight, std=1.0)
    model = TransformerSentimentModel(
        tokenizer, net, trained_from_layer=2, backbone=str(tiny_backbone), dtype="float32"
    )
    model.temperatures_ = {"*": 1.5, "fa": 2.0}
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert all(k.startswith(("encoder.encoder.layer.2.", "head.")) for k in saved)
    loaded = TransformerSentimentModel.load(tmp_path / "m")
    texts = ["غذا سرد بود", "great food"]
    np.testing.assert_allclose(
        model.predict_proba(texts, ["fa", "en"]),
        loaded.predict_proba(texts, ["fa", "en"]),
        atol=2e-3,  # weights are stored in float16
    )
    assert loaded.temperatures_ == {"*": 1.5, "fa": 2.0}


def test_transformer_inference_dtype_auto_resolves_and_rejects_unknown():
    assert resolve_inference_dtype("auto") in ("bfloat16", "int8", "float32")
    with pytest.raises(ValueError, match="inference dtype must be one of"):
        resolve_inference_dtype("fp8")


def test_transformer_int8_agrees_with_float32(tiny_backbone: Path):
    tokenizer, net = build_net(str(tiny_backbone))
    torch.nn.init.normal_(net.head.weight, std=2.0)
    texts = [t for texts in TEXTS.values() for t in texts]
    fp32 = TransformerSentimentModel(tokenizer, net, dtype="float32")._logits(texts)
    int8 = TransformerSentimentModel(tokenizer, net, dtype="int8")._logits(texts)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.9
    np.testing.assert_allclose(fp32, int8, atol=0.25)


def test_train_transformer_end_to_end_writes_a_loadable_calibrated_model(
    tiny_backbone: Path, labeled_csv: Path, tmp_path: Path
):
    out = train(tiny_config(tiny_backbone), tmp_path / "model", data_file=labeled_csv)
    assert not (tmp_path / "model.work").exists()
    from cxnlp.models.store import load

    model = load(out)
    assert set(model.temperatures_) >= {"*"}
    predictions = model.predict(["الخدمة سيئة", "Love this app"])
    assert [p.lang for p in predictions] == ["ar", "en"]
    for p in predictions:
        assert p.sentiment in SENTIMENTS
        assert abs(sum(p.probabilities.values()) - 1) < 1e-6


def test_train_transformer_resumes_from_checkpoint_exactly(
    tiny_backbone: Path, labeled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tiny_config(tiny_backbone)
    uninterrupted = train(config, tmp_path / "a", data_file=labeled_csv)

    real_save = transformer_trainer._save_checkpoint

    def save_then_die(path, params, optimizer, step, losses):
        real_save(path, params, optimizer, step, losses)
        if step == 4:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(transformer_trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", data_file=labeled_csv)
    assert (tmp_path / "b.work" / "checkpoint" / "state.json").exists()
    monkeypatch.setattr(transformer_trainer, "_save_checkpoint", real_save)
    resumed = train(config, tmp_path / "b", data_file=labeled_csv)

    from safetensors.torch import load_file

    a = load_file(str(uninterrupted / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-3)


def test_train_blend_saves_both_members_and_retrains_from_a_blend(
    tiny_backbone: Path, labeled_csv: Path, tmp_path: Path
):
    from cxnlp.models.blend import BlendedSentimentModel
    from cxnlp.models.store import load

    config = tiny_config(tiny_backbone)
    config.model.blend_fast = True
    config.model.n_features = 2**12
    out = train(config, tmp_path / "blend", data_file=labeled_csv)

    model = load(out)
    assert isinstance(model, BlendedSentimentModel)
    assert [m.kind for m in model.members] == ["transformer", "fast"]
    assert sum(model.weights) == pytest.approx(1.0)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert all(f.endswith((".json", ".safetensors")) for f in files), files
    texts = ["الخدمة سيئة", "Love this app", "غذا سرد رسید"]
    reloaded = load(out).predict_proba(texts)
    np.testing.assert_allclose(model.predict_proba(texts), reloaded)
    assert np.allclose(reloaded.sum(axis=1), 1.0)

    retrained = train(config, tmp_path / "again", base=out, data_file=labeled_csv)
    assert isinstance(load(retrained), BlendedSentimentModel)


def test_blend_weight_follows_the_better_member_on_dev(
    tiny_backbone: Path, tiny_fast_model, tiny_train
):
    from training.train import blend_with_fast

    tokenizer, net = build_net(str(tiny_backbone))
    with torch.no_grad():  # a transformer that calls everything neutral
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    transformer = TransformerSentimentModel(tokenizer, net, dtype="float32")
    # The fast model's own training rows: there it is clearly the better member.
    dev = pd.DataFrame(tiny_train, columns=["lang", "text", "label"])
    blend = blend_with_fast(transformer, tiny_fast_model, dev)
    assert blend.weights[1] > 0.0
    assert blend_with_fast(transformer, tiny_fast_model, dev.iloc[:0]) is transformer


def test_int8_quantises_only_the_frozen_layers(tiny_backbone: Path):
    from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

    tokenizer, net = build_net(str(tiny_backbone))
    model = TransformerSentimentModel(tokenizer, net, trained_from_layer=2, dtype="int8")
    _, runtime = model.inference_net()
    kinds = [type(layer.attention.self.query) for layer in runtime.layers]
    assert kinds[:2] == [QuantizedLinear, QuantizedLinear]
    assert kinds[2] is torch.nn.Linear and type(runtime.head) is torch.nn.Linear
    assert type(model.net.layers[0].attention.self.query) is torch.nn.Linear  # original untouched


def test_retraining_a_model_with_topics_says_the_topic_head_was_not_carried_over(
    tiny_backbone: Path, labeled_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    from cxnlp.cli import main
    from cxnlp.modeldir import TOPICS_DIR
    from cxnlp.models.store import load
    from cxnlp.topics.tagger import TopicTagger
    from cxnlp.topics.taxonomy import TOPICS

    base = train(tiny_config(tiny_backbone), tmp_path / "base", data_file=labeled_csv)
    model = load(base)
    width = model.features(["x"], ["en"]).shape[1]
    TopicTagger(TOPICS, width, hidden=4).save(base / TOPICS_DIR)
    assert load(base).topic_tagger is not None
    out = tmp_path / "retrained"
    command = ["train", "--base", str(base), "--data", str(labeled_csv), "--out", str(out)]
    assert main([*command, "--full-retrain"]) == 0
    assert load(out).topic_tagger is None
    message = capsys.readouterr().err
    assert "has no topic head" in message and "cxnlp train-topics" in message


def test_label_set_loss_leaves_neutral_alone_for_a_binary_dataset():
    frame = pd.DataFrame(
        {
            "label": ["positive", "negative", "neutral", "positive", "negative"],
            "dataset": ["bin", "bin", "three", "three", "three"],
        }
    )
    masks = transformer_trainer.label_masks(frame, label_set_loss=True)
    assert masks.tolist() == [[1, 0, 1], [1, 0, 1]] + [[1, 1, 1]] * 3
    assert transformer_trainer.label_masks(frame, label_set_loss=False).min() == 1
    logits = torch.tensor([[0.0, 5.0, 1.0]], requires_grad=True)
    target = torch.tensor([SENTIMENTS.index("positive")])
    loss = transformer_trainer.label_set_cross_entropy(logits, target, masks[:1])
    loss.backward()
    # -log(p_pos / (p_pos + p_neg)) with p from logits 0 (negative) and 1 (positive).
    assert float(loss) == pytest.approx(float(torch.log1p(torch.exp(torch.tensor(-1.0)))))
    assert logits.grad[0, SENTIMENTS.index("neutral")] == 0
    # The full cross-entropy would push the large neutral logit down.
    plain = torch.nn.functional.cross_entropy(logits.detach(), target)
    assert float(plain) > float(loss) + 3


def test_transformer_int8_weights_halve_the_file_and_keep_probabilities(
    tiny_backbone: Path, tmp_path: Path
):
    tokenizer, net = build_net(str(tiny_backbone))
    torch.nn.init.normal_(net.head.weight, std=1.0)
    texts = ["غذا سرد بود", "great food", "الخدمة سيئة"]
    sizes = {}
    for dtype in ("float16", "int8"):
        model = TransformerSentimentModel(
            tokenizer, net, backbone=str(tiny_backbone), dtype="float32", weights_dtype=dtype
        )
        model.save(tmp_path / dtype)
        sizes[dtype] = (tmp_path / dtype / "model.safetensors").stat().st_size
        loaded = TransformerSentimentModel.load(tmp_path / dtype)
        assert loaded.weights_dtype == dtype
        np.testing.assert_allclose(
            model.predict_proba(texts, ["fa", "en", "ar"]),
            loaded.predict_proba(texts, ["fa", "en", "ar"]),
            atol=2e-2,
        )
    # Biases and LayerNorms stay float16: a large share of a tiny encoder, under 1% of e5-small.
    assert sizes["int8"] < 0.7 * sizes["float16"]


def test_train_every_layer_with_label_set_loss_and_int8_weights(
    tiny_backbone: Path, labeled_csv: Path, tmp_path: Path
):
    config = tiny_config(tiny_backbone)
    config.model.trained_from_layer = 0
    config.model.label_set_loss = True
    config.model.weights_dtype = "int8"
    out = train(config, tmp_path / "model", data_file=labeled_csv)
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    assert any(k.startswith("encoder.encoder.layer.0.") for k in saved)
    assert any(v.dtype == torch.int8 for v in saved.values())
    from cxnlp.models.store import load

    predictions = load(out).predict(["الخدمة سيئة", "Love this app"])
    assert all(p.sentiment in SENTIMENTS for p in predictions)


def _tiny_model(tiny_backbone: Path, max_length: int = 128) -> TransformerSentimentModel:
    tokenizer, net = build_net(str(tiny_backbone))
    torch.nn.init.normal_(net.head.weight, std=1.0)
    return TransformerSentimentModel(
        tokenizer, net, trained_from_layer=1, dtype="float32", max_length=max_length
    )


def test_read_units_pools_a_span_from_the_documents_own_token_states(tiny_backbone: Path):
    model = _tiny_model(tiny_backbone)
    doc = "the food was great but the courier was late"
    start = doc.index("but")
    doc_logits, doc_features, span_logits, span_features = model._read_units(
        [doc], [[(0, start - 1), (start, len(doc))]]
    )
    # The document reads as before: the same logits as a plain forward of it alone.
    np.testing.assert_allclose(doc_logits, model._logits([doc]), rtol=1e-4, atol=1e-5)
    # Each span is the mean of its own tokens' top-layer states, taken from the document's pass.
    batch = model.tokenize([doc])
    with torch.no_grad():
        top, tapped, _ = model.net.eval().token_states(
            batch["input_ids"], batch["attention_mask"], model.tap_layer
        )
    offsets = model.tokenizer(model.net.spec.prefix + doc, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    n_prefix = len(model.net.spec.prefix)
    second = [
        i for i, (a, b) in enumerate(offsets) if b > a and a - n_prefix >= start and b > n_prefix
    ]
    expected = top[0, second].mean(0).numpy()
    hidden = model.net.head.in_features
    np.testing.assert_allclose(span_features[1, :hidden], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        span_logits[1], model.net.head(torch.from_numpy(expected)).detach().numpy(), atol=1e-4
    )
    assert span_features.shape == (2, doc_features.shape[1])


def test_read_units_reads_a_long_document_in_windows_without_losing_tokens(tiny_backbone: Path):
    model = _tiny_model(tiny_backbone, max_length=16)
    doc = " ".join(f"word{i}" for i in range(60)) + " the courier was late"
    n_tokens = len(model.tokenizer(model.net.spec.prefix + doc)["input_ids"])
    assert n_tokens > 3 * 16  # several windows
    end = len(doc)
    start = doc.index("the courier")
    logits, features, span_logits, _ = model._read_units([doc], [[(start, end)]])
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.isfinite(features).all() and features.shape[0] == 1
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-6)
    # The span at the very end was read (not truncated away): its logits are the head's on its
    # own tokens, which differ from the first window's.
    first_window = model._logits([doc[:40]])
    assert not np.allclose(span_logits[0], first_window[0])
    # A text of one window reads exactly as before.
    short = "the courier was late"
    np.testing.assert_allclose(
        model._read_units([short], [[]])[0], model._logits([short]), rtol=1e-5, atol=1e-6
    )


def test_predict_runs_one_encoder_pass_per_text_with_clauses_on(tiny_backbone: Path):
    model = _tiny_model(tiny_backbone)
    rows_seen = []
    original = model.net.token_states

    def counting(input_ids, mask, *args, **kwargs):
        rows_seen.append(int(input_ids.shape[0]))
        return original(input_ids, mask, *args, **kwargs)

    model.net.token_states = counting
    texts = [
        "The food was great but the courier came an hour late.",
        "غذا عالی بود ولی پیک دیر رسید",
    ]
    from cxnlp.models.pipeline import AspectOptions

    model.aspect_options = AspectOptions(clause_pass_chars=0)  # every clause pooled
    predictions = model.predict(texts, ["en", "fa"])
    assert sum(rows_seen) == len(texts)  # one encoder row per text, clauses included
    assert [type(p.mixed) for p in predictions] == [bool, bool]
    # clause_pass="all": the clauses of a short text are read again on their own (two each).
    rows_seen.clear()
    model.aspect_options = AspectOptions(clause_pass="all")
    model.predict(texts, ["en", "fa"])
    assert sum(rows_seen) == len(texts) * 3
    # By default ("selective"), a text with a contrast word has every clause but the one
    # nearest the document read again: one each here.
    rows_seen.clear()
    model.aspect_options = AspectOptions()
    model.predict(texts, ["en", "fa"])
    assert sum(rows_seen) == len(texts) * 2
