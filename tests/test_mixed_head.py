"""The learned `mixed` head on a tiny encoder: it decides `mixed` where it covers the language,
survives save and load, is fitted by `cxnlp train-mixed` on train and dev rows only (cached
signals), and a model without one keeps the rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cxnlp
from cxnlp.modeldir import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE, has_mixed, mixed_dir
from cxnlp.models.mixed import SIGNALS, MixedHead
from cxnlp.models.pipeline import AspectOptions, analyze
from cxnlp.models.store import ModelLoadError
from training.mixed_head import (
    MixedConfig,
    SignalTable,
    choose_threshold,
    fit_mixed_head,
    gather_rows,
    train_mixed,
)

TEXTS = ["the food was great but the driver was rude", "great app, love it", "غذا سرد بود"]
LANGS = ["en", "en", "fa"]
# Every rule fires (a document floor of 0), or none does.
ALWAYS = {lang: {"clause": 1.01, "doc": 0.0, "topics": False} for lang in ("fa", "ar", "en")}
NEVER = {lang: {"clause": 1.01, "doc": 1.01, "topics": False} for lang in ("fa", "ar", "en")}


def constant_head(width: int, bias: float, langs=("en",)) -> MixedHead:
    """A head whose probability is sigmoid(bias) for every text."""
    size = len(SIGNALS) + width
    return MixedHead(
        width,
        np.zeros(size),
        np.ones(size),
        np.zeros(size),
        bias,
        thresholds={lang: 0.5 for lang in langs},
    )


def feature_width(model) -> int:
    return model.features(TEXTS[:1], LANGS[:1]).shape[1]


def test_record_gives_each_texts_signals_features_and_rule(tiny_head_model_path):
    model = cxnlp.load(tiny_head_model_path)
    recorded = []
    predictions = analyze(model, TEXTS, LANGS, AspectOptions(), record=recorded)
    assert len(recorded) == len(TEXTS)
    assert all(r.signals.shape == (len(SIGNALS),) for r in recorded)
    assert all(r.features.shape == (feature_width(model),) for r in recorded)
    assert [r.rule for r in recorded] == [p.mixed for p in predictions]
    named = dict(zip(SIGNALS, recorded[0].signals, strict=True))
    assert named["lang_en"] == 1.0 and named["pieces"] > 0  # two clauses around "but"
    assert dict(zip(SIGNALS, recorded[2].signals, strict=True))["lang_fa"] == 1.0


def test_the_head_decides_mixed_where_it_covers_the_language_and_rules_elsewhere(
    tiny_head_model_path,
):
    model = cxnlp.load(tiny_head_model_path)
    assert model.mixed_head is None
    model.aspect_options = AspectOptions(mixed_rules=ALWAYS)
    assert [p.mixed for p in model.predict(TEXTS, LANGS)] == [True, True, True]
    width = feature_width(model)
    model.mixed_head = constant_head(width, bias=-5.0)  # says "not mixed" to every English text
    assert [p.mixed for p in model.predict(TEXTS, LANGS)] == [False, False, True]
    model.mixed_head.or_rule["en"] = True  # head OR rule: the rule fires
    assert [p.mixed for p in model.predict(TEXTS, LANGS)] == [True, True, True]
    model.aspect_options = AspectOptions(mixed_rules=NEVER)
    model.mixed_head = constant_head(width, bias=5.0)
    assert [p.mixed for p in model.predict(TEXTS, LANGS)] == [True, True, False]
    model.aspect_options = AspectOptions(mixed_rules=NEVER, mixed_head=False)
    assert [p.mixed for p in model.predict(TEXTS, LANGS)] == [False, False, False]


def test_the_head_survives_save_and_load_and_a_model_without_one_keeps_the_rules(
    tiny_head_model_path, tmp_path
):
    model = cxnlp.load(tiny_head_model_path)
    width = feature_width(model)
    rng = np.random.default_rng(0)
    size = len(SIGNALS) + width
    head = MixedHead(
        width,
        rng.normal(size=size),
        rng.uniform(0.5, 2, size=size),
        rng.normal(size=size),
        0.3,
        thresholds={"en": 0.4, "fa": 0.6},
        or_rule={"en": False, "fa": True},
        info={"training": {"C": 0.01}},
    )
    model.mixed_head = head
    before = model.predict(TEXTS, LANGS)
    model.save(tmp_path / "m")
    assert {p.name for p in mixed_dir(tmp_path / "m").iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    loaded = cxnlp.load(tmp_path / "m")
    assert loaded.mixed_head.thresholds == {"en": 0.4, "fa": 0.6}
    assert loaded.mixed_head.or_rule == {"en": False, "fa": True}
    assert loaded.mixed_head.info == {"training": {"C": 0.01}}
    recorded = []
    analyze(loaded, TEXTS, LANGS, loaded.aspect_options, record=recorded)
    signals = np.stack([r.signals for r in recorded])
    features = np.stack([r.features for r in recorded])
    np.testing.assert_allclose(
        loaded.mixed_head.probability(signals, features),
        head.probability(signals, features),
        atol=1e-4,
    )
    assert [p.mixed for p in loaded.predict(TEXTS, LANGS)] == [p.mixed for p in before]
    # The model directory it came from has no head: the rules decide.
    plain = cxnlp.load(tiny_head_model_path)
    assert plain.mixed_head is None and not has_mixed(tiny_head_model_path)
    plain.aspect_options = AspectOptions(mixed_rules=ALWAYS)
    assert all(p.mixed for p in plain.predict(TEXTS, LANGS))
    # A head written for other signals is refused, not misread.
    config_path = mixed_dir(tmp_path / "m") / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, "signals": ["doc_negative"]}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="train-mixed"):
        cxnlp.load(tmp_path / "m")


def test_choose_threshold_takes_the_highest_recall_at_the_precision_floor():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    gold = np.array([1, 1, 1, 0, 1, 0, 1, 0], bool)
    chosen = choose_threshold(scores, gold, 0.8)
    assert chosen["threshold"] == pytest.approx(0.55) and chosen["meets"]  # between 0.6 and 0.5
    assert chosen["precision"] == 0.8 and chosen["recall"] == 0.8
    # Nothing reaches the floor: the best F1.
    assert not choose_threshold(scores, gold, 0.99 + 0.02)["meets"]
    # With the rule ORed in, rows it forces count as flagged.
    forced = np.array([0, 0, 0, 0, 0, 0, 1, 0], bool)
    assert choose_threshold(scores, gold, 0.8, forced)["recall"] == 1.0


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


LEAKED = "the tea was great but the bill was awful"


@pytest.fixture()
def tiny_corpus(tmp_path) -> Path:
    """English only: a source labeled mixed (two clauses around "but") and not mixed (one
    clause), train and dev; another dataset of ordinary reviews; a test set whose text also
    sits, labeled mixed, in the source's train split."""
    data = tmp_path / "data"
    rows = []
    for i in range(40):
        split = "dev" if i % 4 == 0 else "train"
        rows.append(
            {"text": f"the soup was great but the waiter was awful {i}", "label": "mixed",
             "split": split, "lang": "en"}
        )  # fmt: skip
        label = "positive" if i % 2 else "negative"
        word = "great" if i % 2 else "awful"
        rows.append(
            {"text": f"the soup was {word} {i}", "label": label, "split": split, "lang": "en"}
        )
    rows.append({"text": LEAKED, "label": "mixed", "split": "train", "lang": "en"})
    write_jsonl(data / "en" / "yelp_absa_terms_pyabsa.jsonl", rows)
    ordinary = [
        {"text": f"nice place {i}", "label": "positive", "split": "train", "lang": "en"}
        for i in range(30)
    ]
    write_jsonl(data / "en" / "semeval2014_absa_restaurants_en.jsonl", ordinary)
    test = [{"text": LEAKED, "label": "mixed", "split": "test", "lang": "en"}]
    write_jsonl(data / "en" / "semeval2014_absa_laptops_en_testgold_terms.jsonl", test)
    # A file the catalog does not list: its test texts are held out all the same.
    unlisted = [
        {"text": "The soup was great 3", "label": "positive", "split": "test", "lang": "en"}
    ]
    write_jsonl(data / "en" / "not_in_the_catalog.jsonl", unlisted)
    return data


def tiny_config(data: Path) -> MixedConfig:
    return MixedConfig(
        data_dir=str(data), langs=("en",), dev_share=0.0, strengths=(0.1, 1.0), batch_size=16
    )


def test_rows_come_from_train_and_dev_only_and_never_a_test_text(tiny_corpus):
    rows = gather_rows(tiny_config(tiny_corpus))
    assert set(rows["split"]) == {"train", "dev"}
    assert LEAKED not in set(rows["text"])
    assert "the soup was great 3" not in set(rows["text"])  # same text_key as the unlisted test
    counts = rows.groupby(["part", "kind"]).size().to_dict()
    assert counts[("train", "mixed")] == 30 and counts[("dev", "mixed")] == 10
    # One not-mixed train text is held out by the unlisted test file.
    assert counts[("train", "same_source")] == 29 and counts[("dev", "same_source")] == 10
    assert counts[("train", "ordinary")] == 15  # half as many as the mixed train rows
    # Rows of a test split are refused outright.
    table = SignalTable(np.zeros((1, len(SIGNALS))), np.zeros((1, 0)), np.zeros(1, bool))
    test_row = pd.DataFrame(
        [{"text": LEAKED, "lang": "en", "split": "test", "part": "train", "kind": "mixed",
          "mixed": True}]
    )  # fmt: skip
    with pytest.raises(ValueError, match="train and dev rows only"):
        fit_mixed_head(table, test_row, tiny_config(tiny_corpus))


def test_train_mixed_fits_saves_and_reuses_its_cached_signals(
    tiny_head_model_path, tiny_corpus, tmp_path, capsys
):
    import shutil

    from cxnlp.cli import main

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_head_model_path, model_dir)
    cache = tmp_path / "cache"
    report = train_mixed(model_dir, tiny_config(tiny_corpus), cache_dir=cache)
    assert has_mixed(model_dir)
    assert report["signals"]["computed"] == 94 and report["signals"]["cached"] == 0
    assert list(cache.glob("mixed/*.npz"))
    en = report["dev"]["en"]
    assert en["dev_mixed"] == 10 and en["dev_other"] == 10
    assert {"precision", "recall"} <= set(en["head"]) and {"precision", "recall"} <= set(
        en["rules"]
    )
    # Two clauses against one: the pieces signal separates them.
    assert en["head"]["recall"] >= 0.9 and en["head"]["precision"] >= 0.8
    metrics = json.loads((mixed_dir(model_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    assert metrics["dev"]["en"]["head"]["threshold"] == en["head"]["threshold"]
    loaded = cxnlp.load(model_dir)
    assert loaded.mixed_head.covers("en") and not loaded.mixed_head.covers("fa")
    texts = ["the soup was great but the waiter was awful 99", "the soup was great 99"]
    assert [p.mixed for p in loaded.predict(texts, ["en", "en"])] == [True, False]
    # The verb, again on the same model: every signal comes from the cache.
    code = main(
        ["train-mixed", "--model", str(model_dir), "--data", str(tiny_corpus),
         "--cache-dir", str(cache), "--dev-share", "0"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "rows en:" in out and "0 read, 94 cached" in out and "seconds:" in out
