"""Topic scores on the multi-domain set (training/eval/topics_multidomain_*.jsonl), per language.

Usage (from the repository root)::

    python benchmarks/topic_multidomain.py [--split dev|test|all] [--model default]
        [--no-clauses] [--no-cues] [--no-clause-topics] [--json OUT.json] [--per-topic]

Prints, per language: topic micro precision / recall / F1 over (text, topic) pairs (every topic
counts as known absent where the gold lacks it), the no-topic rate (texts with no gold topic that
get no topic), polarity accuracy over the topics found whose gold polarity is positive, neutral or
negative (`mixed` gold left out), each topic's share of the predicted mentions next to its share
of the gold mentions (a topic more than 10 points above its gold share is flagged: the issue's
target is that none is), and with --per-topic each topic's P / R. The dev half may be tuned on;
score the test half once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

EVAL_DIR = REPO_ROOT / "training" / "eval"


def load_set(split: str, pattern: str = "topics_multidomain_*.jsonl"):
    import pandas as pd

    from cxnlp.topics.taxonomy import TOPICS

    frames = [pd.read_json(path, lines=True) for path in sorted(EVAL_DIR.glob(pattern))]
    rows = pd.concat(frames, ignore_index=True)
    if "domain" not in rows:
        rows["domain"] = rows["dataset"]
    if split != "all" and "split" in rows:
        rows = rows[rows["split"] == split].reset_index(drop=True)
    return rows.assign(partial=False, scope=[list(TOPICS)] * len(rows))


def score(rows, predicted) -> dict:
    import numpy as np

    from training.topic_eval import score_topics, topic_shares
    from training.topic_trainer import TopicTargets, corpus_targets

    report = {}
    targets = corpus_targets(rows)
    for lang in ("fa", "ar", "en"):
        index = np.flatnonzero((rows["lang"] == lang).to_numpy())
        if not len(index):
            continue
        gold = TopicTargets(targets.present[index], targets.weight[index], targets.polarity[index])
        block = score_topics([predicted[i] for i in index], gold, partial=False)
        block["shares"] = topic_shares(block["per_topic"])
        empty = [i for i in index if not rows["topics"].iloc[i]]
        block["no_topic_rate"] = (
            round(sum(not predicted[i] for i in empty) / len(empty), 4) if empty else None
        )
        block["no_topic_texts"] = len(empty)
        by_domain = {}
        for domain in sorted(rows["domain"].iloc[index].unique()):
            rows_d = [i for i in index if rows["domain"].iloc[i] == domain]
            g = TopicTargets(
                targets.present[rows_d], targets.weight[rows_d], targets.polarity[rows_d]
            )
            d = score_topics([predicted[i] for i in rows_d], g, partial=False)
            by_domain[domain] = {k: d[k] for k in ("rows", "precision", "recall", "f1")}
        block["by_domain"] = by_domain
        report[lang] = block
    return report


def print_shares(report: dict) -> None:
    """Per language, each topic's share of the predicted mentions next to its gold share, "!"
    where it is more than the allowed points above; then which topics miss the target."""
    for lang, block in report.items():
        shares = block["shares"]
        limit = 100 * shares["max_excess"]
        print(
            f"\n{lang}: share of the mentions, predicted vs gold ({shares['predicted_mentions']} "
            f"predicted, {shares['gold_mentions']} gold; ! = more than {limit:.0f} points above)"
        )
        print(f"  {'topic':17} {'pred %':>7} {'gold %':>7} {'diff':>6}")
        for topic, t in shares["topics"].items():
            if not t["gold"] and not t["predicted"]:
                continue
            cells = [
                "-" if t[k] is None else f"{100 * t[k]:.1f}"
                for k in ("predicted_share", "gold_share")
            ]
            diff = "-" if t["excess"] is None else f"{100 * t['excess']:+.1f}"
            flag = " !" if t["over"] else ""
            print(f"  {topic:17} {cells[0]:>7} {cells[1]:>7} {diff:>6}{flag}")
    over = {lang: block["shares"]["over"] for lang, block in report.items()}
    verdict = "; ".join(f"{lang}: {', '.join(names) or 'none'}" for lang, names in over.items())
    limits = {100 * block["shares"]["max_excess"] for block in report.values()}
    limit = "/".join(f"{x:.0f}" for x in sorted(limits))
    print(f"\ntopics more than {limit} points above their gold share: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--sets",
        default="topics_multidomain_*.jsonl",
        help="which files of training/eval to score (e.g. topics_handlabeled_*.jsonl, all rows)",
    )
    parser.add_argument("--no-clauses", action="store_true", help="read texts whole")
    parser.add_argument("--no-cues", action="store_true", help="no high-precision cue rules")
    parser.add_argument(
        "--no-clause-topics", action="store_true", help="find topics on the document only"
    )
    parser.add_argument("--per-topic", action="store_true")
    parser.add_argument("--json", help="write the report (and the predictions) here")
    args = parser.parse_args()

    import cxnlp
    from cxnlp.models.pipeline import AspectOptions

    rows = load_set(args.split, args.sets)
    model = cxnlp.load(args.model)
    model.aspect_options = AspectOptions(
        clauses=not args.no_clauses,
        cues=not args.no_cues,
        clause_topics=not args.no_clause_topics,
    )
    started = time.perf_counter()
    predictions = model.predict(rows["text"].tolist(), rows["lang"].tolist())
    seconds = time.perf_counter() - started
    predicted = [p.topics for p in predictions]
    report = score(rows, predicted)
    print(
        f"{args.model} on the multi-domain set, {args.split} half ({len(rows)} texts, "
        f"{seconds:.0f} s); clauses {not args.no_clauses}, cues {not args.no_cues}, "
        f"clause topics {not args.no_clause_topics}"
    )
    print(f"{'lang':5} {'P':>6} {'R':>6} {'F1':>6} {'no-topic':>9} {'polarity':>9} {'(n)':>5}")
    for lang, block in report.items():
        cells = [
            "-" if block[k] is None else f"{block[k]:.3f}"
            for k in ("precision", "recall", "f1", "no_topic_rate", "polarity_accuracy")
        ]
        print(
            f"{lang:5} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6} {cells[3]:>9} {cells[4]:>9} "
            f"{block['polarity_scored']:>5}"
        )
    print_shares(report)
    if args.per_topic:
        for lang, block in report.items():
            print(f"\n{lang}: topic gold / predicted / P / R")
            for topic, t in block["per_topic"].items():
                p = "-" if t["precision"] is None else f"{t['precision']:.2f}"
                r = "-" if t["recall"] is None else f"{t['recall']:.2f}"
                print(f"  {topic:17} {t['gold']:>4} {t['predicted']:>4} {p:>5} {r:>5}")
            print("  by domain F1:", {d: v["f1"] for d, v in block["by_domain"].items()})
    if args.json:
        out = {
            "report": report,
            "predictions": [
                {"id": i, "topics": t, "mixed": p.mixed}
                for i, t, p in zip(rows["id"], predicted, predictions, strict=True)
            ],
        }
        Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
