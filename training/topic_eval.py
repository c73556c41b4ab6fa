"""`evaluate_topics()`: per-topic precision / recall / F1 and polarity accuracy of a model's topics.

Scored on the test splits of the mapped topic datasets (one block per dataset) and on the
hand-labeled Persian and Arabic sets in training/eval/. A predicted topic is a false positive only
where the gold is known to lack it: inside a complete dataset's scope, or anywhere on the
hand-labeled sets. Partial datasets (one reason per text, aspect-term lexicons) get recall only.
Polarity accuracy is over the topics found (true positives) whose gold polarity is positive,
neutral or negative; `mixed` gold is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import SENTIMENTS
from cxnlp.models.base import SentimentModel
from cxnlp.topics.taxonomy import TOPICS
from training.topic_data import EVAL_DIR, HANDLABELED_GLOB, load_topic_corpus
from training.topic_trainer import TopicTargets, corpus_targets, f1_counts

# Pooled blocks the targets name, next to the per-dataset ones.
POOLS = {
    "en_mapped": lambda f: (f["lang"] == "en") & ~f["partial"],
    "fa_food": lambda f: f["dataset"] == "parsinlu_sentiment_food",
}


def load_topic_test(data_dir: str | Path) -> pd.DataFrame:
    """Test rows with topic gold: mapped test splits, then the hand-labeled sets (full scope)."""
    corpus = load_topic_corpus(data_dir)
    test = corpus[corpus["split"] == "test"][
        ["text", "lang", "dataset", "topics", "partial", "scope"]
    ]
    test = test.assign(block=test["dataset"])
    hand = []
    for path in sorted(EVAL_DIR.glob(HANDLABELED_GLOB)):
        rows = pd.read_json(path, lines=True)
        hand.append(
            rows.assign(
                partial=False,
                scope=[list(TOPICS)] * len(rows),
                block=f"handlabeled_{rows['lang'].iloc[0]}",
            )[["text", "lang", "dataset", "topics", "partial", "scope", "block"]]
        )
    return pd.concat([test, *hand], ignore_index=True)


def score_topics(
    predicted: list[list[dict[str, Any]]], gold: TopicTargets, partial: bool
) -> dict[str, Any]:
    """Micro and per-topic scores of predicted topic lists against gold targets."""
    index = {name: i for i, name in enumerate(TOPICS)}
    found = np.zeros(gold.present.shape, bool)
    polarity = -np.ones(gold.present.shape, np.int64)
    for row, topics in enumerate(predicted):
        for item in topics:
            if item["topic"] in index:
                found[row, index[item["topic"]]] = True
                polarity[row, index[item["topic"]]] = SENTIMENTS.index(item["polarity"])
    report: dict[str, Any] = {"rows": len(predicted), **_prf(*f1_counts(found, gold), partial)}
    hits = found & (gold.present == 1) & (gold.polarity >= 0)
    report["polarity_accuracy"] = (
        round(float((polarity[hits] == gold.polarity[hits]).mean()), 4) if hits.any() else None
    )
    report["polarity_scored"] = int(hits.sum())
    per_topic = {}
    for name, col in index.items():
        column = TopicTargets(
            gold.present[:, [col]], gold.weight[:, [col]], gold.polarity[:, [col]]
        )
        if column.weight.sum() == 0 and not found[:, col].any():
            continue
        per_topic[name] = {
            "gold": int(column.present.sum()),
            "predicted": int(found[:, col].sum()),
            **_prf(*f1_counts(found[:, [col]], column), partial),
        }
    report["per_topic"] = per_topic
    return report


def _prf(tp: int, fp: int, fn: int, partial: bool) -> dict[str, float | None]:
    recall = tp / (tp + fn) if tp + fn else None
    if partial:
        return {"precision": None, "recall": _round(recall), "f1": None}
    precision = tp / (tp + fp) if tp + fp else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": _round(precision), "recall": _round(recall), "f1": _round(f1)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# The target for a topic head that does not pour everything into one topic: no topic's
# share of the predicted mentions more than this above its share of the gold mentions.
MAX_SHARE_EXCESS = 0.10


def topic_shares(
    per_topic: dict[str, dict[str, Any]], max_excess: float = MAX_SHARE_EXCESS
) -> dict[str, Any]:
    """Each topic's share of the predicted mentions beside its share of the gold mentions, from
    `score_topics(...)["per_topic"]` (a mention: one text tagged with one topic). A topic whose
    predicted share is more than `max_excess` (0.10: ten points) above its gold share is `over`.
    Topics are listed by predicted share, largest first; shares are None without any mention.

    >>> s = topic_shares({"price": {"gold": 2, "predicted": 6}, "delivery": {"gold": 6, "predicted": 2}})
    >>> s["topics"]["price"]["predicted_share"], s["topics"]["price"]["gold_share"], s["over"]
    (0.75, 0.25, ['price'])
    """
    gold_total = sum(int(t["gold"]) for t in per_topic.values())
    predicted_total = sum(int(t["predicted"]) for t in per_topic.values())
    topics = {}
    for name, t in per_topic.items():
        gold = int(t["gold"]) / gold_total if gold_total else None
        predicted = int(t["predicted"]) / predicted_total if predicted_total else None
        excess = None if gold is None or predicted is None else predicted - gold
        topics[name] = {
            "gold": int(t["gold"]),
            "predicted": int(t["predicted"]),
            "gold_share": _round(gold),
            "predicted_share": _round(predicted),
            "excess": _round(excess),
            # Rounded before comparing: 0.3 - 0.2 is exactly ten points, not more.
            "over": excess is not None and round(excess, 9) > max_excess,
        }
    order = sorted(topics, key=lambda n: (-(topics[n]["predicted_share"] or 0.0), n))
    return {
        "gold_mentions": gold_total,
        "predicted_mentions": predicted_total,
        "max_excess": max_excess,
        "topics": {name: topics[name] for name in order},
        "over": [name for name in order if topics[name]["over"]],
    }


def evaluate_topics(
    model: SentimentModel, data_dir: str | Path, json_path: str | Path | None = None
) -> dict[str, Any]:
    """Score `model`'s topics on the topic test sets under `data_dir` (see the module docstring)."""
    if model.topic_tagger is None:
        raise ValueError("this model has no topic head (its directory has no topics/)")
    test = load_topic_test(data_dir)
    predictions = model.predict(test["text"].astype(str).tolist(), test["lang"].tolist())
    predicted = [p.topics for p in predictions]
    targets = corpus_targets(test)
    report: dict[str, Any] = {"data": str(data_dir), "blocks": {}}
    blocks = {name: (test["block"] == name).to_numpy() for name in test["block"].unique()}
    blocks.update({name: rule(test).to_numpy() for name, rule in POOLS.items()})
    for name, mask in blocks.items():
        if not mask.any():
            continue
        partial = bool(test.loc[mask, "partial"].all())
        rows = np.flatnonzero(mask)
        gold = TopicTargets(targets.present[rows], targets.weight[rows], targets.polarity[rows])
        report["blocks"][name] = {
            "lang": str(test.loc[mask, "lang"].iloc[0])
            if test.loc[mask, "lang"].nunique() == 1
            else "mixed",
            "partial": partial,
            **score_topics([predicted[i] for i in rows], gold, partial),
        }
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def format_topic_report(report: dict[str, Any]) -> str:
    """The blocks as a table: micro P / R / F1 and polarity accuracy."""
    lines = [f"{'block':40} {'lang':5} {'rows':>5} {'P':>6} {'R':>6} {'F1':>6} {'polarity':>8}"]
    for name, block in report["blocks"].items():
        cells = [
            "-" if block[key] is None else f"{block[key]:.3f}"
            for key in ("precision", "recall", "f1", "polarity_accuracy")
        ]
        lines.append(
            f"{name:40} {block['lang']:5} {block['rows']:>5} "
            f"{cells[0]:>6} {cells[1]:>6} {cells[2]:>6} {cells[3]:>8}"
        )
    return "\n".join(lines)
