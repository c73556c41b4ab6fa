"""Scoring a sentiment model on labeled texts: macro-F1, accuracy, confusion matrix and calibration
error, overall, per language and per dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from cxnlp.labels import SENTIMENTS
from cxnlp.models.calibration import expected_calibration_error

POLAR = ("negative", "positive")


def macro_f1_from_confusion(counts: np.ndarray | list[list[float]]) -> float:
    """Macro-F1 from a confusion matrix (rows gold, columns predicted), over the labels present in
    the gold or the predictions, as scikit-learn's `f1_score(average="macro")` counts them.

    >>> round(macro_f1_from_confusion([[8, 2, 0], [1, 3, 1], [0, 0, 0]]), 4)  # label 2: F1 0
    0.4807
    """
    counts = np.asarray(counts, dtype=np.float64)
    scores = [
        2 * counts[i, i] / (counts[i].sum() + counts[:, i].sum())
        for i in range(len(counts))
        if counts[i].sum() or counts[:, i].sum()
    ]
    return float(np.mean(scores))


def score(probabilities: np.ndarray, gold: list[str] | np.ndarray) -> dict[str, Any]:
    """Scores for one group of texts whose gold labels are among the three sentiments.

    A group whose gold has no neutral (a positive/negative dataset) is also scored as the source
    defines it: the larger of the positive and negative probabilities decides (`binary_*`).
    """
    gold = np.asarray(gold)
    y = np.array([SENTIMENTS.index(g) for g in gold])
    predicted = probabilities.argmax(axis=1)
    result: dict[str, Any] = {
        "n": int(len(y)),
        "macro_f1": float(
            f1_score(y, predicted, labels=[0, 1, 2], average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y, predicted)),
        "ece": expected_calibration_error(probabilities, y),
        "confusion": {
            "labels": list(SENTIMENTS),
            "matrix": confusion_matrix(y, predicted, labels=[0, 1, 2]).tolist(),
        },
        "gold_shares": {s: float((y == i).mean()) for i, s in enumerate(SENTIMENTS)},
    }
    if "neutral" not in set(gold):
        neg, pos = SENTIMENTS.index("negative"), SENTIMENTS.index("positive")
        binary_pred = np.where(probabilities[:, pos] >= probabilities[:, neg], pos, neg)
        result["binary_macro_f1"] = float(
            f1_score(y, binary_pred, labels=[neg, pos], average="macro", zero_division=0)
        )
        result["binary_accuracy"] = float(accuracy_score(y, binary_pred))
    return result


def evaluate_frame(
    probabilities: np.ndarray,
    frame: pd.DataFrame,
    group_columns: tuple[str, ...] = ("lang", "dataset"),
) -> dict[str, Any]:
    """Scores overall and per value of each grouping column. `frame` has `label` and the grouping
    columns, one row per row of `probabilities`; rows labeled anything but the three sentiments
    (for example `mixed`) are left out and counted."""
    frame = frame.reset_index(drop=True)
    keep = frame["label"].isin(SENTIMENTS).to_numpy()
    frame, probabilities = frame[keep].reset_index(drop=True), probabilities[keep]
    report: dict[str, Any] = {
        "left_out_non_sentiment_rows": int((~keep).sum()),
        "overall": score(probabilities, frame["label"].to_numpy()),
    }
    for column in group_columns:
        if column not in frame:
            continue
        labels = frame["label"].to_numpy()
        report[f"by_{column}"] = {
            str(value): score(probabilities[rows], labels[rows])
            for value, rows in frame.groupby(column).indices.items()
        }
    if "lang" in frame and "dataset" in frame:
        as_sourced = polar_decisions(probabilities, frame)
        labels = frame["label"].to_numpy()
        report["by_lang_as_sourced"] = {
            str(lang): score(as_sourced[rows], labels[rows])
            for lang, rows in frame.groupby("lang").indices.items()
        }
    return report


def polar_decisions(probabilities: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities with neutral zeroed (and rows renormalised) on the rows of datasets whose
    gold has no neutral: each such row is decided between positive and negative, as its source
    defines the task. Pooled per language this gives the `by_lang_as_sourced` scores."""
    polar_only = frame.groupby("dataset")["label"].transform(lambda g: "neutral" not in set(g))
    adjusted = probabilities.copy()
    rows = polar_only.to_numpy(bool)
    adjusted[rows, SENTIMENTS.index("neutral")] = 0.0
    adjusted[rows] /= adjusted[rows].sum(axis=1, keepdims=True)
    return adjusted


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a report from `evaluate_frame`."""
    lines = [f"{'group':<48} {'n':>6} {'macroF1':>8} {'acc':>6} {'ECE':>6} {'binF1':>6}"]

    def row(name: str, s: dict[str, Any]) -> None:
        binary = f"{s['binary_macro_f1']:.3f}" if "binary_macro_f1" in s else "-"
        lines.append(
            f"{name:<48} {s['n']:>6} {s['macro_f1']:>8.3f} {s['accuracy']:>6.3f} "
            f"{s['ece']:>6.3f} {binary:>6}"
        )

    row("overall", report["overall"])
    for key, groups in report.items():
        if key.startswith("by_"):
            for name, s in groups.items():
                row(f"{key[3:]}={name}", s)
    return "\n".join(lines)
