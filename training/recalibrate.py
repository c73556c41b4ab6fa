"""What is chosen on dev rows after the weights are trained: each language's blend weights (for a
blend), its prior correction (logit offsets that undo a drift towards one class, e.g. neutral)
and its temperature. `train()` runs it on every new model; `cxnlp calibrate` runs it on a saved
one (the shipped v5 got its per-language weights and offsets that way, see its card).

Each choice is checked by two-fold cross-validation on the dev rows: a language keeps its own
blend weights or offsets only when, chosen on one half, they beat the global ones on the other
half (summed over both halves); the numbers are returned for the card.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax

from cxnlp.labels import SENTIMENTS
from cxnlp.models.base import SentimentModel
from cxnlp.models.calibration import fit_temperature
from cxnlp.models.evaluation import macro_f1_from_confusion

logger = logging.getLogger(__name__)

# The fast tier's weight in a blend, tried per language (0: the transformer alone).
FAST_WEIGHTS = tuple(np.round(np.arange(0.0, 0.81, 0.05), 2))
# Logit offsets tried for neutral and positive (negative is the reference, offset 0).
BIAS_GRID = tuple(np.round(np.arange(-1.5, 1.51, 0.1), 2))
MIN_ROWS = 200  # a language with fewer dev rows keeps the global choices


def macro_f1(gold: np.ndarray, predicted: np.ndarray, n_labels: int = len(SENTIMENTS)) -> float:
    """Macro-F1 of label indices (the one definition, `macro_f1_from_confusion`)."""
    counts = np.bincount(gold * n_labels + predicted, minlength=n_labels * n_labels)
    return macro_f1_from_confusion(counts.reshape(n_labels, n_labels))


def confusion_counts(gold: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """The confusion matrix of label indices (rows gold, columns predicted)."""
    n = len(SENTIMENTS)
    return np.bincount(gold * n + predicted, minlength=n * n).reshape(n, n).tolist()


def _halves(n: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[: n // 2], order[n // 2 :]]


def _best(candidates: Sequence[Any], score) -> Any:
    """The candidate with the highest score; ties go to the earliest (the most conservative)."""
    scores = [score(c) for c in candidates]
    return candidates[int(np.argmax(scores))]


def _cross_validated(candidates, score_on, rows: np.ndarray, baseline, seed: int) -> dict:
    """Choose on one half and score on the other, both ways: the mean gain over `baseline`;
    then the choice made on all the rows."""
    first, second = _halves(len(rows), seed)
    gain = 0.0
    for fit_rows, check_rows in ((rows[first], rows[second]), (rows[second], rows[first])):
        chosen = _best(candidates, lambda c, r=fit_rows: score_on(c, r))
        gain += score_on(chosen, check_rows) - score_on(baseline, check_rows)
    chosen = _best(candidates, lambda c: score_on(c, rows))
    return {
        "chosen": chosen,
        "cv_gain": gain / 2,
        "dev": score_on(chosen, rows),
        "baseline": score_on(baseline, rows),
    }


def choose_fast_weights(
    parts: Sequence[np.ndarray], gold: np.ndarray, langs: np.ndarray, global_weight: float, seed=0
) -> tuple[dict[str, float], dict[str, dict]]:
    """Per language, the fast member's weight (parts: [transformer, fast] log-probabilities)."""
    chosen, report = {}, {}
    for lang in sorted(set(langs)):
        rows = np.flatnonzero(langs == lang)
        if len(rows) < MIN_ROWS:
            continue

        def score_on(weight: float, r: np.ndarray) -> float:
            mixed = (1 - weight) * parts[0][r] + weight * parts[1][r]
            return macro_f1(gold[r], mixed.argmax(1))

        result = _cross_validated(FAST_WEIGHTS, score_on, rows, global_weight, seed)
        report[lang] = result
        if result["cv_gain"] > 0 and result["chosen"] != global_weight:
            chosen[lang] = float(result["chosen"])
    return chosen, report


def choose_biases(
    logits: np.ndarray, gold: np.ndarray, langs: np.ndarray, seed: int = 0
) -> tuple[dict[str, list[float]], dict[str, dict]]:
    """Per language, logit offsets [0, neutral, positive] that maximise dev macro-F1."""
    grid = [(0.0, n, p) for n in BIAS_GRID for p in BIAS_GRID]
    # Most conservative first: ties go to the smallest offsets.
    grid.sort(key=lambda b: abs(b[1]) + abs(b[2]))
    chosen, report = {}, {}
    for lang in sorted(set(langs)):
        rows = np.flatnonzero(langs == lang)
        if len(rows) < MIN_ROWS:
            continue

        def score_on(bias: tuple[float, ...], r: np.ndarray) -> float:
            return macro_f1(gold[r], (logits[r] + np.asarray(bias)).argmax(1))

        result = _cross_validated(grid, score_on, rows, (0.0, 0.0, 0.0), seed)
        report[lang] = {**result, "chosen": list(result["chosen"])}
        if result["cv_gain"] > 0 and any(result["chosen"]):
            chosen[lang] = [float(x) for x in result["chosen"]]
    return chosen, report


def member_log_probs(model: SentimentModel, texts: list[str]) -> list[np.ndarray]:
    """Each blend member's log-probabilities of normalised texts (one entry for a non-blend)."""
    members = getattr(model, "members", None) or [model]
    return [log_softmax(member._logits(texts), axis=1) for member in members]


def recalibrate(
    model: SentimentModel,
    dev: pd.DataFrame,
    *,
    lang_weights: bool = True,
    biases: bool = True,
    parts: list[np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Choose per-language blend weights and offsets on `dev` (normalised `text`, `label`,
    `lang`), then fit the temperatures on the result; set them on `model` and return what was
    chosen and measured (and the dev confusion matrices `cxnlp report` corrects shares with)."""
    if dev.empty:
        logger.warning("no dev rows: probabilities stay uncalibrated (temperature 1)")
        return {"temperatures": {"*": 1.0}, "confusion": {}}
    gold = np.array([SENTIMENTS.index(label) for label in dev["label"]])
    langs = dev["lang"].astype(str).to_numpy()
    if parts is None:
        parts = member_log_probs(model, dev["text"].tolist())
    report: dict[str, Any] = {}
    blend = len(parts) == 2 and hasattr(model, "lang_weights")
    if blend:
        chosen: dict[str, float] = {}
        global_fast = float(model.weights[1])
        if lang_weights:
            chosen, report["fast_weight"] = choose_fast_weights(
                parts, gold, langs, global_fast, seed
            )
        model.lang_weights = {lang: [1 - w, w] for lang, w in chosen.items()}
        weights = model.weights_for(list(langs), len(langs))
        logits = weights[:, :1] * parts[0] + weights[:, 1:] * parts[1]
    else:
        logits = parts[0]
    model.biases_ = {}
    if biases:
        model.biases_, report["biases"] = choose_biases(logits, gold, langs, seed)
    shifted = logits + model.biases_for(list(langs))
    predicted = shifted.argmax(1)
    temperatures = {"*": fit_temperature(shifted, gold)}
    confusion = {"*": confusion_counts(gold, predicted)}
    for lang in sorted(set(langs)):
        rows = np.flatnonzero(langs == lang)
        confusion[lang] = confusion_counts(gold[rows], predicted[rows])
        if len(rows) >= MIN_ROWS:
            temperatures[lang] = fit_temperature(shifted[rows], gold[rows])
        logger.info("dev %s: macro-F1 %.4f", lang, macro_f1(gold[rows], predicted[rows]))
    model.temperatures_ = temperatures
    report.update({"temperatures": temperatures, "confusion": confusion})
    logger.info(
        "per-language fast weights %s, offsets %s",
        getattr(model, "lang_weights", {}),
        model.biases_,
    )
    return report
