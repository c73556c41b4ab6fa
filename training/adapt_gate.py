"""The gate of `cxnlp adapt`: the adapted model against its base, on the held-out part of the
user's file and on a sample of every language's standard test sets.

An adapted model is ready when it is better than its base on the user's held-out rows and loses no
more than `margin` (1 point of macro-F1 by default) on any language's standard tests; otherwise
it is refused, and `training.adapt.adapt` saves it beside the output, never as it. The verdict is
kept as the model directory's `GateRecord` (`cxnlp.modeldir`), which `cxnlp models` shows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import GateRecord
from cxnlp.models.base import SentimentModel
from cxnlp.models.evaluation import evaluate_frame
from training.adapt_config import DEFAULT_MARGIN


def sample_test_sets(test_data: str | Path, per_dataset: int | None, seed: int) -> pd.DataFrame:
    """The standard test rows, at most `per_dataset` of each dataset (a seeded random sample)."""
    from training.evaluate import load_eval_frame

    frame = load_eval_frame(test_data)
    frame = frame[frame["label"].isin(SENTIMENTS)]
    if per_dataset:
        frame = (
            frame.sample(frac=1.0, random_state=seed)
            .groupby("dataset", sort=True)
            .head(per_dataset)
            .sort_index()
        )
    return frame.reset_index(drop=True)


def predict_rows(
    model: SentimentModel,
    frame: pd.DataFrame,
    desc: str,
    progress: bool,
    cache: dict[str, Any] | None = None,
    chunk: int = 256,
) -> tuple[np.ndarray, list[list[str]]]:
    """Probabilities and topic names of each row of `frame` (`text`, `lang`), in chunks, with a
    progress bar. With `cache` (a dict kept between calls that pass the same model), rows already
    predicted are not predicted again: the base's scores on the standard tests, in a benchmark."""
    texts, langs = frame["text"].astype(str).tolist(), frame["lang"].tolist()
    key = None
    if cache is not None:
        digest = hashlib.sha256()
        for text, lang in zip(texts, langs, strict=True):
            digest.update(f"{lang}\t{text}\n".encode())
        key = f"{id(model)}:{digest.hexdigest()}"
        if key in cache:
            return cache[key]
    probabilities, topics = [], []
    for start in tqdm(
        range(0, len(texts), chunk),
        desc=desc,
        unit="chunk",
        disable=not progress or len(texts) <= chunk,
    ):
        predictions = model.predict(texts[start : start + chunk], langs[start : start + chunk])
        probabilities.append(
            [[p.probabilities[label] for label in SENTIMENTS] for p in predictions]
        )
        topics.extend([sorted(t["topic"] for t in p.topics) for p in predictions])
    result = (
        np.concatenate([np.asarray(p) for p in probabilities])
        if probabilities
        else np.zeros((0, len(SENTIMENTS))),
        topics,
    )
    if cache is not None:
        cache[key] = result
    return result


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "macro_f1", "accuracy", "ece", "binary_macro_f1")
    out = {"*": {k: v for k, v in report["overall"].items() if k in keep}}
    for lang, scores in report.get("by_lang", {}).items():
        out[lang] = {k: v for k, v in scores.items() if k in keep}
    return out


def run_gate(
    base: SentimentModel,
    adapted: SentimentModel,
    holdout: pd.DataFrame,
    *,
    test_frame: pd.DataFrame | None = None,
    progress: bool = True,
    base_cache: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Base against adapted on the held-out rows of the user's file (and on `test_frame`, the
    standard test rows). `base_cache`: see `predict_rows`."""
    gate: dict[str, Any] = {}
    if len(holdout):
        base_p, base_topics = predict_rows(base, holdout, "gate: base on held-out", progress)
        new_p, new_topics = predict_rows(adapted, holdout, "gate: adapted on held-out", progress)
        frame = holdout.assign(dataset="held-out")
        gate["holdout"] = {
            "base": _summary(evaluate_frame(base_p, frame, ("lang",))),
            "adapted": _summary(evaluate_frame(new_p, frame, ("lang",))),
            "topic_agreement": float(
                np.mean([a == b for a, b in zip(base_topics, new_topics, strict=True)])
            ),
            "adapted_confusion": _confusions(new_p, holdout),
        }
    if test_frame is not None and len(test_frame):
        base_p, _ = predict_rows(
            base, test_frame, "gate: base on test sets", progress, cache=base_cache
        )
        new_p, _ = predict_rows(adapted, test_frame, "gate: adapted on test sets", progress)
        gate["standard"] = {
            "rows": int(len(test_frame)),
            "base": _summary(evaluate_frame(base_p, test_frame, ("lang",))),
            "adapted": _summary(evaluate_frame(new_p, test_frame, ("lang",))),
        }
    return gate


def _confusions(probabilities: np.ndarray, frame: pd.DataFrame) -> dict[str, list[list[int]]]:
    from sklearn.metrics import confusion_matrix

    y = np.array([SENTIMENTS.index(label) for label in frame["label"]])
    predicted = probabilities.argmax(axis=1)
    labels = list(range(len(SENTIMENTS)))
    out = {"*": confusion_matrix(y, predicted, labels=labels).tolist()}
    for lang, rows in frame.groupby("lang").indices.items():
        out[str(lang)] = confusion_matrix(y[rows], predicted[rows], labels=labels).tolist()
    return out


def gate_rows(gate: dict[str, Any], margin: float = DEFAULT_MARGIN) -> list[dict[str, Any]]:
    """The gate's scores as `cxnlp.modeldir.GateRecord` rows: one per part and language."""
    rows = []
    for part in ("holdout", "standard"):
        if part not in gate:
            continue
        section = gate[part]
        for lang, base in section["base"].items():
            b, a = base["macro_f1"], section["adapted"][lang]["macro_f1"]
            # The held-out rows must gain (overall); a language may lose up to the margin.
            ok = a > b if (part, lang) == ("holdout", "*") else a >= b - margin
            rows.append(
                {
                    "part": part,
                    "lang": lang,
                    "n": base["n"],
                    "reference": b,
                    "candidate": a,
                    "delta": a - b,
                    "ok": ok,
                }
            )
    return rows


def lost_languages(gate: dict[str, Any], margin: float = DEFAULT_MARGIN) -> list[str]:
    """The languages whose standard tests the adapted model scores more than `margin` below
    its base (none when the standard tests were not run)."""
    return [
        row["lang"]
        for row in gate_rows(gate, margin)
        if row["part"] == "standard" and row["lang"] != "*" and not row["ok"]
    ]


def gate_passed(gate: dict[str, Any], margin: float = DEFAULT_MARGIN) -> bool:
    """Better than the base on the held-out rows (when there are any) and within `margin` of it
    on every language's standard tests (when they were run): what `gate_verdict` says in words.
    An adapted model that fails is refused: not saved as ready."""
    if "holdout" in gate:
        b = gate["holdout"]["base"]["*"]["macro_f1"]
        if not gate["holdout"]["adapted"]["*"]["macro_f1"] > b:
            return False
    return all(row["ok"] for row in gate_rows(gate, margin) if row["part"] == "standard")


def gate_verdict(gate: dict[str, Any], margin: float = DEFAULT_MARGIN) -> str:
    """ "ready: ..." or "refused: ...", then what the gate found."""
    notes = []
    if "holdout" in gate:
        b = gate["holdout"]["base"]["*"]["macro_f1"]
        a = gate["holdout"]["adapted"]["*"]["macro_f1"]
        notes.append(
            f"{'better' if a > b else 'not better'} than the base on your held-out rows "
            f"({a - b:+.4f} macro-F1)"
        )
    else:
        notes.append("no held-out rows: nothing of yours to compare on")
    if "standard" in gate:
        worse = lost_languages(gate, margin)
        notes.append(
            f"loses more than {margin:.2f} on the standard tests of {worse}"
            if worse
            else f"within {margin:.2f} of the base on every language's standard tests"
        )
    else:
        notes.append("standard tests not run: forgetting not checked")
    return ("ready: " if gate_passed(gate, margin) else "refused: ") + "; ".join(notes)


def gate_record(gate: dict[str, Any], margin: float = DEFAULT_MARGIN) -> GateRecord:
    """The adapt gate as the model directory's gate record."""
    details = {k: v for k, v in gate.items() if k not in ("holdout", "standard", "base")}
    if "holdout" in gate:
        details["topic_agreement"] = gate["holdout"]["topic_agreement"]
    if "standard" in gate:
        details["standard_rows"] = gate["standard"]["rows"]
    return GateRecord(
        "adapt",
        gate_passed(gate, margin),
        gate_verdict(gate, margin),
        margin,
        str(gate.get("base", "")),
        gate_rows(gate, margin),
        details,
    )


def format_gate(gate: dict[str, Any], margin: float = DEFAULT_MARGIN) -> str:
    """The gate as a table: macro-F1 of base and adapted per part and language."""
    lines = [f"{'':<34} {'base':>7} {'adapted':>8} {'delta':>7}"]
    for part, title in (("holdout", "held-out part of your file"), ("standard", "standard tests")):
        if part not in gate:
            continue
        section = gate[part]
        extra = f", {section['rows']} rows" if part == "standard" else ""
        lines.append(f"{title}{extra}:")
        for key in section["base"]:
            b, a = section["base"][key]["macro_f1"], section["adapted"][key]["macro_f1"]
            name = "all" if key == "*" else key
            n = section["base"][key]["n"]
            lines.append(f"  {name + f' ({n} rows)':<32} {b:>7.4f} {a:>8.4f} {a - b:>+7.4f}")
    if "holdout" in gate:
        lines.append(
            f"topic tags unchanged on {gate['holdout']['topic_agreement']:.0%} of held-out rows"
        )
    lines.append("verdict: " + gate_verdict(gate, margin))
    return "\n".join(lines)
