"""Precision and recall of the urgency cues on the hand-labeled sets `training/eval/urgency_<lang>.jsonl`.

Pure Python: cue matching from `cxnlp.text.urgency`, no model. With `--no-model` (the only mode
this script runs in; the flag is there so that the report says so) the probability part of the
score is set aside: each text is scored from its cues alone, so "predicted urgent" means "a cue
matched" (a cue alone reaches the `high` level). The shipped model's negative probability could
only move a cue-matched text between `medium` and `high`, never across the urgent line, so these
numbers are what the full score gives as well.

    python benchmarks/urgency_eval.py --no-model [--errors] [--set heldout|heldout2]

`--set heldout` scores `urgency_heldout_<lang>.jsonl`: drawn after the first tuning, then itself used to
widen the cues (a tuning set now). `--set heldout2` scores `urgency_heldout2_<lang>.jsonl`: drawn and
labeled after all tuning, never tuned on, so its figures are the unbiased ones (training/eval/README.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxnlp.labels import LANGS
from cxnlp.text.urgency import is_urgent, score_urgency

SETS = Path(__file__).resolve().parents[1] / "training" / "eval"
SET_FILES = {
    "tuning": "urgency_{lang}.jsonl",
    "heldout": "urgency_heldout_{lang}.jsonl",
    "heldout2": "urgency_heldout2_{lang}.jsonl",
}


def evaluate(lang: str, show_errors: bool = False, which: str = "tuning") -> dict[str, float]:
    path = SETS / SET_FILES[which].format(lang=lang)
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    tp = fp = fn = 0
    for row in rows:
        result = score_urgency(row["text"], lang, {})
        predicted = is_urgent(result)
        tp += predicted and row["urgent"]
        fp += predicted and not row["urgent"]
        fn += row["urgent"] and not predicted
        if show_errors and predicted != row["urgent"]:
            kind = "FP" if predicted else "FN"
            cues = [(e["cue"], e["text"]) for e in result["evidence"]]
            print(f"  {kind} {row['id']}: {row['text'][:110]!r} {cues}")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return {"n": len(rows), "urgent": tp + fn, "precision": precision, "recall": recall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-model", action="store_true", required=True,
                        help="score from cues alone (required: this script never loads a model)")  # fmt: skip
    parser.add_argument("--errors", action="store_true", help="print every miss and false alarm")
    parser.add_argument("--set", choices=sorted(SET_FILES), default="tuning", dest="which",
                        help="tuning (default) and heldout: the sets the cues were tuned on; heldout2: never tuned on")  # fmt: skip
    args = parser.parse_args()
    print(f"set: {args.which}")
    print("lang   n  urgent  precision  recall")
    for lang in LANGS:
        if args.errors:
            print(f"{lang}:")
        m = evaluate(lang, args.errors, args.which)
        print(f"{lang:4} {m['n']:4} {m['urgent']:6}  {m['precision']:9.3f}  {m['recall']:6.3f}")


if __name__ == "__main__":
    main()
