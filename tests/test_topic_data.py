"""Tests for training.topic_data: mapping source labels onto the taxonomy, on a tiny corpus."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import yaml

from training.topic_data import (
    COLUMNS,
    TopicMappingError,
    hash_split,
    load_mapping,
    load_topic_corpus,
    map_row,
    merge_polarity,
    normalize_term,
)

# Real dataset names, so that `commercial_only` finds them in training/datasets.yaml:
# twitter_us_airline is non-commercial, the others are not.
MAPPING = {
    "version": 1,
    "datasets": {
        "en": {
            "twitter_us_airline": {
                "field": "topics",
                "polarity": "row",
                "partial": True,
                "labels": {"Late Flight": "wait_time", "Lost Luggage": "delivery"},
                "unmapped": {"Can't Tell": "annotators could not tell"},
            },
            "semeval2016_absa_restaurants_en": {
                "field": "aspects",
                "key": "category",
                "polarity": "aspect",
                "scope": ["product_quality", "price", "delivery"],
                "split": "hash",
                "labels": {
                    "FOOD#QUALITY": "product_quality",
                    "DRINKS#QUALITY": "product_quality",
                    "SHIPPING#PRICE": ["delivery", "price"],
                },
                "unmapped": {"RESTAURANT#GENERAL": "generic"},
            },
            "yelp_absa_terms_pyabsa": {"include": False, "exclude": "terms only"},
        },
        "fa": {
            "pars_absa_test": {
                "field": "aspects",
                "key": "aspect",
                "polarity": "aspect",
                "terms": "fa",
                "partial": True,
                "splits": ["test"],
            }
        },
    },
    "term_lexicons": {
        "fa": [
            {"pattern": "قیمت|ارزش خرید", "topics": ["price"]},
            {"pattern": "بسته بندی", "topics": ["packaging"]},
            {"pattern": "^(این )?گوشی", "topics": None, "reason": "the product as a whole"},
            {"pattern": "دوربین|گوشی", "topics": ["product_quality"]},
        ]
    },
}

AIRLINE = [
    {
        "text": "@united flight delayed 3 hours",
        "label": "negative",
        "topics": ["Late Flight"],
        "split": "train",
    },
    {"text": "@united thanks, great crew", "label": "positive", "topics": [], "split": "train"},
    {
        "text": "@united where is my bag",
        "label": "negative",
        "topics": ["Lost Luggage"],
        "split": "test",
    },
    {
        "text": "@united no idea what happened",
        "label": "negative",
        "topics": ["Can't Tell"],
        "split": "dev",
    },
]
RESTAURANTS = [
    {
        "text": "Great pasta but the wine was sour.",
        "label": "mixed",
        "split": "train",
        "aspects": [
            {"category": "FOOD#QUALITY", "polarity": "positive"},
            {"category": "DRINKS#QUALITY", "polarity": "negative"},
        ],
    },
    {
        "text": "Shipping cost a fortune.",
        "label": "negative",
        "split": "train",
        "aspects": [{"category": "SHIPPING#PRICE", "polarity": "negative"}],
    },
    {
        "text": "Lovely place.",
        "label": "positive",
        "split": "train",
        "aspects": [{"category": "RESTAURANT#GENERAL", "polarity": "positive"}],
    },
    {
        "text": "The food was fine.",
        "label": "neutral",
        "split": "train",
        "aspects": [{"category": "FOOD#STYLE_OPTIONS", "polarity": "neutral"}],
    },
    # The same text as an airline test tweet: a test text elsewhere never trains.
    {"text": "@united where is my bag", "label": "negative", "split": "train", "aspects": []},
    # Spacing and case do not make a new text: a duplicate of the first row.
    {
        "text": "great pasta  but the wine was sour.",
        "label": "mixed",
        "split": "train",
        "aspects": [],
    },
]
PARS_ABSA = [
    {
        "text": "دوربینش عالیه ولی قیمتش بالاست",
        "label": "mixed",
        "split": "test",
        "aspects": [
            {"aspect": "دوربینش", "polarity": "positive"},
            {"aspect": "قیمتش", "polarity": "negative"},
            {"aspect": "این گوشی", "polarity": "positive"},
            {"aspect": "مودم", "polarity": "neutral"},
        ],
    },
    {
        "text": "بسته‌بندی خوب بود",
        "label": "positive",
        "split": "test",
        "aspects": [{"aspect": "بسته‌بندی", "polarity": "conflict"}],
    },
    {"text": "دور ریختنی", "label": "negative", "split": "train", "aspects": []},
]
AIRLINE_REPEATS = [
    # The same tweet in train and in test of one file: the test row stays, the train row goes.
    {"text": "@united lost my bag again", "label": "negative", "topics": [], "split": "train"},
    {"text": "@united lost my bag again", "label": "negative", "topics": [], "split": "test"},
    {"text": "@united lost my bag again", "label": "negative", "topics": [], "split": "test"},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    _write_jsonl(data / "en" / "twitter_us_airline.jsonl", AIRLINE + AIRLINE_REPEATS)
    _write_jsonl(data / "en" / "semeval2016_absa_restaurants_en.jsonl", RESTAURANTS)
    _write_jsonl(data / "en" / "yelp_absa_terms_pyabsa.jsonl", AIRLINE)
    _write_jsonl(data / "fa" / "pars_absa_test.jsonl", PARS_ABSA)
    return data


@pytest.fixture
def mapping_path(tmp_path: Path) -> Path:
    return _write_mapping(tmp_path, MAPPING)


def _write_mapping(tmp_path: Path, mapping: dict) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return path


def _load(corpus_dir: Path, mapping_path: Path, **kwargs):
    kwargs.setdefault("holdout_files", [])
    return load_topic_corpus(corpus_dir, mapping_path, **kwargs)


def _row(corpus, text: str) -> dict:
    found = corpus[corpus["text"] == text]
    assert len(found) == 1, text
    return found.iloc[0].to_dict()


def test_load_topic_corpus_columns_and_datasets(corpus_dir: Path, mapping_path: Path) -> None:
    corpus = _load(corpus_dir, mapping_path)
    assert list(corpus.columns) == COLUMNS
    # The excluded dataset is not read, although its file exists.
    assert set(corpus["dataset"]) == {
        "twitter_us_airline",
        "semeval2016_absa_restaurants_en",
        "pars_absa_test",
    }


def test_load_topic_corpus_row_polarity_and_partial(corpus_dir: Path, mapping_path: Path) -> None:
    corpus = _load(corpus_dir, mapping_path)
    late = _row(corpus, "@united flight delayed 3 hours")
    assert late["topics"] == [{"topic": "wait_time", "polarity": "negative"}]
    assert late["polarity_source"] == "row"
    assert late["partial"] and late["scope"] == []
    # A tweet without a reason keeps its row: its topics are unknown, not absent.
    praise = _row(corpus, "@united thanks, great crew")
    assert praise["topics"] == [] and praise["partial"]
    cant_tell = _row(corpus, "@united no idea what happened")
    assert cant_tell["topics"] == [] and cant_tell["unmapped"] == ["Can't Tell"]


def test_load_topic_corpus_aspect_polarity_merge_and_lists(
    corpus_dir: Path, mapping_path: Path
) -> None:
    corpus = _load(corpus_dir, mapping_path)
    both = _row(corpus, "Great pasta but the wine was sour.")
    # FOOD positive and DRINKS negative fold into one topic: mixed.
    assert both["topics"] == [{"topic": "product_quality", "polarity": "mixed"}]
    assert both["polarity_source"] == "aspect"
    assert not both["partial"] and both["scope"] == ["product_quality", "price", "delivery"]
    shipping = _row(corpus, "Shipping cost a fortune.")
    assert shipping["topics"] == [
        {"topic": "delivery", "polarity": "negative"},
        {"topic": "price", "polarity": "negative"},
    ]
    generic = _row(corpus, "Lovely place.")
    assert generic["topics"] == [] and generic["unmapped"] == ["RESTAURANT#GENERAL"]


def test_load_topic_corpus_warns_about_unknown_labels(
    corpus_dir: Path, mapping_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="training.topic_data"):
        corpus = _load(corpus_dir, mapping_path)
    assert "FOOD#STYLE_OPTIONS" in caplog.text
    assert _row(corpus, "The food was fine.")["unmapped"] == ["FOOD#STYLE_OPTIONS"]


def test_load_topic_corpus_term_lexicon(corpus_dir: Path, mapping_path: Path) -> None:
    corpus = _load(corpus_dir, mapping_path)
    review = _row(corpus, "دوربینش عالیه ولی قیمتش بالاست")
    # First match wins: "این گوشی" hits the null rule before the product_quality one.
    assert review["topics"] == [
        {"topic": "price", "polarity": "negative"},
        {"topic": "product_quality", "polarity": "positive"},
    ]
    assert review["unmapped"] == ["این گوشی", "مودم"]
    # The zero-width non-joiner of "بسته‌بندی" does not stop the rule; conflict becomes mixed.
    packed = _row(corpus, "بسته‌بندی خوب بود")
    assert packed["topics"] == [{"topic": "packaging", "polarity": "mixed"}]
    # `splits: [test]` keeps only the test rows.
    assert "دور ریختنی" not in set(corpus["text"])


def test_load_topic_corpus_hash_split(corpus_dir: Path, mapping_path: Path) -> None:
    corpus = _load(corpus_dir, mapping_path)
    part = corpus[corpus["dataset"] == "semeval2016_absa_restaurants_en"]
    assert list(part["split"]) == [hash_split(t) for t in part["text"]]
    airline = corpus[corpus["dataset"] == "twitter_us_airline"]
    assert sorted(airline["split"]) == ["dev", "test", "test", "train", "train"]


def test_hash_split_stable_and_proportional() -> None:
    assert hash_split("Great pasta!") == hash_split("  great   PASTA! ")
    splits = [hash_split(f"review number {i}") for i in range(3000)]
    assert 0.07 < splits.count("test") / 3000 < 0.13
    assert 0.07 < splits.count("dev") / 3000 < 0.13


def test_load_topic_corpus_removes_leaks_and_duplicates(
    corpus_dir: Path, mapping_path: Path, tmp_path: Path
) -> None:
    holdout = _write_jsonl(
        tmp_path / "eval" / "topics_handlabeled_en.jsonl",
        [{"id": "x:1", "text": "SHIPPING cost a fortune.", "topics": []}],
    )
    corpus = _load(corpus_dir, mapping_path, holdout_files=[holdout])
    bag = corpus[corpus["text"] == "@united where is my bag"]
    assert list(bag["dataset"]) == ["twitter_us_airline"]
    assert list(bag["split"]) == ["test"]
    assert (corpus["text"].str.casefold().str.contains("great pasta")).sum() == 1
    repeated = corpus[corpus["text"] == "@united lost my bag again"]
    assert list(repeated["split"]) == ["test"]
    assert "Shipping cost a fortune." not in set(corpus["text"])


def test_load_topic_corpus_uses_handlabeled_sets_by_default(
    corpus_dir: Path, mapping_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import training.topic_data as topic_data

    eval_dir = tmp_path / "eval"
    _write_jsonl(eval_dir / "topics_handlabeled_en.jsonl", [{"text": "Lovely place."}])
    monkeypatch.setattr(topic_data, "EVAL_DIR", eval_dir)
    corpus = load_topic_corpus(corpus_dir, mapping_path)
    assert "Lovely place." not in set(corpus["text"])


def test_load_topic_corpus_filters(corpus_dir: Path, mapping_path: Path) -> None:
    assert set(_load(corpus_dir, mapping_path, langs=("fa",))["lang"]) == {"fa"}
    commercial = _load(corpus_dir, mapping_path, commercial_only=True)
    assert "twitter_us_airline" not in set(commercial["dataset"])
    with pytest.raises(ValueError, match=r"no topic dataset of \['ar'\]"):
        _load(corpus_dir, mapping_path, langs=("ar",))
    with pytest.raises(FileNotFoundError, match="data directory not found"):
        _load(corpus_dir / "missing", mapping_path)


@pytest.mark.parametrize(
    ("polarities", "expected"),
    [
        (["positive"], "positive"),
        (["neutral", "negative"], "negative"),
        (["neutral", "neutral"], "neutral"),
        (["positive", "negative"], "mixed"),
        (["mixed", "positive"], "mixed"),
    ],
)
def test_merge_polarity(polarities: list[str], expected: str) -> None:
    assert merge_polarity(polarities) == expected


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("الإفطار", "الافطار"),
        ("النظافة", "النظافه"),
        ("بسته\u200cبندی", "بسته بندی"),
        ("كيفيت", "کیفیت"),
        ("الـغـرف", "الغرف"),
        ("Battery  Life", "battery life"),
    ],
)
def test_normalize_term(term: str, expected: str) -> None:
    assert normalize_term(term) == expected


def test_map_row_row_polarity_for_mixed_label(mapping_path: Path) -> None:
    mapping = load_mapping(mapping_path)["twitter_us_airline"]
    row = {"label": "mixed", "topics": ["Late Flight", "Late Flight"]}
    topics, labels, unmapped = map_row(row, mapping)
    assert topics == [{"topic": "wait_time", "polarity": "mixed"}]
    assert labels == ["Late Flight", "Late Flight"] and unmapped == []


def test_map_row_aspect_without_polarity_takes_row_label(mapping_path: Path) -> None:
    mapping = load_mapping(mapping_path)["semeval2016_absa_restaurants_en"]
    row = {"label": "negative", "aspects": [{"category": "FOOD#QUALITY", "polarity": "-1"}]}
    topics, _, _ = map_row(row, mapping)
    assert topics == [{"topic": "product_quality", "polarity": "negative"}]


def test_load_mapping_shipped_file_is_valid() -> None:
    mappings = load_mapping()
    assert mappings["twitter_us_airline"].partial
    assert mappings["semeval2016_absa_ar_hotels_cat"].resolve("SERVICE#GENERAL") == (
        "staff_behavior",
    )
    assert mappings["semeval2016_absa_ar_hotels_terms"].resolve("الإفطار") == ("product_quality",)
    assert mappings["pars_absa_test"].resolve("این گوشی") == ()
    assert not mappings["haad"].include
    for mapping in mappings.values():
        assert mapping.partial == (mapping.scope == ()), mapping.dataset


def test_load_mapping_reports_every_problem(tmp_path: Path) -> None:
    bad = {
        "datasets": {
            "de": {"x": {"labels": {"a": "price"}}},
            "en": {
                "a": {"labels": {"L1": "shipping", "L2": "price"}, "unmapped": {"L2": "why"}},
                "b": {"labels": {"L": "price"}, "unmapped": {"M": ""}},
                "c": {"field": "aspects", "polarity": "aspect", "labels": {"L": "price"}},
                "d": {"labels": {"L": "price"}, "partial": True, "scope": ["price"]},
                "e": {"include": False},
                "f": {"labels": {"L": "price"}, "colour": "red", "split": "random"},
                "g": {"terms": "ar"},
                "h": {"field": "topics", "polarity": "aspect", "labels": {"L": "price"}},
                "i": {},
            },
        },
        "term_lexicons": {
            "fa": [{"pattern": "(", "topics": ["price"]}, {"pattern": "x", "topics": None}]
        },
    }
    with pytest.raises(TopicMappingError) as info:
        load_mapping(_write_mapping(tmp_path, bad))
    problems = "\n".join(info.value.problems)
    for expected in [
        "datasets: unknown language 'de'",
        "a: label 'L1': unknown topic(s) ['shipping']",
        "a: label 'L2' is both mapped and unmapped",
        "b: `unmapped` must map each label to a short reason",
        "c: field 'aspects' needs `key`",
        "d: a partial dataset has no `scope`",
        "e: `include: false` needs an `exclude` reason",
        "f: unknown field(s) ['colour']",
        "f: split 'random' is not one of ['source', 'hash']",
        "g: no term lexicon 'ar' under `term_lexicons`",
        "h: `topics` names carry no polarity; use `polarity: row`",
        "i: no `labels` (or `terms`): nothing would map to a topic",
        "term_lexicons.fa rule 1: pattern does not compile",
        "term_lexicons.fa rule 2: `topics: null` needs a `reason`",
    ]:
        assert expected in problems


def test_load_mapping_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape("topic mapping file not found")):
        load_mapping(tmp_path / "nope.yaml")


def test_persian_topic_dev_set_is_valid_and_disjoint_from_the_test_sets() -> None:
    import json

    from cxnlp.topics.taxonomy import TOPICS
    from training.data import text_key
    from training.topic_data import EVAL_DIR, HANDLABELED_GLOB, TOPIC_POLARITIES

    dev = [json.loads(line) for line in (EVAL_DIR / "topics_dev_fa.jsonl").open(encoding="utf-8")]
    assert len(dev) >= 75 and {row["split"] for row in dev} == {"dev"}
    for row in dev:
        assert row["lang"] == "fa" and row["text"].strip()
        assert all(
            t["topic"] in TOPICS and t["polarity"] in TOPIC_POLARITIES for t in row["topics"]
        )
    test = {
        text_key(json.loads(line)["text"])
        for path in EVAL_DIR.glob(HANDLABELED_GLOB)
        for line in path.open(encoding="utf-8")
    }
    assert not {text_key(row["text"]) for row in dev} & test
    assert "topics_dev_fa.jsonl" not in {p.name for p in EVAL_DIR.glob(HANDLABELED_GLOB)}
