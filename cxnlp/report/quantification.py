"""Prevalence-corrected shares: the confusion matrices ACC and PACC undo, from the model's dev set
or from a hand-labeled sample of the user's own channel.

A classifier's raw shares (classify-and-count) are biased whenever the class mix differs from the
data it was tuned on. ACC adjusts them through a confusion matrix; PACC adjusts the mean
probabilities through the mean probabilities per true label. The model's dev confusion describes
its training mix, a hand-labeled sample (`labeled_confusions`) the user's channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import REPORT_COLUMNS, SENTIMENTS
from cxnlp.models.evaluation import macro_f1_from_confusion
from cxnlp.report.rows import MISSING_GROUP, prepare
from cxnlp.report.stats import normalise_confusion

METHODS = {
    "raw": "classify-and-count: the share of classified rows whose predicted sentiment is the "
    "label, with a Wilson interval; biased when the class mix differs from the model's "
    "training data",
    "pcc": "probabilistic classify-and-count: the mean of the p_negative / p_neutral / p_positive "
    "columns (calibrated probabilities)",
    "acc": "adjusted classify-and-count: the true shares that best explain the raw shares through "
    "the model's dev confusion matrix (per language where the model has one)",
}
LABELED_METHODS = {
    "acc": "adjusted classify-and-count: the true shares that best explain the raw shares through "
    "the confusion matrix of the hand-labeled sample (per language where the sample has at least "
    "{min_rows} labeled rows of it); a label absent from the sample's gold gets share 0",
    "pacc": "probabilistic adjusted classify-and-count: the true shares that best explain the PCC "
    "shares through the mean probabilities of the hand-labeled sample's texts of each true label",
}
MIN_LABELED_ROWS = 30


def labeled_confusions(
    frame: pd.DataFrame, gold_col: str, min_rows: int = MIN_LABELED_ROWS
) -> dict[str, Any]:
    """Confusion matrices of the model on a hand-labeled sample: rows of `cxnlp classify` output
    whose `gold_col` holds one of the three sentiments (any case); other rows are not part of it.

    Returns {"hard": {key: counts}, "soft": {key: summed probabilities}, "quality": {key: {n,
    accuracy, macro_f1, gold_shares}}, "n": labeled rows, "unknown_labels": {value: count}}, with
    keys "*" and each language with at least `min_rows` labeled rows; rows = true label and
    columns = predicted, in `SENTIMENTS` order. Raises ValueError without `min_rows` usable rows.
    """
    if gold_col not in frame.columns:
        raise ValueError(f"no gold label column {gold_col!r}; the table has {list(frame.columns)}")
    missing = [c for c in REPORT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the labeled sample lacks {missing}: it must be `cxnlp classify` output (classify the "
            "hand-labeled rows with the same model first)"
        )
    data = prepare(frame)
    gold = frame[gold_col].reset_index(drop=True).astype("string").str.strip().str.lower()
    known = gold.isin(SENTIMENTS).fillna(False)
    unknown = gold[~known & gold.notna() & (gold != "")].value_counts().head(10)
    rows = data[known & data["_ok"]].assign(_gold=gold[known & data["_ok"]])
    if len(rows) < min_rows:
        raise ValueError(
            f"{len(rows)} classified rows have a sentiment in {gold_col!r}; a labeled sample "
            f"needs at least {min_rows} (values must be one of {list(SENTIMENTS)})"
        )
    parts = {"*": rows}
    if "lang" in rows.columns:
        parts.update(
            (str(lang), part)
            for lang, part in rows.groupby("lang", sort=True)
            if len(part) >= min_rows and lang != MISSING_GROUP
        )
    index = {label: i for i, label in enumerate(SENTIMENTS)}
    hard, soft, quality = {}, {}, {}
    for key, part in parts.items():
        truth = part["_gold"].map(index).to_numpy()
        predicted = part["_sentiment"].map(index).to_numpy()
        probabilities = part[[f"_p_{label}" for label in SENTIMENTS]].to_numpy()
        counts, sums = np.zeros((3, 3)), np.zeros((3, 3))
        np.add.at(counts, (truth, predicted), 1)
        np.add.at(sums, truth, probabilities)
        hard[key], soft[key] = counts.tolist(), sums.tolist()
        quality[key] = {
            "n": len(part),
            "accuracy": float((truth == predicted).mean()),
            "macro_f1": macro_f1_from_confusion(counts),
            "gold_shares": dict(zip(SENTIMENTS, (counts.sum(1) / len(part)).tolist(), strict=True)),
        }
    return {
        "hard": hard,
        "soft": soft,
        "quality": quality,
        "n": len(rows),
        "unknown_labels": {str(k): int(v) for k, v in unknown.items()},
    }


def sample_notes(sample: dict[str, Any], gold_col: str) -> list[str]:
    notes = []
    if sample["unknown_labels"]:
        notes.append(
            f"labeled sample: values of {gold_col!r} that are not a sentiment were left out: "
            f"{sample['unknown_labels']}"
        )
    for key, quality in sample["quality"].items():
        absent = [label for label, share in quality["gold_shares"].items() if share == 0]
        if absent:
            where = "the sample" if key == "*" else f"the sample's {key} rows"
            notes.append(
                f"labeled sample: {where} have no {' or '.join(absent)} gold, so ACC and PACC "
                "put their share at 0 there"
            )
    return notes


def confusion_rates(
    confusion: dict[str, list[list[float]]] | None,
    notes: list[str],
    allow_empty_rows: bool = False,
) -> dict[str, np.ndarray]:
    """Row-normalised matrices by key; unusable ones are skipped with a note."""
    rates = {}
    for key, matrix in (confusion or {}).items():
        try:
            rates[str(key)] = normalise_confusion(matrix, allow_empty_rows=allow_empty_rows)
        except ValueError as exc:
            notes.append(f"dev confusion matrix {key!r} not used for ACC: {exc}")
            continue
        if rates[str(key)].shape != (3, 3):
            del rates[str(key)]
            notes.append(f"dev confusion matrix {key!r} not used for ACC: it is not 3x3")
    if confusion is not None and not rates:
        notes.append("ACC omitted: none of the dev confusion matrices is usable")
    elif confusion is not None and "*" not in rates:
        notes.append(
            "no '*' dev confusion matrix: ACC is given only for segments whose languages all "
            f"have their own ({sorted(rates)})"
        )
    return rates
