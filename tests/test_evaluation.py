"""Tests for cxnlp.models.evaluation: scores against scikit-learn, binary scoring, per-group reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from cxnlp.labels import SENTIMENTS
from cxnlp.models.calibration import expected_calibration_error
from cxnlp.models.evaluation import evaluate_frame, format_report, score

NEG, NEU, POS = (SENTIMENTS.index(s) for s in ("negative", "neutral", "positive"))


def _random_case(n: int, seed: int, labels=SENTIMENTS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), size=n)
    gold = rng.choice(list(labels), size=n)
    return probs, gold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_matches_sklearn(seed: int) -> None:
    probs, gold = _random_case(60, seed)
    y = np.array([SENTIMENTS.index(g) for g in gold])
    pred = probs.argmax(axis=1)
    result = score(probs, gold)
    assert result["n"] == 60
    assert result["macro_f1"] == pytest.approx(
        f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    )
    assert result["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert result["confusion"]["labels"] == list(SENTIMENTS)
    assert result["confusion"]["matrix"] == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    assert result["ece"] == pytest.approx(expected_calibration_error(probs, y))
    assert sum(result["gold_shares"].values()) == pytest.approx(1.0)
    assert "binary_macro_f1" not in result  # neutral gold present: no binary view


def test_score_hand_example_columns_follow_sentiments_order() -> None:
    probs = np.zeros((4, 3))
    probs[0, POS] = probs[1, NEG] = probs[2, NEU] = probs[3, POS] = 1.0
    gold = ["positive", "negative", "neutral", "negative"]
    result = score(probs, gold)
    assert result["accuracy"] == pytest.approx(0.75)
    matrix = np.array(result["confusion"]["matrix"])
    assert matrix[NEG, POS] == 1 and matrix[NEG, NEG] == 1
    assert matrix.trace() == 3
    assert result["gold_shares"] == {"negative": 0.5, "neutral": 0.25, "positive": 0.25}


def test_score_binary_view_for_polar_gold() -> None:
    # Row 0 is argmax-neutral but leans positive: wrong in 3 classes, right in the binary view.
    probs = np.empty((4, 3))
    probs[0, [NEG, NEU, POS]] = [0.1, 0.5, 0.4]
    probs[1, [NEG, NEU, POS]] = [0.7, 0.2, 0.1]
    probs[2, [NEG, NEU, POS]] = [0.3, 0.4, 0.3]  # a tie between positive and negative: positive
    probs[3, [NEG, NEU, POS]] = [0.2, 0.2, 0.6]
    gold = np.array(["positive", "negative", "negative", "positive"])
    result = score(probs, gold)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["binary_accuracy"] == pytest.approx(0.75)
    y = np.array([SENTIMENTS.index(g) for g in gold])
    assert result["binary_macro_f1"] == pytest.approx(
        f1_score(y, [POS, NEG, POS, POS], labels=[NEG, POS], average="macro")
    )


@pytest.mark.parametrize("only", ["positive", "negative"])
def test_score_binary_view_for_one_sided_gold(only: str) -> None:
    probs, _ = _random_case(40, seed=5)
    gold = np.array([only] * 40)
    result = score(probs, gold)
    leans_positive = probs[:, POS] >= probs[:, NEG]
    expected = leans_positive.mean() if only == "positive" else (~leans_positive).mean()
    assert result["binary_accuracy"] == pytest.approx(expected)
    assert result["gold_shares"][only] == 1.0
    y = np.full(40, SENTIMENTS.index(only))
    binary_pred = np.where(leans_positive, POS, NEG)
    assert result["binary_macro_f1"] == pytest.approx(
        f1_score(y, binary_pred, labels=[NEG, POS], average="macro", zero_division=0)
    )


def _frame_case() -> tuple[np.ndarray, pd.DataFrame]:
    probs, gold = _random_case(30, seed=11, labels=(*SENTIMENTS, "mixed"))
    frame = pd.DataFrame(
        {
            "label": gold,
            "lang": np.resize(["fa", "ar", "en"], 30),
            "dataset": np.resize(["a", "b"], 30),
        },
        index=np.arange(100, 130),  # not a 0..n-1 index: rows are matched by position
    )
    return probs, frame


def test_evaluate_frame_leaves_out_mixed_and_counts_it() -> None:
    probs, frame = _frame_case()
    keep = frame["label"].isin(SENTIMENTS).to_numpy()
    assert 0 < (~keep).sum() < len(frame)
    report = evaluate_frame(probs, frame)
    assert report["left_out_non_sentiment_rows"] == int((~keep).sum())
    expected = score(probs[keep], frame["label"].to_numpy()[keep])
    assert report["overall"] == expected


def test_evaluate_frame_groups_by_language_and_dataset() -> None:
    probs, frame = _frame_case()
    report = evaluate_frame(probs, frame)
    assert set(report["by_lang"]) == {"fa", "ar", "en"}
    assert set(report["by_dataset"]) == {"a", "b"}
    for lang, result in report["by_lang"].items():
        rows = ((frame["lang"] == lang) & frame["label"].isin(SENTIMENTS)).to_numpy()
        assert result == score(probs[rows], frame["label"].to_numpy()[rows])
    assert sum(r["n"] for r in report["by_dataset"].values()) == report["overall"]["n"]


def test_evaluate_frame_skips_absent_group_columns() -> None:
    probs, frame = _frame_case()
    report = evaluate_frame(probs, frame.drop(columns="dataset"))
    assert "by_lang" in report and "by_dataset" not in report


def test_format_report_has_a_row_per_group() -> None:
    probs, frame = _frame_case()
    text = format_report(evaluate_frame(probs, frame))
    lines = text.splitlines()
    assert lines[1].startswith("overall")
    assert {line.split()[0] for line in lines[2:]} == {
        "lang=fa",
        "lang=ar",
        "lang=en",
        "dataset=a",
        "dataset=b",
        "lang_as_sourced=fa",
        "lang_as_sourced=ar",
        "lang_as_sourced=en",
    }


def test_as_sourced_scores_decide_polar_only_datasets_between_positive_and_negative() -> None:
    neg, neu, pos = (SENTIMENTS.index(s) for s in ("negative", "neutral", "positive"))
    probabilities = np.zeros((4, 3))
    probabilities[0, [neg, neu, pos]] = [0.2, 0.5, 0.3]  # polar-only set, gold positive
    probabilities[1, [neg, neu, pos]] = [0.3, 0.5, 0.2]  # polar-only set, gold negative
    probabilities[2, [neg, neu, pos]] = [0.2, 0.5, 0.3]  # 3-class set, gold positive
    probabilities[3, [neg, neu, pos]] = [0.1, 0.8, 0.1]  # 3-class set, gold neutral
    frame = pd.DataFrame(
        {
            "label": ["positive", "negative", "positive", "neutral"],
            "lang": ["fa"] * 4,
            "dataset": ["insta", "insta", "reviews", "reviews"],
        }
    )
    report = evaluate_frame(probabilities, frame)
    assert report["by_lang"]["fa"]["accuracy"] == pytest.approx(0.25)
    # The polar-only rows are now decided positive / negative; the 3-class rows are unchanged.
    assert report["by_lang_as_sourced"]["fa"]["accuracy"] == pytest.approx(0.75)


def test_macro_f1_from_confusion_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from cxnlp.models.evaluation import macro_f1_from_confusion

    rng = np.random.default_rng(4)
    for _ in range(20):
        gold = rng.integers(0, 3, size=60)
        predicted = np.where(rng.random(60) < 0.6, gold, rng.integers(0, 3, size=60))
        gold[gold == 2] = rng.choice([0, 1, 2], p=[0.5, 0.5, 0.0])  # sometimes a label is absent
        counts = np.zeros((3, 3))
        np.add.at(counts, (gold, predicted), 1)
        assert macro_f1_from_confusion(counts) == pytest.approx(
            f1_score(gold, predicted, average="macro")
        )


def test_dev_scores_read_a_model_directorys_dev_confusion(tmp_path):
    import json

    from cxnlp.modeldir import DEV_CONFUSION_FILE
    from training.train import dev_scores

    assert dev_scores(tmp_path) == {}
    (tmp_path / DEV_CONFUSION_FILE).write_text(
        json.dumps(
            {"*": [[8, 2, 0], [1, 3, 1], [0, 0, 5]], "fa": [[4, 0, 0], [0, 2, 0], [0, 0, 1]]}
        )
    )
    scores = dev_scores(tmp_path)
    assert list(scores) == ["*", "fa"]
    assert scores["fa"] == 1.0
    assert scores["*"] == pytest.approx((16 / 19 + 6 / 10 + 10 / 11) / 3)
