"""Tests for cxnlp.models.fast and cxnlp.models.store: fitting, saving and loading a tiny fast model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cxnlp
from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import CONFIG_FILE
from cxnlp.models.base import NotFittedError
from cxnlp.models.fast import FastSentimentModel
from cxnlp.models.store import MODELS_DIR_ENV, list_models, resolve_model

PROBE = [
    "غذا خیلی خوشمزه بود",
    "پیک دیر رسید و غذا سرد بود",
    "الخدمة ممتازة",
    "التطبيق بطيء",
    "Great app",
    "The courier was late, awful",
    "The store opens at nine",
]


def test_fast_model_fits_its_training_texts(
    tiny_fast_model: FastSentimentModel, tiny_train: list[tuple[str, str, str]]
) -> None:
    langs, texts, labels = zip(*tiny_train, strict=True)
    predictions = tiny_fast_model.predict(list(texts), langs=list(langs))
    assert [p.sentiment for p in predictions] == list(labels)
    assert [p.lang for p in predictions] == list(langs)


def test_fast_model_predictions_are_probabilities(tiny_fast_model: FastSentimentModel) -> None:
    probs = tiny_fast_model.predict_proba(PROBE)
    assert probs.shape == (len(PROBE), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    for prediction, row in zip(tiny_fast_model.predict(PROBE), probs, strict=True):
        assert list(prediction.probabilities) == list(SENTIMENTS)
        assert prediction.confidence == pytest.approx(row.max())
        assert prediction.sentiment == SENTIMENTS[int(row.argmax())]


def test_fast_model_applies_the_temperature_of_each_language(
    tiny_fast_model: FastSentimentModel,
) -> None:
    # tiny_fast_model has {"*": 1.5, "fa": 0.8}: the same text scored as fa is sharper than as en.
    text = ["غذا خیلی خوشمزه بود"]
    as_fa = tiny_fast_model.predict_proba(text, langs=["fa"])
    as_en = tiny_fast_model.predict_proba(text, langs=["en"])
    assert as_fa.max() > as_en.max()


def test_fast_model_save_writes_only_safetensors_and_json(tiny_model_dir: Path) -> None:
    files = sorted(p.name for p in tiny_model_dir.iterdir())
    assert files == ["config.json", "model.safetensors"]
    for path in tiny_model_dir.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
    config = json.loads((tiny_model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["kind"] == "fast"
    assert config["labels"] == list(SENTIMENTS)
    assert config["temperatures"] == {"*": 1.5, "fa": 0.8}
    assert config["cxnlp_version"] == cxnlp.__version__


def test_fast_model_save_load_round_trip(
    tiny_fast_model: FastSentimentModel, tiny_model_dir: Path, tmp_path: Path
) -> None:
    loaded = FastSentimentModel.load(tiny_model_dir)
    assert loaded.temperatures_ == tiny_fast_model.temperatures_
    assert (loaded.n_features, loaded.ngram_range, loaded.C) == (2**14, (1, 4), 10.0)
    # The weights are stored as float32: the loaded model agrees to float32 precision...
    expected = tiny_fast_model.predict_proba(PROBE)
    np.testing.assert_allclose(loaded.predict_proba(PROBE), expected, rtol=1e-5, atol=1e-6)
    assert [p.sentiment for p in loaded.predict(PROBE)] == [
        p.sentiment for p in tiny_fast_model.predict(PROBE)
    ]
    # ...and from then on saving and loading changes nothing.
    again = FastSentimentModel.load(loaded.save(tmp_path / "again"))
    np.testing.assert_array_equal(again.predict_proba(PROBE), loaded.predict_proba(PROBE))


def test_load_by_path(tiny_fast_model: FastSentimentModel, tiny_model_dir: Path) -> None:
    model = cxnlp.load(str(tiny_model_dir))
    assert isinstance(model, FastSentimentModel)
    np.testing.assert_allclose(
        model.predict_proba(PROBE), tiny_fast_model.predict_proba(PROBE), rtol=1e-5, atol=1e-6
    )


def test_load_by_name_from_the_models_dir_env(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tiny_model_dir.parent))
    assert resolve_model("tiny") == tiny_model_dir
    model = cxnlp.load("tiny")
    assert isinstance(model, FastSentimentModel)
    assert [m["name"] for m in list_models()] == ["tiny"]
    assert list_models()[0]["kind"] == "fast"


def test_load_unknown_name_lists_the_available_models(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tiny_model_dir.parent))
    with pytest.raises(FileNotFoundError, match=r"no model 'nope'.*available: \['tiny'\]"):
        cxnlp.load("nope")


def test_load_unknown_kind(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"kind": "svm"}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown model kind 'svm'"):
        cxnlp.load(tmp_path)


def test_load_warns_about_a_newer_cxnlp(tiny_model_dir: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    newer.mkdir()
    for path in tiny_model_dir.iterdir():
        (newer / path.name).write_bytes(path.read_bytes())
    config = json.loads((newer / CONFIG_FILE).read_text(encoding="utf-8"))
    config["cxnlp_version"] = "99.0.0"
    (newer / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    with pytest.warns(UserWarning, match="newer than this cxnlp"):
        cxnlp.load(newer)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_logits"])
def test_unfitted_model_raises_not_fitted(method: str) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(FastSentimentModel(n_features=2**10), method)(["Great app"])


def test_unfitted_model_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        FastSentimentModel(n_features=2**10).save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("n_features", [8, 1000])
def test_fast_model_n_features_must_be_a_power_of_two(n_features: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        FastSentimentModel(n_features=n_features)


def test_fast_model_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match=r"unknown labels \['postive'\]"):
        FastSentimentModel(n_features=2**10).fit(
            ["a", "b", "c"], ["postive", "negative", "neutral"]
        )


def test_fast_model_needs_all_three_sentiments() -> None:
    with pytest.raises(ValueError, match="all three sentiments"):
        FastSentimentModel(n_features=2**10).fit(
            ["good", "great", "bad", "awful"], ["positive", "positive", "negative", "negative"]
        )


def test_predict_rejects_a_single_string(tiny_fast_model: FastSentimentModel) -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        tiny_fast_model.predict("Great app")


# Texts that exercise the n-gram analyser's corners: whitespace runs and kinds, one-letter and
# empty texts, capitals, ZWNJ, combining marks, four-byte characters, digits and punctuation.
HASHING_TEXTS = [
    *PROBE,
    "",
    "   ",
    "a",
    "ab  CD\t\tef\n\u00a0gh\u2003ij",
    "می\u200cخواهم بیشتر بدانم",
    "e\u0301te\u0301 CAFÉ ß İ",
    "😀😡👍🏽 emoji 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "order #12345 cost $9.99 (50% off!!!)",
    "\x00nul\x00 and \x1f unit separator",
]


def _sklearn_logits(model: FastSentimentModel, texts: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    tfidf = TfidfTransformer(sublinear_tf=True)
    tfidf.idf_ = np.asarray(model.tfidf_.idf_, dtype=np.float64)
    linear = LogisticRegression()
    linear.coef_ = np.asarray(model.classifier_.coef_, dtype=np.float64)
    linear.intercept_ = np.asarray(model.classifier_.intercept_, dtype=np.float64)
    linear.classes_ = np.arange(len(SENTIMENTS))
    return linear.decision_function(tfidf.transform(model._vectorizer().transform(texts)))


def test_fast_model_logits_are_scikit_learns_to_the_bit(
    tiny_fast_model: FastSentimentModel, tiny_model_dir: Path
) -> None:
    """Prediction computes the features and scores in numpy: the same floats scikit-learn's
    HashingVectorizer, TfidfTransformer and decision_function give, fitted or loaded, on the
    shipped model's 1M features too."""
    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in [*range(32, 127), *range(0x600, 0x6FF), 0x200C, 0x1F600, 0xA0]]
    texts = HASHING_TEXTS + [
        "".join(rng.choice(alphabet, size=int(rng.integers(0, 60)))) for _ in range(200)
    ]
    models = [tiny_fast_model, cxnlp.load(tiny_model_dir)]
    shipped = resolve_model("default") / "members" / "fast"
    if shipped.is_dir():
        models.append(FastSentimentModel.load(shipped))
    for model in models:
        assert np.array_equal(model._logits(texts), _sklearn_logits(model, texts))


def test_murmurhash_matches_scikit_learn() -> None:
    from sklearn.utils import murmurhash3_32

    from cxnlp.models.ngram_hash import murmurhash3_32 as ours

    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", "سلام".encode(), "😀 x".encode()]
    keys += [bytes(range(n)) for n in range(0, 24)]
    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    lengths = np.array([len(k) for k in keys], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    assert ours(data, starts, lengths).tolist() == [murmurhash3_32(k, positive=False) for k in keys]
