"""Precision and recall of urgency on the hand-labeled sets `training/eval/urgency_<lang>.jsonl`:
the cues alone, and (with `--model`) a model's learned urgency head beside them.

`--no-model`: pure Python, cue matching from `cxnlp.text.urgency`, no model. The probability part
of the score is set aside: each text is scored from its cues alone, so "predicted urgent" means "a
cue matched" (a cue alone reaches the `high` level). The shipped model's negative probability
could only move a cue-matched text between `medium` and `high`, never across the urgent line, so
these numbers are what the full score gives without a learned head as well.

`--model DIR`: the same texts read by the model (one recorded pipeline pass, cached like
`cxnlp train-urgency`'s under `<cache>/urgency/`), and each text's urgency decided as `predict`
decides it: `cxnlp.models.urgency.urgency_signals` of its signals and cue matches, the head's
`judge`, `cxnlp.text.urgency.score_urgency`. Cue-only and head columns side by side; a language
the head does not cover is decided by the cues in both. `--check N` runs `predict` itself on the
first N texts per language and stops if a level differs.

    python benchmarks/urgency_eval.py --no-model [--errors] [--set heldout|heldout2|heldout3|train4|heldout4]
    python benchmarks/urgency_eval.py --model models/default [--errors] [--set heldout2]

`--set heldout` scores `urgency_heldout_<lang>.jsonl` and `--set heldout2` `urgency_heldout2_<lang>.jsonl`:
each drawn after a round of tuning, scored once, then itself used to widen the cues (tuning sets now).
`--set heldout3` scores `urgency_heldout3_<lang>.jsonl`: scored once untouched, then (spent) a tuning set and
a fitting set of the head, like `--set train4` (`urgency_train4_<lang>.jsonl`, a training set drawn for the
head). Every set here is now one the cues were tuned on or the head is fitted on, so their figures are
in-sample; the untouched test is named in training/eval/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.text.urgency import find_cues, is_urgent, score_urgency

SETS = Path(__file__).resolve().parents[1] / "training" / "eval"
SET_FILES = {
    "tuning": "urgency_{lang}.jsonl",
    "heldout": "urgency_heldout_{lang}.jsonl",
    "heldout2": "urgency_heldout2_{lang}.jsonl",
    "heldout3": "urgency_heldout3_{lang}.jsonl",
    "train4": "urgency_train4_{lang}.jsonl",
    # The untouched test of the cues of round 4 and the head fitted on train4 (scored once).
    "heldout4": "urgency_heldout4_{lang}.jsonl",
}


def read_set(lang: str, which: str = "tuning") -> list[dict[str, Any]]:
    path = SETS / SET_FILES[which].format(lang=lang)
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def scores(
    rows: list[dict[str, Any]], predicted: list[bool], show_errors: bool = False, label: str = ""
) -> dict[str, float]:
    tp = fp = fn = 0
    for row, urgent in zip(rows, predicted, strict=True):
        tp += urgent and row["urgent"]
        fp += urgent and not row["urgent"]
        fn += row["urgent"] and not urgent
        if show_errors and urgent != row["urgent"]:
            kind = "FP" if urgent else "FN"
            print(f"  {label}{kind} {row['id']}: {row['text'][:110]!r} {row.get('_evidence', '')}")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return {"n": len(rows), "urgent": tp + fn, "precision": precision, "recall": recall}


def evaluate(lang: str, show_errors: bool = False, which: str = "tuning") -> dict[str, float]:
    """The cues alone on one language's set."""
    rows = read_set(lang, which)
    results = [score_urgency(row["text"], lang, {}) for row in rows]
    for row, result in zip(rows, results, strict=True):
        row["_evidence"] = [(e["cue"], e["text"]) for e in result["evidence"]]
    return scores(rows, [is_urgent(r) for r in results], show_errors)


def head_results(model: Any, rows: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Each row's urgency as the model's `predict` decides it, from its recorded signals (cached)."""
    import pandas as pd

    from cxnlp.models.store import resolve_model
    from cxnlp.models.urgency import urgency_signals
    from training.linear_head import read_signals, signal_cache_path

    frame = pd.DataFrame({"text": [r["text"] for r in rows], "lang": lang})
    cache = signal_cache_path(resolve_model(model.source_), model.aspect_options, kind="urgency")
    table = read_signals(model, frame, cache)
    head = model.urgency_head
    results = []
    for row, signals, features in zip(rows, table.signals, table.features, strict=True):
        cues = find_cues(row["text"], lang)
        probabilities = {label: float(p) for label, p in zip(SENTIMENTS, signals, strict=False)}
        learned = None
        if head is not None and head.covers(lang):
            learned = head.judge(urgency_signals(signals, cues), features, lang)
        results.append(score_urgency(row["text"], lang, probabilities, learned=learned, cues=cues))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--no-model", action="store_true",
                      help="score from cues alone (no model is loaded)")  # fmt: skip
    mode.add_argument("--model", help="also score this model's urgency (its learned head)")
    parser.add_argument("--errors", action="store_true", help="print every miss and false alarm")
    parser.add_argument("--set", choices=sorted(SET_FILES), default="tuning", dest="which",
                        help="tuning (default), heldout, heldout2, heldout3, train4: the sets the cues were tuned on; heldout4: the untouched test")  # fmt: skip
    parser.add_argument("--check", type=int, default=10,
                        help="with --model: run predict on this many texts per language and compare")  # fmt: skip
    args = parser.parse_args()
    print(f"set: {args.which}")
    if args.no_model:
        print("lang   n  urgent  precision  recall")
        for lang in LANGS:
            if args.errors:
                print(f"{lang}:")
            m = evaluate(lang, args.errors, args.which)
            print(f"{lang:4} {m['n']:4} {m['urgent']:6}  {m['precision']:9.3f}  {m['recall']:6.3f}")
        return

    import cxnlp

    model = cxnlp.load(args.model)
    head = model.urgency_head
    print(f"model: {args.model} ({'urgency head' if head is not None else 'no urgency head'})")
    lines = []
    for lang in LANGS:
        rows = read_set(lang, args.which)
        learned = head_results(model, rows, lang)
        if args.check:
            texts = [r["text"] for r in rows[: args.check]]
            predicted = model.predict(texts, [lang] * len(texts))
            for text, p, r in zip(texts, predicted, learned, strict=False):
                if p.urgency["level"] != r["level"]:
                    raise SystemExit(
                        f"predict and this script differ on {text!r}: {p.urgency} / {r}"
                    )
        if args.errors:
            print(f"{lang}:")
        cue_only = evaluate(lang, args.errors, args.which)
        for row, result in zip(rows, learned, strict=True):
            row["_evidence"] = [(e["cue"], e["text"][:60]) for e in result["evidence"]]
        with_head = scores(rows, [is_urgent(r) for r in learned], args.errors, "head ")
        covered = "head OR cues" if head is not None and head.covers(lang) else "cues only"
        lines.append((lang, cue_only, with_head, covered))
    print("lang   n  urgent   cue-only P / R     model P / R    (model decides by)")
    for lang, c, h, covered in lines:
        print(
            f"{lang:4} {c['n']:4} {c['urgent']:6}   {c['precision']:6.3f} / {c['recall']:.3f}"
            f"   {h['precision']:6.3f} / {h['recall']:.3f}    ({covered})"
        )


if __name__ == "__main__":
    main()
