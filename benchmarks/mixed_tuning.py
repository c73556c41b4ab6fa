"""Choose the `mixed` rule per language on rows the report does not use, then score it on the
test rows of `benchmarks/mixed_and_agreement.py`.

    python benchmarks/mixed_tuning.py [--model default] [--per-lang 300]

A text is mixed when (a) it has a confidently positive and a confidently negative clause (clause
probability >= `clause`), or (b) it carries a positive and a negative topic (`topics`), or (c) its
document probabilities give both positive and negative at least `doc` (for one-clause texts, e.g.
tweets, the only signal). Tuning rows: ASTD dev and ArSAS (Arabic), ParsiNLU food and Pars-ABSA
train/dev (Persian), SemEval 2014/2016 restaurants train (English; their `mixed` is derived from
aspect polarities, as in the test files); up to `--per-lang` mixed and as many other rows. The
rule chosen is the one with the highest recall at precision >= 0.8 on them (else the best F1).
Prints tuning and test precision / recall for the current rule and the chosen one, and the
chosen settings to write into `cxnlp.models.pipeline.MIXED_RULES`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.mixed_and_agreement import mixed_rows  # noqa: E402

TUNING_SOURCES = {
    "ar": [("astd", ("dev",)), ("arsas", ("train",))],
    "fa": [
        ("parsinlu_sentiment_food", ("train", "dev")),
        ("pars_absa_sample999", ("train", "dev")),
    ],
    "en": [
        ("semeval2014_absa_restaurants_en", ("train",)),
        ("semeval2016_absa_restaurants_en", ("train",)),
    ],
}
CLAUSE = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.01)
DOC = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 1.01)


def tuning_rows(data: Path, lang: str, per_lang: int, seed: int = 11):
    rows = []
    for name, splits in TUNING_SOURCES[lang]:
        with (data / lang / f"{name}.jsonl").open(encoding="utf-8") as f:
            rows += [r for r in map(json.loads, f) if r.get("split") in splits]
    rng = random.Random(seed)
    rng.shuffle(rows)
    positives = [r for r in rows if r["label"] == "mixed"][:per_lang]
    negatives = [r for r in rows if r["label"] != "mixed"][: len(positives)]
    return [(r["text"], r["label"] == "mixed") for r in positives + negatives]


def signals(model, texts: list[str], lang: str) -> list[dict]:
    """Per text: its clauses' probabilities, its document probabilities, whether its topics are
    mixed; read by recording what the pipeline computes."""
    from cxnlp.models import pipeline

    recorded: list[np.ndarray] = []
    original = pipeline._is_mixed

    def record(pieces, labels, threshold):
        recorded.append(np.array(pieces))
        return original(pieces, labels, threshold)

    pipeline._is_mixed = record
    try:
        predictions = model.predict(texts, [lang] * len(texts))
    finally:
        pipeline._is_mixed = original
    labels = list(model.labels)
    out = []
    for pieces, prediction in zip(recorded, predictions, strict=True):
        polarities = {t["polarity"] for t in prediction.topics}
        out.append(
            {
                "pieces": pieces,
                "doc": np.array([prediction.probabilities[label] for label in labels]),
                "topics": {"positive", "negative"} <= polarities,
            }
        )
    return out


def decide(signal: dict, labels: list[str], clause: float, doc: float, topics: bool) -> bool:
    pos, neg = labels.index("positive"), labels.index("negative")
    pieces = signal["pieces"]
    if len(pieces) >= 2:
        best, top = pieces.argmax(1), pieces.max(1)
        if ((top >= clause) & (best == pos)).any() and ((top >= clause) & (best == neg)).any():
            return True
    if topics and signal["topics"]:
        return True
    return bool(min(signal["doc"][pos], signal["doc"][neg]) >= doc)


def precision_recall(found: list[bool], gold: list[bool]) -> tuple[float, float]:
    found, gold = np.array(found), np.array(gold)
    tp = int((found & gold).sum())
    return tp / max(int(found.sum()), 1), tp / max(int(gold.sum()), 1)


def main() -> None:
    import cxnlp
    from cxnlp.models.pipeline import AspectOptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--per-lang", type=int, default=300)
    args = parser.parse_args()
    data = Path(args.data)
    model = cxnlp.load(args.model)
    labels = list(model.labels)
    current = AspectOptions()
    grid = list(itertools.product(CLAUSE, DOC, (True, False)))
    chosen = {}
    print(f"{'lang':<5}{'set':<8}{'rule':<34}{'n':>6}{'P':>7}{'R':>7}")
    for lang in ("fa", "ar", "en"):
        tune = tuning_rows(data, lang, args.per_lang)
        test = mixed_rows(data, lang, args.per_lang)
        tune_signals = signals(model, [t for t, _ in tune], lang)
        test_signals = signals(model, [t for t, _ in test], lang)
        tune_gold, test_gold = [g for _, g in tune], [g for _, g in test]

        def score(rule, sigs, gold):
            return precision_recall([decide(s, labels, *rule) for s in sigs], gold)

        scored = [(rule, *score(rule, tune_signals, tune_gold)) for rule in grid]
        ok = [s for s in scored if s[1] >= 0.8]
        if ok:
            best = max(ok, key=lambda s: (s[2], s[1]))
        else:
            best = max(scored, key=lambda s: 2 * s[1] * s[2] / max(s[1] + s[2], 1e-9))
        rule = best[0]
        chosen[lang] = {"clause": rule[0], "doc": rule[1], "topics": rule[2]}
        now = (current.mixed_threshold, 1.01, current.topic_mixed)
        for name, r in (("current", now), ("chosen", rule)):
            text = f"{name} clause>={r[0]} doc>={r[1]} topics={r[2]}"
            for set_name, sigs, gold in (
                ("tune", tune_signals, tune_gold),
                ("test", test_signals, test_gold),
            ):
                p, rec = score(r, sigs, gold)
                print(f"{lang:<5}{set_name:<8}{text:<34}{len(gold):>6}{p:>7.3f}{rec:>7.3f}")
    print("MIXED_RULES =", json.dumps(chosen))


if __name__ == "__main__":
    main()
