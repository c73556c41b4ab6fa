"""Tests for the team's topic labeling set (issue 27): the agreement statistics on made-up rows,
and the real labeled files checked against the taxonomy, their texts and the held-out sets."""

from __future__ import annotations

import math

import pytest

from training.data import read_jsonl
from training.topic_data import topic_set_keys
from training.topic_labels.agreement import (
    FIRST_PASS,
    LABELS_DIR,
    SECOND_PASS,
    SECOND_PASS_EVERY,
    UNLABELED,
    agreement,
    check_rows,
    format_agreement,
)


def _row(i: int, *topics: tuple[str, str]) -> dict:
    text = f"text {i} " + " ".join(t for t, _ in topics)
    return {
        "id": f"d:{i}",
        "text": text,
        "topics": [{"topic": t, "polarity": p, "evidence": t} for t, p in topics],
    }


FIRST = [
    _row(0, ("price", "negative")),
    _row(1, ("price", "positive"), ("product_quality", "positive")),
    _row(2),
    _row(3, ("delivery", "negative"), ("wait_time", "negative")),
    _row(4, ("product_quality", "negative")),
    _row(5),
    _row(6, ("staff_behavior", "positive")),
    _row(7, ("price", "neutral")),
]


def test_agreement_identical_passes_agree_perfectly() -> None:
    result = agreement(FIRST, FIRST)
    assert result.n == len(FIRST)
    assert set(result.kappa) == {
        "delivery",
        "price",
        "product_quality",
        "staff_behavior",
        "wait_time",
    }
    assert all(k == 1.0 for k in result.kappa.values())
    assert result.mean_kappa == 1.0
    assert result.exact_set == 1.0
    assert result.polarity == 1.0


def test_agreement_flipped_pass_scores_lower() -> None:
    # The second pass drops price where the first had it and adds it where the first had none,
    # and flips one polarity of product_quality.
    second = [
        _row(0),
        _row(1, ("product_quality", "negative")),
        _row(2, ("price", "negative")),
        _row(3, ("delivery", "negative"), ("wait_time", "negative")),
        _row(4, ("product_quality", "negative")),
        _row(5, ("price", "positive")),
        _row(6, ("staff_behavior", "positive")),
        _row(7),
    ]
    result = agreement(FIRST, second)
    assert result.kappa["price"] < 0
    assert result.kappa["delivery"] == 1.0
    assert result.mean_kappa < 1.0
    assert result.exact_set == pytest.approx(3 / 8)  # rows 3, 4 and 6
    assert result.polarity == pytest.approx(4 / 5)
    assert result.polarity_n == 5


def test_agreement_matches_rows_by_id_not_by_order() -> None:
    second = list(reversed(FIRST[::2]))
    result = agreement(FIRST, second)
    assert result.n == 4
    assert result.mean_kappa == 1.0


def test_agreement_without_shared_ids_reports_nothing() -> None:
    result = agreement(FIRST, [_row(99, ("price", "negative"))])
    assert result.n == 0
    assert math.isnan(result.mean_kappa)
    assert "0 rows" in format_agreement("en", result)


def test_check_rows_finds_bad_topics_polarities_and_evidence() -> None:
    unlabeled = [{"id": "d:1", "text": "the courier came an hour late"}]
    row = {
        "id": "d:1",
        "dataset": "d",
        "domain": "review",
        "split": "train",
        "text": "the courier came an hour late",
        "lang": "en",
        "labeled_by": "test",
        "topics": [
            {"topic": "delivery", "polarity": "negative", "evidence": "came an hour late"},
            {"topic": "shipping", "polarity": "negative", "evidence": "courier"},
            {"topic": "wait_time", "polarity": "bad", "evidence": "came an hour late"},
            {"topic": "price", "polarity": "negative", "evidence": "an hour  late"},
        ],
    }
    assert check_rows([dict(row, topics=row["topics"][:1])], unlabeled) == []
    problems = " | ".join(check_rows([row], unlabeled))
    assert "unknown topic 'shipping'" in problems
    assert "polarity 'bad'" in problems
    assert "'an hour  late' is not in the text" in problems
    assert check_rows([dict(row, id="d:2", topics=[])], unlabeled) == [
        "row 1 (d:2): id not in the unlabeled file"
    ]


def test_main_prints_each_language_with_both_passes(tmp_path, capsys) -> None:
    import json

    from training.topic_labels.agreement import main

    for name, rows in ((FIRST_PASS, FIRST), (SECOND_PASS, FIRST[:4])):
        lines = "".join(json.dumps(r) + "\n" for r in rows)
        (tmp_path / name.format(lang="ar")).write_text(lines, encoding="utf-8")
    (tmp_path / FIRST_PASS.format(lang="en")).write_text("", encoding="utf-8")
    assert main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "== ar: 4 rows in both passes" in out
    assert "kappa price" in out and "mean kappa" in out
    assert "== en" not in out


LABELED = sorted(LABELS_DIR.glob(FIRST_PASS.format(lang="*"))) + sorted(
    LABELS_DIR.glob(SECOND_PASS.format(lang="*"))
)


@pytest.mark.parametrize("path", LABELED, ids=lambda p: p.name)
def test_labeled_file_is_valid_and_never_a_held_out_text(path) -> None:
    rows = read_jsonl(path)
    lang = rows[0]["lang"]
    unlabeled = read_jsonl(LABELS_DIR / UNLABELED.format(lang=lang))
    assert check_rows(rows, unlabeled, topic_set_keys()) == []
    order = {row["id"]: i for i, row in enumerate(unlabeled)}
    indexes = [order[row["id"]] for row in rows]
    assert indexes == sorted(indexes), "rows keep the order of the unlabeled file"
    assert len(set(indexes)) == len(indexes)
    if path.name.startswith("second_pass"):
        assert {i % SECOND_PASS_EVERY for i in indexes} == {0}
