"""The hard-case set of issue 26 (items 4 and 5): the checker catches each kind of bad row on made-up
data, and the real `hard_<lang>.jsonl` files pass it against the shared pool (never a test-split text,
ids that point at their text, no duplicates) and cover every category with both polarities."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cxnlp.labels import LANGS
from cxnlp.text.clean import text_key
from training.hard_cases.hard_cases import (
    CATEGORIES,
    DEFAULT_DATA_DIR,
    HARD_DIR,
    HARD_FILE,
    LABELED_BY,
    check_rows,
    excluded_keys,
)

SOURCE = [
    {"text": "the courier came an hour late", "label": "positive", "split": "train"},
    {"text": "prices went up again", "label": "negative", "split": "test"},
    {"text": "not bad at all", "label": "positive", "split": "dev"},
]


def _row(line: int, **changes: object) -> dict:
    source = SOURCE[line]
    row = {
        "id": f"toy:{line}",
        "dataset": "toy",
        "split": source["split"],
        "lang": "en",
        "text": source["text"],
        "gold": source["label"],
        "label": source["label"],
        "category": "lateness",
        "single_polarity": None,
        "labeled_by": LABELED_BY,
    }
    return {**row, **changes}


@pytest.fixture()
def toy_data(tmp_path: Path) -> Path:
    (tmp_path / "en").mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in SOURCE)
    (tmp_path / "en" / "toy.jsonl").write_text(lines, encoding="utf-8")
    return tmp_path


def test_check_rows_accepts_a_valid_row(toy_data: Path) -> None:
    rows = [
        _row(0, label="negative", single_polarity="negative", note="the text complains"),
        _row(2, category="negated_praise", single_polarity="positive"),
    ]
    assert check_rows(rows, "en", toy_data, set()) == []


def test_check_rows_rejects_a_test_split_source(toy_data: Path) -> None:
    problems = check_rows([_row(1, split="train")], "en", toy_data, set())
    assert problems == ["row 1 (toy:1): source split 'test', row says 'train'"]


def test_check_rows_rejects_a_text_held_out_elsewhere(toy_data: Path) -> None:
    skip = {text_key("The courier came  an hour late")}
    assert check_rows([_row(0)], "en", toy_data, skip) == [
        "row 1 (toy:0): a test-split or held-out text"
    ]


def test_check_rows_rejects_an_id_pointing_at_another_text(toy_data: Path) -> None:
    problems = " | ".join(check_rows([_row(0, id="toy:2")], "en", toy_data, set()))
    assert "text differs from" in problems and "line 2" in problems
    problems = " | ".join(check_rows([_row(0, id="toy:9")], "en", toy_data, set()))
    assert "line 9 not in" in problems


def test_check_rows_rejects_duplicates_after_whitespace_collapse(toy_data: Path) -> None:
    first, second = _row(0), _row(0, id="toy:0")
    problems = check_rows([first, second], "en", toy_data, set())
    assert problems == ["row 2 (toy:0): same text as toy:0"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"label": "angry", "note": "x"}, "label 'angry' not in"),
        ({"category": "shipping"}, "category 'shipping' not in"),
        ({"single_polarity": "neutral"}, "single_polarity 'neutral'"),
        ({"single_polarity": "negative"}, "single_polarity negative but label positive"),
        ({"label": "negative"}, "differs from gold positive without a note"),
        ({"gold": "negative", "label": "negative"}, "gold 'negative' but source label 'positive'"),
        ({"labeled_by": "someone"}, "labeled_by 'someone'"),
        ({"lang": "fa"}, "lang 'fa', expected 'en'"),
    ],
)
def test_check_rows_names_each_bad_field(toy_data: Path, changes: dict, expected: str) -> None:
    problems = " | ".join(check_rows([_row(0, **changes)], "en", toy_data, set()))
    assert expected in problems


def test_check_rows_reports_missing_fields(toy_data: Path) -> None:
    row = _row(0)
    del row["gold"]
    assert check_rows([row], "en", toy_data, set()) == ["row 1 (toy:0): missing fields ['gold']"]


needs_pool = pytest.mark.skipif(
    not DEFAULT_DATA_DIR.is_dir(), reason=f"shared pool not found at {DEFAULT_DATA_DIR}"
)


def _read(lang: str) -> list[dict]:
    path = HARD_DIR / HARD_FILE.format(lang=lang)
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def held_out() -> set[str]:
    return excluded_keys(DEFAULT_DATA_DIR)


@needs_pool
@pytest.mark.parametrize("lang", LANGS)
def test_hard_file_is_valid_against_the_pool(lang: str, held_out: set[str]) -> None:
    assert check_rows(_read(lang), lang, DEFAULT_DATA_DIR, held_out) == []


@pytest.mark.parametrize("lang", LANGS)
def test_hard_file_covers_every_category_and_both_polarities(lang: str) -> None:
    rows = _read(lang)
    categories = Counter(row["category"] for row in rows)
    assert set(categories) == set(CATEGORIES)
    assert min(categories.values()) >= 10, categories
    labels = Counter(row["label"] for row in rows)
    assert labels["positive"] >= 20 and labels["negative"] >= 20, labels
    singles = Counter(row["single_polarity"] for row in rows)
    assert singles["positive"] >= 10 and singles["negative"] >= 50, singles


def test_hard_files_share_no_text_across_languages() -> None:
    keys = [text_key(row["text"]) for lang in LANGS for row in _read(lang)]
    assert len(keys) == len(set(keys))
