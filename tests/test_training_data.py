"""Tests for training.data: validating users' labeled files, stable splits, leak removal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.data import LabeledDataError, hash_split, read_labeled, remove_leaks, text_key

GOOD = [
    ("غذا خیلی خوشمزه بود", "positive", "fa"),
    ("الخدمة سيئة جدا", "Negative", "ar"),
    ("The store opens at nine", " neutral ", "en"),
    ("پیک دیر رسید", "negative", "fa"),
]


def _write(tmp_path: Path, rows: list[dict], name: str = "labels.csv") -> Path:
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_excel(path, index=False)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(LabeledDataError) as info:
        read_labeled(path)
    assert str(path) in str(info.value)
    return info.value.problems


@pytest.mark.parametrize("name", ["labels.csv", "labels.jsonl", "labels.xlsx"])
def test_read_labeled_valid_file(tmp_path: Path, name: str) -> None:
    rows = [{"text": t, "label": label, "lang": lang} for t, label, lang in GOOD]
    frame = read_labeled(_write(tmp_path, rows, name))
    assert frame["text"].tolist() == [t for t, _, _ in GOOD]
    assert frame["label"].tolist() == ["positive", "negative", "neutral", "negative"]
    assert frame["lang"].tolist() == [lang for _, _, lang in GOOD]
    assert frame["split"].tolist() == [hash_split(t) for t, _, _ in GOOD]
    assert set(frame["dataset"]) == {"labels"} and set(frame["domain"]) == {"user"}
    assert frame["topics"].tolist() == [[]] * 4


def test_read_labeled_detects_language_when_the_column_is_absent(tmp_path: Path) -> None:
    rows = [{"text": t, "label": label} for t, label, _ in GOOD]
    assert read_labeled(_write(tmp_path, rows))["lang"].tolist() == ["fa", "ar", "en", "fa"]


@pytest.mark.parametrize("name", ["labels.csv", "labels.jsonl"])
def test_read_labeled_blank_lang_cells_are_detected_and_given_ones_kept(
    tmp_path: Path, name: str
) -> None:
    # Regression: a blank cell was an "unknown lang ''" error in CSV, and in JSONL one null made
    # every given language be thrown away and detected instead.
    rows = [
        {"text": "الخدمة سيئة جدا", "label": "negative", "lang": None},
        {"text": "Great app", "label": "positive", "lang": "fa"},  # deliberately kept as given
    ]
    assert read_labeled(_write(tmp_path, rows, name))["lang"].tolist() == ["ar", "fa"]


def test_read_labeled_split_column(tmp_path: Path) -> None:
    rows = [
        {"text": "Great app", "label": "positive", "split": "Train"},
        {"text": "Awful app", "label": "negative", "split": "dev"},
        {"text": "An app", "label": "neutral", "split": ""},
    ]
    frame = read_labeled(_write(tmp_path, rows))
    assert frame["split"].tolist() == ["train", "dev", hash_split("An app")]


def test_read_labeled_unknown_split_names_the_row(tmp_path: Path) -> None:
    rows = [
        {"text": "Great app", "label": "positive", "split": "train"},
        {"text": "Awful app", "label": "negative", "split": "validation"},
    ]
    assert _problems(_write(tmp_path, rows)) == [
        "row 2: unknown split 'validation'; expected one of ['train', 'dev', 'test'] or blank"
    ]


def test_read_labeled_misspelt_label_suggests_the_fix(tmp_path: Path) -> None:
    rows = [{"text": "Great app", "label": "positive"}, {"text": "Bad", "label": "negtive"}]
    (problem,) = _problems(_write(tmp_path, rows))
    assert problem.startswith("row 2: unknown label 'negtive' (did you mean 'negative'?)")


def test_read_labeled_unknown_label_without_suggestion(tmp_path: Path) -> None:
    rows = [{"text": "Great app", "label": "mixed"}]
    (problem,) = _problems(_write(tmp_path, rows))
    assert "row 1: unknown label 'mixed'; expected one of" in problem
    assert "did you mean" not in problem


def test_read_labeled_reports_every_problem_by_row(tmp_path: Path) -> None:
    rows = [
        {"text": "Great app", "label": "positive", "lang": "en"},
        {"text": "", "label": "negative", "lang": "en"},
        {"text": "great   APP", "label": "negative", "lang": "en"},  # same text, other label
        {"text": "خوب بود", "label": "positive", "lang": "fa"},
        {"text": "خوب  بود", "label": "positive", "lang": "fa"},  # duplicate
        {"text": "Fine", "label": "neutral", "lang": "english"},
    ]
    assert _problems(_write(tmp_path, rows)) == [
        "row 2: empty text",
        "row 3: conflicting labels for one text: 'negative' here, 'positive' in row 1",
        "row 5: duplicate of row 4",
        "row 6: unknown lang 'english'; expected one of ['fa', 'ar', 'en']",
    ]


def test_read_labeled_missing_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"review": "Great app", "label": "positive"}])
    (problem,) = _problems(path)
    assert "missing column(s) ['text']" in problem and "expected text,label" in problem


def test_read_labeled_many_problems_are_summarised(tmp_path: Path) -> None:
    rows = [{"text": f"text {i}", "label": "?"} for i in range(25)]
    with pytest.raises(LabeledDataError, match=r"25 problem\(s\)[\s\S]*and 5 more"):
        read_labeled(_write(tmp_path, rows))


def test_read_labeled_topics(tmp_path: Path) -> None:
    rows = [
        {"text": "Late and cold", "label": "negative", "topics": "delivery; food"},
        {"text": "Great app", "label": "positive", "topics": '["app"]'},
        {"text": "An app", "label": "neutral", "topics": ""},
    ]
    frame = read_labeled(_write(tmp_path, rows))
    assert frame["topics"].tolist() == [["delivery", "food"], ["app"], []]


def test_hash_split_is_stable_and_ignores_case_and_spacing() -> None:
    texts = [f"review number {i}" for i in range(2000)]
    splits = [hash_split(t) for t in texts]
    assert splits == [hash_split(t) for t in texts]
    assert splits == [hash_split(f"  REVIEW   number {i} ") for i in range(2000)]
    assert set(splits) == {"train", "dev"}
    assert 0.06 < splits.count("dev") / len(splits) < 0.14  # dev_share 0.1
    assert all(hash_split(t, dev_share=0.0) == "train" for t in texts[:50])


def test_text_key() -> None:
    assert text_key("  Great\tAPP \n") == text_key("great app")
    assert text_key("great app") != text_key("great apps")


def test_remove_leaks() -> None:
    corpus = pd.DataFrame(
        [
            ("Great app", "positive", "train", "d1"),
            ("great  APP", "positive", "dev", "d1"),  # duplicate of a train text: dropped
            ("Cold food", "negative", "train", "d1"),  # also in test: dropped
            ("cold food", "negative", "test", "d2"),
            ("So so", "neutral", "train", "d1"),  # conflicting labels: both dropped
            ("so so", "positive", "train", "d2"),
            ("Late", "negative", "train", "d1"),
            ("Fine", "neutral", "eval", "d3"),
            ("fine", "neutral", "train", "d1"),  # in an eval-only set: dropped
            ("cold food", "negative", "test", "d2"),  # repeated in one held-out set: once
        ],
        columns=["text", "label", "split", "dataset"],
    )
    kept = remove_leaks(corpus)
    assert sorted(zip(kept["text"], kept["split"], strict=True)) == [
        ("Fine", "eval"),
        ("Great app", "train"),
        ("Late", "train"),
        ("cold food", "test"),
    ]
    assert "_key" not in kept.columns
