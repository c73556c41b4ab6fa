"""Topics: the head, its training helpers, custom topics and topic scoring, on a tiny encoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import TOPICS_DIR
from cxnlp.models.blend import BlendedSentimentModel
from cxnlp.models.store import load
from cxnlp.models.transformer import TransformerSentimentModel, build_net
from cxnlp.topics.tagger import CustomTopicMatcher, TopicTagger
from cxnlp.topics.taxonomy import TOPICS, Topic
from training.topic_eval import score_topics
from training.topic_trainer import (
    TopicConfig,
    TopicTargets,
    corpus_targets,
    cue_targets,
    f1_counts,
    fit_head,
    tune_thresholds,
)


@pytest.fixture(scope="module")
def tiny_transformer(tiny_backbone: Path) -> TransformerSentimentModel:
    tokenizer, net = build_net(str(tiny_backbone))
    torch.manual_seed(1)
    torch.nn.init.normal_(net.head.weight, std=1.0)
    return TransformerSentimentModel(
        tokenizer, net, trained_from_layer=2, backbone=str(tiny_backbone), dtype="float32"
    )


def separable_problem(n: int = 400, d: int = 12, seed: int = 0):
    """Features whose first three dimensions switch topics 0-2 on; polarity from dimension 3."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    k = len(TOPICS)
    present = np.zeros((n, k), np.float32)
    present[:, :3] = (x[:, :3] > 0.5).astype(np.float32)
    polarity = np.where(present == 1, np.where(x[:, [3]] > 0, 2, 0), -1).astype(np.int64)
    weight = np.zeros((n, k), np.float32)
    weight[:, :3] = 1.0
    return x, TopicTargets(present, weight, polarity)


def test_fit_head_learns_topics_and_their_polarity():
    x, targets = separable_problem()
    config = TopicConfig(hidden=32, epochs=60, batch_size=64)
    tagger = fit_head(
        x[:300],
        TopicTargets(*(a[:300] for a in vars(targets).values())),
        np.array(["en"] * 300),
        config,
    )
    presence, polarity = tagger.scores(x[300:])
    predicted = presence[:, :3] >= 0.5
    gold = targets.present[300:, :3] == 1
    assert (predicted == gold).mean() > 0.9
    found = gold & predicted
    assert (polarity[:, :3].argmax(-1)[found] == targets.polarity[300:, :3][found]).mean() > 0.85


def test_tagger_save_load_keeps_scores_thresholds_and_calibration(tmp_path: Path):
    x, targets = separable_problem(n=120)
    tagger = fit_head(x, targets, np.array(["fa"] * 120), TopicConfig(hidden=16, epochs=3))
    tagger.thresholds_ = np.linspace(0.2, 0.7, len(TOPICS))
    tagger.matcher = CustomTopicMatcher(
        background={"*": (np.full(6, 0.1), np.eye(6) * 0.01), "fa": (np.zeros(6), np.eye(6))},
        slope=2.0,
        intercept=-3.0,
        feature_slice=(6, 12),
        threshold=0.35,
    )
    tagger.info = {"training": {"rows": 120}}
    tagger.save(tmp_path / "topics")
    loaded = TopicTagger.load(tmp_path / "topics")
    np.testing.assert_allclose(tagger.scores(x)[0], loaded.scores(x)[0], atol=1e-6)
    np.testing.assert_allclose(loaded.thresholds_, tagger.thresholds_, atol=1e-4)
    assert loaded.matcher.slope == 2.0 and loaded.matcher.feature_slice == (6, 12)
    assert loaded.matcher.threshold == 0.35 and set(loaded.matcher.background) == {"*", "fa"}
    np.testing.assert_allclose(loaded.matcher.background["*"][0], np.full(6, 0.1), atol=1e-6)
    assert loaded.info == {"training": {"rows": 120}}


def test_tag_applies_per_topic_thresholds_and_sorts_by_score():
    tagger = TopicTagger(TOPICS, 4, hidden=4)
    tagger.scores = lambda features: (  # type: ignore[method-assign]
        np.array([[0.9, 0.4, 0.6] + [0.0] * (len(TOPICS) - 3)]),
        np.tile(np.array([0.1, 0.1, 0.8]), (1, len(TOPICS), 1)),
    )
    tagger.thresholds_ = np.array([0.5, 0.3, 0.7] + [0.5] * (len(TOPICS) - 3))
    tags = tagger.tag(np.zeros((1, 4)), np.array([[0.1, 0.1, 0.8]]))[0]
    assert [t["topic"] for t in tags] == [TOPICS[0], TOPICS[1]]  # 0.6 < its threshold 0.7
    assert all(t["polarity"] == SENTIMENTS[2] for t in tags)


def test_corpus_targets_count_absence_only_inside_a_complete_datasets_scope():
    corpus = pd.DataFrame(
        {
            "topics": [[{"topic": "price", "polarity": "negative"}], [], []],
            "partial": [False, False, True],
            "scope": [["price", "staff_behavior"], ["price", "staff_behavior"], []],
        }
    )
    targets = corpus_targets(corpus)
    price, staff, delivery = (TOPICS.index(t) for t in ("price", "staff_behavior", "delivery"))
    assert targets.present[0, price] == 1 and targets.polarity[0, price] == SENTIMENTS.index(
        "negative"
    )
    assert targets.weight[1, staff] == 1 and targets.weight[1, delivery] == 0
    assert targets.weight[2].sum() == 0  # partial: nothing is known absent


def test_cue_targets_match_normalised_text_and_weigh_misses_lower():
    rows = pd.DataFrame(
        {
            "text": ["پيك دير رسيد", "غذا خوب بود"],
            "lang": ["fa", "fa"],
            "label": ["negative", "positive"],
        }
    )
    cues = {"fa": {"delivery": re.compile("پیک")}}
    targets = cue_targets(rows, cues, positive_weight=1.0, negative_weight=0.3)
    col = TOPICS.index("delivery")
    assert targets.present[:, col].tolist() == [1.0, 0.0]  # Arabic yeh/kaf unified first
    assert targets.weight[:, col].tolist() == pytest.approx([1.0, 0.3])
    assert targets.weight[:, TOPICS.index("price")].sum() == 0  # no cue: unknown
    # A matched topic takes the row's sentiment as its polarity; an absent one has none.
    assert targets.polarity[:, col].tolist() == [SENTIMENTS.index("negative"), -1]


def test_f1_counts_and_thresholds_ignore_unknown_pairs():
    present = np.array([[1], [0], [0]], np.float32)
    weight = np.array([[1], [1], [0]], np.float32)
    targets = TopicTargets(present, weight, -np.ones((3, 1), np.int64))
    assert f1_counts(np.array([[True], [False], [True]]), targets) == (1, 0, 0)
    probabilities = np.array([[0.8], [0.6], [0.99]])
    assert tune_thresholds(probabilities, targets, min_positives=1)[0] > 0.6
    assert tune_thresholds(probabilities, targets, min_positives=5)[0] == 0.5


def test_score_topics_reports_recall_only_on_partial_data():
    index = TOPICS.index("delivery")
    present = np.zeros((2, len(TOPICS)), np.float32)
    present[0, index] = 1
    gold = TopicTargets(present, present.copy(), np.where(present == 1, 0, -1).astype(np.int64))
    predicted = [
        [{"topic": "delivery", "polarity": "negative", "score": 0.9}],
        [{"topic": "price", "polarity": "positive", "score": 0.8}],
    ]
    complete = score_topics(
        predicted, TopicTargets(present, np.ones_like(present), gold.polarity), partial=False
    )
    assert complete["precision"] == 0.5 and complete["recall"] == 1.0
    assert complete["polarity_accuracy"] == 1.0
    partial = score_topics(predicted, gold, partial=True)
    assert partial["precision"] is None and partial["f1"] is None and partial["recall"] == 1.0


def attach_tagger(model, texts: list[str], langs: list[str]) -> TopicTagger:
    """A tagger fitted on the model's own features of `texts` (delivery on the first half), with
    a custom-topic matcher whose background is those texts."""
    model.enable_similarity()
    features = model.features(texts, langs)
    head, width = features.shape[1] * 2 // 3, features.shape[1]
    n, k = len(texts), len(TOPICS)
    present = np.zeros((n, k), np.float32)
    present[: n // 2, TOPICS.index("delivery")] = 1
    targets = TopicTargets(present, np.ones((n, k), np.float32), -np.ones((n, k), np.int64))
    tagger = fit_head(
        features[:, :head], targets, np.array(langs), TopicConfig(hidden=16, epochs=200)
    )
    tagger.matcher = CustomTopicMatcher({}, 1.0, 0.0, (head, width))
    unit = tagger.matcher.unit(features)
    tagger.matcher.background["*"] = (
        unit.mean(0),
        np.cov(unit, rowvar=False) + np.eye(unit.shape[1]) * 1e-4,
    )
    model.topic_tagger = tagger
    return tagger


TEXTS = [
    "the courier was late",
    "پیک دیر رسید",
    "التوصيل متأخر",
    "great taste",
    "غذا خوشمزه بود",
    "الطعم رائع",
]
LANGS = ["en", "fa", "ar", "en", "fa", "ar"]


def test_predict_carries_topics_and_they_survive_save_and_load(tiny_transformer, tmp_path: Path):
    attach_tagger(tiny_transformer, TEXTS, LANGS)
    try:
        predictions = tiny_transformer.predict(TEXTS, LANGS)
        assert [bool(p.topics) for p in predictions] == [True] * 3 + [False] * 3
        assert set(predictions[0].topics[0]) == {"topic", "polarity", "score", "evidence"}
        assert predictions[0].topics[0]["topic"] == "delivery"
        tiny_transformer.save(tmp_path / "m")
        assert (tmp_path / "m" / TOPICS_DIR / "config.json").is_file()
        loaded = load(tmp_path / "m")
        assert [p.topics for p in loaded.predict(TEXTS, LANGS)] == [p.topics for p in predictions]
    finally:
        tiny_transformer.topic_tagger = None


def test_blend_reads_topics_from_its_transformer_member(
    tiny_transformer, tiny_fast_model, tmp_path: Path
):
    blend = BlendedSentimentModel([tiny_transformer, tiny_fast_model], [0.5, 0.5])
    attach_tagger(blend, TEXTS, LANGS)
    blend.save(tmp_path / "b")
    loaded = load(tmp_path / "b")
    assert loaded.topic_tagger is not None
    assert [p.topics for p in loaded.predict(TEXTS, LANGS)] == [
        p.topics for p in blend.predict(TEXTS, LANGS)
    ]
    assert loaded.predict(TEXTS[:1], LANGS[:1])[0].topics[0]["topic"] == "delivery"


def test_custom_topics_from_a_taxonomy_file_are_tagged_with_the_texts_polarity(
    tiny_transformer, tmp_path: Path
):
    attach_tagger(tiny_transformer, TEXTS, LANGS)
    try:
        path = tmp_path / "mine.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "topics": [{"name": "late_courier", "cues": {"en": ["the courier was late"]}}],
                }
            ),
            encoding="utf-8",
        )
        assert tiny_transformer.add_custom_topics(path) == ["late_courier"]
        tagger = tiny_transformer.topic_tagger
        probabilities = tagger.custom_probabilities(tiny_transformer.features(TEXTS, LANGS))[:, 0]
        assert probabilities.argmax() == 0  # the text identical to the cue scores highest
        prediction = tiny_transformer.predict(TEXTS[:1], LANGS[:1])[0]
        tags = {t["topic"]: t for t in prediction.topics}
        assert tags["late_courier"]["polarity"] == prediction.sentiment
        with pytest.raises(ValueError, match="already exists"):
            tiny_transformer.add_custom_topics([Topic("delivery", "shipping")])
        # A topic's own min_score overrides the calibrated threshold.
        tiny_transformer.add_custom_topics(
            [Topic("strict_courier", cues={"en": ("the courier was late",)}, min_score=0.999)]
        )
        topics = {t["topic"] for t in tiny_transformer.predict(TEXTS[:1], LANGS[:1])[0].topics}
        assert "late_courier" in topics and "strict_courier" not in topics
    finally:
        tiny_transformer.topic_tagger = None


def test_custom_topics_need_a_model_with_a_topic_head(tiny_fast_model):
    with pytest.raises(ValueError, match="no topic head"):
        tiny_fast_model.add_custom_topics([Topic("cold_food", "food that arrived cold")])


def test_custom_topic_z_scores_standardise_against_the_background():
    rng = np.random.default_rng(0)
    background = rng.normal(size=(500, 8))
    matcher = CustomTopicMatcher({}, 1.0, 0.0, (0, 8))
    unit = matcher.unit(background)
    matcher.background["*"] = (unit.mean(0), np.cov(unit, rowvar=False))
    phrase = matcher.unit(np.eye(8)[:1])
    z = matcher.z_scores(background, phrase)[:, 0]
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert matcher.z_scores(np.eye(8)[:1], phrase)[0, 0] > 2
    # A language's own background replaces the pooled one for texts of that language.
    shifted = matcher.unit(background + 3 * np.eye(8)[0])
    matcher.background["fa"] = (shifted.mean(0), np.cov(shifted, rowvar=False))
    z_fa = matcher.z_scores(background + 3 * np.eye(8)[0], phrase, ["fa"] * 500)[:, 0]
    assert abs(z_fa.mean()) < 0.05
    assert matcher.z_scores(background + 3 * np.eye(8)[0], phrase)[:, 0].mean() > 1


def test_polarity_blends_the_head_with_the_texts_sentiment_by_the_tuned_weight(tmp_path: Path):
    tagger = TopicTagger(TOPICS, 4, hidden=4)
    head = np.zeros((1, len(TOPICS), 3))
    head[..., SENTIMENTS.index("positive")] = 0.6
    head[..., SENTIMENTS.index("negative")] = 0.3
    head[..., SENTIMENTS.index("neutral")] = 0.1
    tagger.scores = lambda features: (np.ones((1, len(TOPICS))), head)  # type: ignore[method-assign]
    negative_text = np.array([[0.9, 0.05, 0.05]])
    assert SENTIMENTS[tagger.polarities(np.zeros((1, 4)), negative_text)[0, 0]] == "positive"
    tagger.polarity_text_weight = 1.0
    assert SENTIMENTS[tagger.polarities(np.zeros((1, 4)), negative_text)[0, 0]] == "negative"
    del tagger.scores
    tagger.save(tmp_path / "t")
    assert TopicTagger.load(tmp_path / "t").polarity_text_weight == 1.0


def test_evaluate_topics_scores_mapped_test_rows_and_the_handlabeled_sets(
    tiny_transformer, tmp_path: Path
):
    import json

    from training.topic_data import hash_split
    from training.topic_eval import evaluate_topics, format_topic_report

    candidates = (
        f"the {w} was {a} number {i}"
        for i in range(500)
        for w in ("soup", "waiter")
        for a in ("great", "awful")
    )
    rows = []
    for text in candidates:
        if hash_split(text) != "test":
            continue
        category = "FOOD#QUALITY" if "soup" in text else "SERVICE#GENERAL"
        polarity = "positive" if "great" in text else "negative"
        rows.append(
            {
                "text": text,
                "label": polarity,
                "aspects": [{"category": category, "polarity": polarity}],
            }
        )
        if len(rows) == 8:
            break
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "semeval2016_absa_restaurants_en.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    attach_tagger(tiny_transformer, TEXTS, LANGS)
    try:
        report = evaluate_topics(tiny_transformer, tmp_path, json_path=tmp_path / "topics.json")
    finally:
        tiny_transformer.topic_tagger = None
    block = report["blocks"]["semeval2016_absa_restaurants_en"]
    assert block["rows"] == 8 and not block["partial"]
    gold = sum(1 for r in rows if r["aspects"][0]["category"] == "FOOD#QUALITY")
    assert block["per_topic"]["product_quality"]["gold"] == gold
    assert report["blocks"]["en_mapped"]["rows"] == 8
    assert {"handlabeled_fa", "handlabeled_ar"} <= set(report["blocks"])
    assert report["blocks"]["handlabeled_fa"]["rows"] >= 150
    assert (
        json.loads((tmp_path / "topics.json").read_text())["blocks"].keys()
        == report["blocks"].keys()
    )
    assert "semeval2016_absa_restaurants_en" in format_topic_report(report)


def test_train_topics_end_to_end_on_a_tiny_corpus(tiny_transformer, tmp_path: Path):
    import json

    from training.topic_trainer import train_topics

    rows = []
    for i in range(80):
        food = i % 2 == 0
        good = i % 4 < 2
        text = f"{'the soup' if food else 'the waiter'} was {'great' if good else 'awful'} {i}"
        polarity = "positive" if good else "negative"
        category = "FOOD#QUALITY" if food else "SERVICE#GENERAL"
        rows.append(
            {
                "text": text,
                "label": polarity,
                "aspects": [{"category": category, "polarity": polarity}],
            }
        )
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "semeval2016_absa_restaurants_en.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    weak = [
        {"text": f"the delivery was late {i}", "label": "negative", "split": "train"}
        for i in range(40)
    ]
    weak += [{"text": f"nice place {i}", "label": "positive", "split": "train"} for i in range(40)]
    (tmp_path / "en" / "unlabeled_reviews.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in weak), encoding="utf-8"
    )
    config = TopicConfig(
        data_dir=str(tmp_path),
        hidden=16,
        epochs=30,
        weak_datasets={"en": ["unlabeled_reviews"]},
        weak_rows_per_dataset=100,
        min_dev_positives=1,
    )
    tagger, summary = train_topics(tiny_transformer, config)
    assert summary["training"]["weak_rows"] == 80
    assert summary["training"]["mapped_rows"] + summary["training"]["dev_rows"] <= 80
    assert tagger.n_features == 2 * tiny_transformer.net.head.in_features
    assert 0.1 <= tagger.thresholds_[TOPICS.index("product_quality")] <= 0.9
    assert tagger.polarity_text_weight in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    assert tagger.matcher is not None and "*" in tagger.matcher.background
    # Weak cues taught delivery: texts that match the delivery cue score higher than others.
    features = tiny_transformer.features(
        ["the delivery was late 99", "nice place 99"], ["en", "en"]
    )
    presence, _ = tagger.scores(features)
    delivery = TOPICS.index("delivery")
    assert presence[0, delivery] > presence[1, delivery]
