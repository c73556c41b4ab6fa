"""Does `mixed` mean something, and does a document's sentiment agree with its own clauses?

Usage (from the repository root)::

    python benchmarks/mixed_and_agreement.py [--model default] [--per-lang 300]

1. `mixed` precision and recall against sources that label it: the `test` splits of ASTD and ArSAS
   (Arabic tweets), ParsiNLU food (Persian) and the SemEval ABSA sets (English, `mixed` derived
   from aspect polarities); up to `--per-lang` mixed and as many other rows per language. For a
   model with a learned `mixed` head (`cxnlp train-mixed`) the head and the rules are scored
   side by side, from one pass.
2. Agreement with clauses: on the hard-case set (`training/hard_cases/hard_<lang>.jsonl`, rows
   whose clauses all carry one polarity, as the team read them; `--hard-splits dev` for a model
   trained on their train rows) and on the team's topic set
   (`training/topic_labels/labeled_<lang>.jsonl`, rows whose labeled topics are all negative or all
   positive; dev rows only), the share where the predicted document sentiment is not the opposite polarity, with
   `AspectOptions.agree` on and off.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

MIXED_SOURCES = {
    "ar": ["astd", "arsas"],
    "fa": ["parsinlu_sentiment_food", "pars_absa_test"],
    "en": [
        "semeval2014_absa_restaurants_en_testgold_terms",
        "semeval2014_absa_laptops_en_testgold_terms",
        "semeval2016_absa_restaurants_en_testgold_terms",
    ],
}
OPPOSITE = {"negative": "positive", "positive": "negative"}


def mixed_rows(data: Path, lang: str, per_lang: int, seed: int = 5):
    import random

    rows = []
    for name in MIXED_SOURCES[lang]:
        path = data / lang / f"{name}.jsonl"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as f:
            rows += [r for r in map(json.loads, f) if r.get("split") == "test"]
    rng = random.Random(seed)
    rng.shuffle(rows)
    positives = [r for r in rows if r["label"] == "mixed"][:per_lang]
    negatives = [r for r in rows if r["label"] != "mixed"][: len(positives)]
    return [(r["text"], r["label"] == "mixed") for r in positives + negatives]


def single_polarity_rows(lang: str, hard_splits: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(text, polarity, source) of rows whose clauses (hard cases of `hard_splits`) or topics (team
    set, dev rows) all carry one polarity."""
    out = []
    hard = REPO_ROOT / "training" / "hard_cases" / f"hard_{lang}.jsonl"
    if hard.exists():
        for row in map(json.loads, hard.open(encoding="utf-8")):
            if row.get("single_polarity") in OPPOSITE and row["split"] in hard_splits:
                out.append((row["text"], row["single_polarity"], "hard cases"))
    team = REPO_ROOT / "training" / "topic_labels" / f"labeled_{lang}.jsonl"
    if team.exists():
        for row in map(json.loads, team.open(encoding="utf-8")):
            if row["split"] != "dev":  # the topic head trains on the train rows
                continue
            polarities = {t["polarity"] for t in row["topics"]}
            if len(polarities) == 1 and next(iter(polarities)) in OPPOSITE:
                out.append((row["text"], next(iter(polarities)), "topic set"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--per-lang", type=int, default=300)
    parser.add_argument(
        "--hard-splits",
        default="train,dev",
        help="hard-case splits scored for agreement; a model trained on the hard cases' train "
        "rows (training config data.hand_labels, e.g. v6) is scored on `dev` only",
    )
    args = parser.parse_args()

    import cxnlp
    from cxnlp.modeldir import read_training_config
    from cxnlp.models.pipeline import AspectOptions, analyze
    from cxnlp.models.store import resolve_model

    model = cxnlp.load(args.model)
    hard_splits = tuple(args.hard_splits.split(","))
    trained = read_training_config(Path(resolve_model(args.model))) or {}
    if trained.get("data", {}).get("hand_labels") and "train" in hard_splits:
        raise SystemExit(
            f"{args.model} trained on the hard cases' train rows: score it with --hard-splits dev"
        )
    print(f"model {args.model}; hard-case splits {hard_splits}")
    print("mixed, against sources that label it (test splits):")
    for lang in ("fa", "ar", "en"):
        rows = mixed_rows(Path(args.data), lang, args.per_lang)
        if not rows:
            continue
        # One pass gives both: the prediction's `mixed` (the learned head where the model has
        # one, from `cxnlp train-mixed`) and the rules' own decision (recorded).
        recorded: list = []
        predictions = analyze(
            model, [t for t, _ in rows], [lang] * len(rows), AspectOptions(), record=recorded
        )
        decided = {"rules": [r.rule for r in recorded]}
        if model.mixed_head is not None and model.mixed_head.covers(lang):
            decided = {"head": [p.mixed for p in predictions], **decided}
        gold = [g for _, g in rows]
        for decider, predicted in decided.items():
            tp = sum(p and g for p, g in zip(predicted, gold, strict=True))
            precision = tp / max(sum(predicted), 1)
            recall = tp / max(sum(gold), 1)
            print(
                f"  {lang} {decider}: {sum(gold)} mixed + {len(gold) - sum(gold)} not; precision "
                f"{precision:.3f} recall {recall:.3f} ({', '.join(MIXED_SOURCES[lang])})"
            )
    print("document sentiment not against its clauses / topics (single-polarity texts):")
    for lang in ("fa", "ar", "en"):
        rows = single_polarity_rows(lang, hard_splits)
        if not rows:
            continue
        for agree in (False, True):
            model.aspect_options = AspectOptions(agree=agree)
            predicted = model.predict([t for t, _, _ in rows], [lang] * len(rows))
            ok = [
                p.sentiment != OPPOSITE[pol] for p, (_, pol, _) in zip(predicted, rows, strict=True)
            ]
            exact = [p.sentiment == pol for p, (_, pol, _) in zip(predicted, rows, strict=True)]
            print(
                f"  {lang} ({len(rows)} texts), agree={agree}: not opposite {sum(ok) / len(ok):.3f}, "
                f"same sign {sum(exact) / len(exact):.3f}"
            )


if __name__ == "__main__":
    main()
