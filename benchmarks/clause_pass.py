"""Which clauses are worth a second pass? Topic and `mixed` scores, and how many clauses each
`AspectOptions.clause_pass` reads again on their own.

Usage (from the repository root)::

    python benchmarks/clause_pass.py [--model default] [--mixed-per-lang 100] [--explore]

Scores, per option (`none`: every clause pooled from the document's own pass; `all`: every
clause of a text up to `clause_pass_chars` characters read again on its own; `selective`: the
clauses `cxnlp.models.pipeline.second_pass_pieces` picks), on rows that may be tuned on:

- the multi-domain topic set's dev half (`benchmarks/topic_multidomain.py --split dev`): topic
  micro-F1, polarity accuracy, the no-topic rate;
- `mixed` precision / recall on the tuning rows of `benchmarks/mixed_tuning.py` (never the test
  rows of `benchmarks/mixed_and_agreement.py`), for the learned head where the model has one and
  for the language's rule;
- the 48 example reviews (`examples/reviews.csv`): only the second-pass counts;

and the cost: the clauses read in the second pass and their tokens (the documents' own pass is the
same for every option). With --explore, also the candidate selection rules the shipped one was
chosen from. Each unit (a document, a pooled clause, a clause read on its own) is encoded once
and reused across options (`CachedReads`), so an option costs no encoder time beyond what it
adds.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.mixed_and_agreement import OPPOSITE, single_polarity_rows  # noqa: E402
from benchmarks.mixed_tuning import tuning_rows  # noqa: E402
from benchmarks.topic_multidomain import load_set, score  # noqa: E402
from cxnlp.models.pipeline import CLAUSE_PASSES  # noqa: E402

LANG_ORDER = ("fa", "ar", "en")


class CachedReads:
    """`model.read_units` with each document's and each span's reading kept: a unit read once is
    not encoded again (the readings do not depend on what else is in the call)."""

    def __init__(self, read: Callable[..., Any]) -> None:
        self.read = read
        self.docs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray | None]] = {}
        self.spans: dict[tuple[str, str, int, int], tuple[np.ndarray, np.ndarray | None]] = {}

    def __call__(
        self, docs: list[str], spans: list[list[tuple[int, int]]], langs: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        need: dict[tuple[str, str], set[tuple[int, int]]] = {}
        for doc, ranges, lang in zip(docs, spans, langs, strict=True):
            missing = {r for r in ranges if (doc, lang, *r) not in self.spans}
            if (doc, lang) not in self.docs or missing:
                need.setdefault((doc, lang), set()).update(missing)
        if need:
            keys = list(need)
            wanted = [sorted(need[k]) for k in keys]
            doc_p, doc_f, span_p, span_f = self.read(
                [d for d, _ in keys], wanted, [lang for _, lang in keys]
            )
            at = 0
            for k, (key, ranges) in enumerate(zip(keys, wanted, strict=True)):
                self.docs.setdefault(key, (doc_p[k], None if doc_f is None else doc_f[k]))
                for r in ranges:
                    self.spans[(*key, *r)] = (span_p[at], None if span_f is None else span_f[at])
                    at += 1
        doc_rows = [self.docs[(d, lang)] for d, lang in zip(docs, langs, strict=True)]
        span_rows = [
            self.spans[(d, lang, *r)]
            for d, ranges, lang in zip(docs, spans, langs, strict=True)
            for r in ranges
        ]
        return _stack(doc_rows) + _stack(span_rows, width=len(doc_rows[0][0]) if doc_rows else 3)

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            pickle.dump((self.docs, self.spans), f)

    def load(self, path: Path) -> None:
        if path.exists():
            with path.open("rb") as f:
                self.docs, self.spans = pickle.load(f)  # noqa: S301 (a file this script wrote)


def _stack(
    rows: list[tuple[np.ndarray, np.ndarray | None]], width: int = 3
) -> tuple[np.ndarray, np.ndarray | None]:
    if not rows:
        return np.zeros((0, width)), None
    p = np.stack([r[0] for r in rows])
    f = None if rows[0][1] is None else np.stack([r[1] for r in rows])
    return p, f


def run_option(model: Any, texts: list[str], langs: list[str], option: str, **kw: Any):
    """Predictions, recorded `mixed` signals and the second-pass texts of one option."""
    from cxnlp.models.pipeline import AspectOptions, analyze

    recorded: list = []
    again: list[str] = []
    predictions = analyze(
        model, texts, langs, AspectOptions(clause_pass=option, **kw), record=recorded,
        second_pass=again,
    )  # fmt: skip
    return predictions, recorded, again


def n_tokens(model: Any, texts: list[str]) -> int:
    owner = model.member("transformer") if hasattr(model, "member") else model
    tokenizer = getattr(owner, "tokenizer", None)
    if tokenizer is None or not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(texts)["input_ids"])


def mixed_scores(predicted: list[bool], gold: list[bool]) -> tuple[float, float]:
    tp = sum(p and g for p, g in zip(predicted, gold, strict=True))
    return tp / max(sum(predicted), 1), tp / max(sum(gold), 1)


def evaluate(model: Any, sets: dict[str, Any], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {"option": option}
    rows = sets["topics"]
    predictions, _, again = run_option(model, rows["text"].tolist(), rows["lang"].tolist(), option)
    report = score(rows, [p.topics for p in predictions])
    out["topics"] = {
        lang: {
            k: report[lang][k]
            for k in (
                "f1",
                "polarity_accuracy",
                "no_topic_rate",
                "polarity_scored",
                "no_topic_texts",
            )
        }
        for lang in LANG_ORDER
        if lang in report
    }
    out["topics_again"] = (len(again), n_tokens(model, again))
    out["mixed"], mixed_again = {}, []
    for lang, (texts, gold) in sets["mixed"].items():
        predictions, recorded, again = run_option(model, texts, [lang] * len(texts), option)
        mixed_again += again
        out["mixed"][lang] = {
            "head": mixed_scores([p.mixed for p in predictions], gold),
            "rule": mixed_scores([r.rule for r in recorded], gold),
        }
    out["mixed_again"] = (len(mixed_again), n_tokens(model, mixed_again))
    out["agree"] = {}
    for lang, (texts, polarities) in sets["agree"].items():
        predictions, _, _ = run_option(model, texts, [lang] * len(texts), option)
        sentiments = [p.sentiment for p in predictions]
        out["agree"][lang] = (
            np.mean([s != OPPOSITE[g] for s, g in zip(sentiments, polarities, strict=True)]),
            np.mean([s == g for s, g in zip(sentiments, polarities, strict=True)]),
        )
    _, _, again = run_option(model, sets["examples"], [None] * len(sets["examples"]), option)
    out["examples_again"] = (len(again), n_tokens(model, again))
    return out


def print_table(results: list[dict[str, Any]], sets: dict[str, Any]) -> None:
    rows = sets["topics"]
    n_pieces = sets["pieces"]
    print(
        f"topics: multi-domain dev half ({len(rows)} texts, {n_pieces['topics']} clauses in "
        f"multi-clause texts); mixed: tuning rows ({sum(len(t) for t, _ in sets['mixed'].values())}"
        f" texts, {n_pieces['mixed']} clauses); examples: {len(sets['examples'])} reviews "
        f"({n_pieces['examples']} clauses)"
    )
    first = results[0]["topics"]
    print(
        "n (topics whose polarity is scored / texts with no gold topic): "
        + "; ".join(
            f"{lang} {first[lang]['polarity_scored']} / {first[lang]['no_topic_texts']}"
            for lang in LANG_ORDER
            if lang in first
        )
        + f"; first pass (documents): {n_pieces['doc_tokens']} tokens on the dev half, "
        f"{n_pieces['example_tokens']} on the examples"
    )
    head = " | ".join(f"{lang} F1 / pol / no-topic" for lang in LANG_ORDER)
    print(f"| option | {head} | 2nd pass: dev clauses (tokens) | examples | mixed rows |")
    print("|---" * 7 + "|")
    for r in results:
        cells = []
        for lang in LANG_ORDER:
            t = r["topics"].get(lang)
            cells.append(
                "-"
                if t is None
                else f"{t['f1']:.3f} / {t['polarity_accuracy']:.3f} / {t['no_topic_rate']:.3f}"
            )
        counts = [f"{n} ({tok})" for n, tok in (r[k] for k in ("topics_again", "examples_again"))]
        counts.append(f"{r['mixed_again'][0]} ({r['mixed_again'][1]})")
        print(f"| {r['option']} | " + " | ".join(cells + counts) + " |")
    print("\nmixed precision / recall on the tuning rows (head; rule):")
    print("| option | " + " | ".join(LANG_ORDER) + " |")
    print("|---" * 4 + "|")
    for r in results:
        cells = []
        for lang in LANG_ORDER:
            m = r["mixed"].get(lang)
            cells.append(
                "-"
                if m is None
                else f"{m['head'][0]:.2f} / {m['head'][1]:.2f}; {m['rule'][0]:.2f} / "
                f"{m['rule'][1]:.2f}"
            )
        print(f"| {r['option']} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{lang} {len(t)}" for lang, (t, _) in sets["agree"].items())
    print(
        f"\ndocument sentiment on single-polarity dev rows ({sizes}): not the opposite polarity / "
        "the same"
    )
    print("| option | " + " | ".join(LANG_ORDER) + " |")
    print("|---" * 4 + "|")
    for r in results:
        cells = [
            "-"
            if lang not in r["agree"]
            else f"{r['agree'][lang][0]:.3f} / {r['agree'][lang][1]:.3f}"
            for lang in LANG_ORDER
        ]
        print(f"| {r['option']} | " + " | ".join(cells) + " |")


def count_pieces(texts: list[str], langs: list[str | None]) -> int:
    """Clauses in the texts the second pass may read (several clauses, up to 400 characters)."""
    from cxnlp.models.pipeline import AspectOptions, plan_pieces
    from cxnlp.text.langid import detect_language

    options = AspectOptions()
    total = 0
    for text, lang in zip(texts, langs, strict=True):
        plan = plan_pieces(text, lang or detect_language(text), options)
        if plan and len(text) <= options.clause_pass_chars:
            total += len(plan)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--mixed-per-lang", type=int, default=100)
    parser.add_argument("--options", default=",".join(CLAUSE_PASSES))
    parser.add_argument(
        "--explore", action="store_true", help="also score the candidate selection rules"
    )
    parser.add_argument(
        "--cache", help="keep the encoder's readings in this file (for reruns with other rules)"
    )
    args = parser.parse_args()

    import pandas as pd

    import cxnlp
    from cxnlp.models import pipeline

    model = cxnlp.load(args.model)
    reads = CachedReads(model.read_units)
    if args.cache:
        reads.load(Path(args.cache))
    model.read_units = reads
    topics = load_set("dev")
    mixed = {}
    for lang in LANG_ORDER:
        found = tuning_rows(Path(args.data), lang, args.mixed_per_lang)
        if found:
            mixed[lang] = ([t for t, _ in found], [g for _, g in found])
    agree = {}
    for lang in LANG_ORDER:
        found = single_polarity_rows(lang, ("dev",))
        if found:
            agree[lang] = ([t for t, _, _ in found], [p for _, p, _ in found])
    examples = pd.read_csv(REPO_ROOT / "examples" / "reviews.csv")["text"].tolist()
    sets = {"topics": topics, "mixed": mixed, "agree": agree, "examples": examples}
    sets["pieces"] = {
        "topics": count_pieces(topics["text"].tolist(), topics["lang"].tolist()),
        "mixed": sum(count_pieces(t, [lang] * len(t)) for lang, (t, _) in mixed.items()),
        "examples": count_pieces(examples, [None] * len(examples)),
        "doc_tokens": n_tokens(model, topics["text"].tolist()),
        "example_tokens": n_tokens(model, examples),
    }
    results = [evaluate(model, sets, option) for option in args.options.split(",")]
    if args.explore:
        from benchmarks import clause_pass_rules

        shipped = pipeline.second_pass_pieces
        try:
            for name, rule in clause_pass_rules.RULES.items():
                pipeline.second_pass_pieces = rule
                results.append({**evaluate(model, sets, "selective"), "option": name})
        finally:
            pipeline.second_pass_pieces = shipped
    if args.cache:
        reads.save(Path(args.cache))
    print_table(results, sets)


if __name__ == "__main__":
    main()
