"""`evaluate()`: score a model on labeled data, per language and per dataset."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.io.tables import read_table
from cxnlp.models.base import SentimentModel
from cxnlp.models.evaluation import evaluate_frame
from training.data import load_corpus

logger = logging.getLogger(__name__)

HELD_OUT_SPLITS = ("test", "eval")


def load_eval_frame(data: str | Path, splits: tuple[str, ...] = HELD_OUT_SPLITS) -> pd.DataFrame:
    """Labeled rows to score: from a corpus directory (`<lang>/<dataset>.jsonl`, its held-out
    splits) or from one labeled file (all rows; `lang` detected where absent)."""
    data = Path(data)
    if data.is_dir():
        frame = load_corpus(data)
        return frame[frame["split"].isin(splits)].reset_index(drop=True)
    frame = read_table(data)
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"{data}: missing column(s) {missing}; expected at least text,label")
    frame = frame[frame["text"].astype(str).str.strip() != ""].copy()
    frame["label"] = frame["label"].astype(str).str.strip().str.lower()
    if "lang" not in frame:
        from cxnlp.text.langid import detect_language

        frame["lang"] = [detect_language(str(t)) for t in frame["text"]]
    if "dataset" not in frame:
        frame["dataset"] = data.stem
    return frame.reset_index(drop=True)


def evaluate(
    model: SentimentModel, data: str | Path, json_path: str | Path | None = None
) -> dict[str, Any]:
    """Score `model` on `data` (see `load_eval_frame`); optionally save the report as JSON.

    The overall and per-language scores pool the `test` rows only; eval-only datasets (kept out of
    training for a published comparison, e.g. SnappFood's official split) are scored under
    `by_dataset` beside the test sets and listed in `eval_only_datasets`.
    """
    frame = load_eval_frame(data)
    logger.info("scoring %d rows from %s", len(frame), data)
    probabilities = model.predict_proba(frame["text"].astype(str).tolist(), frame["lang"].tolist())
    return held_out_report(probabilities, frame, data, json_path)


def held_out_report(
    probabilities: np.ndarray,
    frame: pd.DataFrame,
    data: str | Path,
    json_path: str | Path | None = None,
) -> dict[str, Any]:
    """The report of `evaluate` from probabilities of the rows of `load_eval_frame(data)`."""
    is_eval_only = (frame["split"] == "eval").to_numpy() if "split" in frame else None
    if is_eval_only is None or not is_eval_only.any():
        report = evaluate_frame(probabilities, frame)
    else:
        test = ~is_eval_only
        report = evaluate_frame(probabilities[test], frame[test])
        extra = evaluate_frame(probabilities[is_eval_only], frame[is_eval_only], ("dataset",))
        report.setdefault("by_dataset", {}).update(extra["by_dataset"])
        report["eval_only_datasets"] = sorted(extra["by_dataset"])
    report["data"] = str(data)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
