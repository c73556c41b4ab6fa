"""Per-language topic thresholds chosen on a dev mix of domains, for a trained topic head.

`recalibrate_topics(model, config)` scores the dev rows of the calibration sets (`calibration_sets`
in training/configs/topics.yaml: hand-labeled JSONL files with a `split` column, e.g. the dev half
of the multi-domain set) plus aspect-less social posts (`negative_datasets`, rows sampled from
their `dev` split; every topic counts as absent there) the way `predict` reads them (document and
clauses, cue rules; `cxnlp.models.pipeline`), and sets, per language and topic, the threshold with the best
F1 on them; a topic without `min_positives` dev positives in a language gets the lowest threshold
that adds no false positive (never below the head's own). The thresholds land in the head's
`thresholds_by_lang` (topics/config.json); the head's weights are not touched.

Run it with `cxnlp train-topics --model default --recalibrate` (or at the end of a full
`train-topics` run when the config names calibration sets).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import LANGS
from cxnlp.models.base import SentimentModel
from cxnlp.models.pipeline import AspectOptions, analyze
from cxnlp.text.clauses import cue_topics
from cxnlp.topics.taxonomy import TOPICS
from training.topic_data import split_rows

logger = logging.getLogger(__name__)

GRID = np.round(np.arange(0.05, 0.991, 0.01), 2)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _resolve(path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() or candidate.exists() else REPO_ROOT / candidate


def calibration_rows(
    sets: list[str],
    negative_datasets: dict[str, list[str]],
    data_dir: str | Path,
    negatives_per_dataset: int,
    seed: int,
) -> pd.DataFrame:
    """text, lang, topics (list of names) of the dev rows of `sets` and of sampled negatives."""
    frames = []
    for pattern in sets:
        path = _resolve(pattern)
        for file in sorted(path.parent.glob(path.name)):
            rows = pd.read_json(file, lines=True)
            if "split" in rows:
                rows = rows[rows["split"] == "dev"]
            frames.append(
                pd.DataFrame(
                    {
                        "text": rows["text"].astype(str),
                        "lang": rows["lang"],
                        "topics": [[t["topic"] for t in ts] for ts in rows["topics"]],
                        "source": file.name,
                    }
                )
            )
    for lang, name, rows in split_rows(data_dir, negative_datasets or {}, "dev", "negative"):
        rows = rows.sample(min(len(rows), negatives_per_dataset), random_state=seed)
        frames.append(
            pd.DataFrame(
                {
                    "text": rows["text"].astype(str),
                    "lang": lang,
                    "topics": [[] for _ in range(len(rows))],
                    "source": name,
                }
            )
        )
    if not frames:
        raise ValueError("no calibration rows: give calibration_sets or negative_datasets")
    return pd.concat(frames, ignore_index=True)


def candidate_scores(
    model: SentimentModel, rows: pd.DataFrame, options: AspectOptions
) -> tuple[np.ndarray, np.ndarray]:
    """(n, topics) the score `predict` gives each topic (max over document and clauses) and
    (n, topics) whether a cue rule tags it regardless of the threshold."""
    tagger = model.topic_tagger
    saved = tagger.thresholds_, tagger.thresholds_by_lang
    try:
        tagger.thresholds_ = np.zeros(len(tagger.topics))
        tagger.thresholds_by_lang = {}
        predictions = analyze(model, rows["text"].tolist(), rows["lang"].tolist(), options)
    finally:
        tagger.thresholds_, tagger.thresholds_by_lang = saved
    index = {name: i for i, name in enumerate(tagger.topics)}
    scores = np.zeros((len(rows), len(index)))
    cued = np.zeros((len(rows), len(index)), bool)
    for row, (prediction, text, lang) in enumerate(
        zip(predictions, rows["text"], rows["lang"], strict=True)
    ):
        for item in prediction.topics:
            if item["topic"] in index:
                scores[row, index[item["topic"]]] = item["score"]
        for topic in (
            cue_topics(
                text,
                lang,
                cue_file=options.cue_file,
                min_words=options.min_words,
                clauses=options.clauses,
            )
            if options.cues
            else ()
        ):
            if topic in index:
                cued[row, index[topic]] = True
    return scores, cued


def choose_thresholds(
    scores: np.ndarray,
    cued: np.ndarray,
    gold: np.ndarray,
    floor: np.ndarray,
    min_positives: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per topic: the F1-best threshold (ties: the higher), or with fewer than `min_positives`
    positives the lowest threshold at or above `floor` with no more false positives than the
    highest one."""
    thresholds = np.array(floor, dtype=np.float64)
    notes: dict[str, Any] = {}
    for col in range(scores.shape[1]):
        found = {float(t): (scores[:, col] >= t) | cued[:, col] for t in GRID}
        positives = int(gold[:, col].sum())
        if positives >= min_positives:
            f1 = {
                t: 2
                * (p & gold[:, col]).sum()
                / max(
                    2 * (p & gold[:, col]).sum()
                    + (p & ~gold[:, col]).sum()
                    + (~p & gold[:, col]).sum(),
                    1,
                )
                for t, p in found.items()
            }
            best = max(f1, key=lambda t: (round(f1[t], 6), t))
            thresholds[col] = best
            notes[str(col)] = {"positives": positives, "f1": round(float(f1[best]), 4)}
        else:
            fp = {t: int((p & ~gold[:, col]).sum()) for t, p in found.items()}
            least = min(fp.values())
            thresholds[col] = max(float(floor[col]), min(t for t, n in fp.items() if n == least))
            notes[str(col)] = {"positives": positives, "false_positives": least}
    return thresholds, notes


def recalibrate_topics(model: SentimentModel, config: Any) -> dict[str, Any]:
    """Set `model.topic_tagger.thresholds_by_lang` from the calibration rows of `config` (a
    TopicConfig) and report what was chosen on what."""
    if model.topic_tagger is None:
        raise ValueError("this model has no topic head to recalibrate")
    rows = calibration_rows(
        config.calibration_sets,
        config.negative_datasets,
        config.data_dir,
        config.calibration_negatives_per_dataset,
        config.seed,
    )
    options = copy.copy(getattr(model, "aspect_options", None) or AspectOptions())
    logger.info("recalibrating topic thresholds on %d dev texts", len(rows))
    scores, cued = candidate_scores(model, rows, options)
    tagger = model.topic_tagger
    names = list(tagger.topics)
    gold = np.array([[name in topics for name in names] for topics in rows["topics"]], bool)
    chosen: dict[str, np.ndarray] = {}
    report: dict[str, Any] = {"rows": {}, "thresholds": {}}
    for lang in LANGS:
        mask = (rows["lang"] == lang).to_numpy()
        if not mask.any():
            continue
        thresholds, notes = choose_thresholds(
            scores[mask],
            cued[mask],
            gold[mask],
            tagger.thresholds_,
            config.calibration_min_positives,
        )
        chosen[lang] = thresholds
        report["rows"][lang] = int(mask.sum())
        report["thresholds"][lang] = {
            names[int(col)]: {"threshold": float(thresholds[int(col)]), **note}
            for col, note in notes.items()
        }
    tagger.thresholds_by_lang = chosen
    tagger.info = {
        **tagger.info,
        "recalibration": {
            "calibration_sets": list(config.calibration_sets),
            "negative_datasets": config.negative_datasets,
            "negatives_per_dataset": config.calibration_negatives_per_dataset,
            "min_positives": config.calibration_min_positives,
            "rows": report["rows"],
        },
    }
    return report


def format_recalibration(report: dict[str, Any]) -> str:
    lines = []
    for lang, topics in report["thresholds"].items():
        cells = ", ".join(
            f"{name} {t['threshold']:.2f}" + (f" (F1 {t['f1']:.2f})" if "f1" in t else "")
            for name, t in topics.items()
            if name in TOPICS
        )
        lines.append(f"{lang} ({report['rows'][lang]} dev texts): {cells}")
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
