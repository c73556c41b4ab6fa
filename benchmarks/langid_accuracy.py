"""Accuracy and speed of cxnlp.text.langid.detect_language on the labelled data sets.

Usage (from the repository root)::

    .venv/bin/python benchmarks/langid_accuracy.py [DATA_DIR] [--errors N] [--per-source]

DATA_DIR holds ``{fa,ar,en}/*.jsonl`` files whose rows have ``text`` and ``lang`` (the data set's
language; a few rows are really in another language). It defaults to ``../shared/data`` relative
to the repository root. Prints accuracy per language for all rows and for rows of three words or
more, the speed in texts/s, and optionally a sample of the mistakes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.text.langid import detect_language  # noqa: E402

LANGS = ("fa", "ar", "en")


def load_rows(data_dir: Path) -> list[tuple[str, str, str]]:
    """Return (gold lang, source file, text) for every row under ``data_dir``."""
    rows = []
    for lang in LANGS:
        for path in sorted((data_dir / lang).glob("*.jsonl")):
            with path.open(encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    rows.append((row["lang"], path.stem, row["text"]))
    if not rows:
        raise SystemExit(f"no {{fa,ar,en}}/*.jsonl files under {data_dir}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default=str(REPO_ROOT / ".." / "shared" / "data"))
    parser.add_argument("--errors", type=int, default=0, help="print N sample mistakes per lang")
    parser.add_argument("--per-source", action="store_true", help="accuracy per source file too")
    args = parser.parse_args()

    rows = load_rows(Path(args.data_dir))
    start = time.perf_counter()
    preds = [detect_language(text) for _, _, text in rows]
    elapsed = time.perf_counter() - start

    total: dict[str, Counter] = defaultdict(Counter)
    errors: dict[str, list] = defaultdict(list)
    per_source: dict[str, Counter] = defaultdict(Counter)
    for (gold, source, text), pred in zip(rows, preds, strict=True):
        long_text = len(text.split()) >= 3
        ok = pred == gold
        for key in (gold, "all"):
            total[key]["n"] += 1
            total[key]["ok"] += ok
            total[key]["n3"] += long_text
            total[key]["ok3"] += ok and long_text
        per_source[source]["n"] += 1
        per_source[source]["ok"] += ok
        if not ok:
            errors[gold].append((pred, source, text))

    print(f"{'lang':<6}{'rows':>8}{'acc all':>10}{'rows>=3w':>10}{'acc >=3w':>10}{'errors':>8}")
    for key in (*LANGS, "all"):
        c = total[key]
        print(
            f"{key:<6}{c['n']:>8}{c['ok'] / c['n']:>10.4f}{c['n3']:>10}"
            f"{c['ok3'] / max(c['n3'], 1):>10.4f}{c['n'] - c['ok']:>8}"
        )
    print(f"speed: {len(rows) / elapsed:,.0f} texts/s ({len(rows)} texts in {elapsed:.1f} s)")
    for lang in LANGS:
        confusions = Counter(pred for pred, _, _ in errors[lang])
        print(f"{lang} predicted as: {dict(confusions.most_common())}")
    if args.per_source:
        for source, c in sorted(per_source.items()):
            print(f"  {source:<50}{c['n']:>7}{c['ok'] / c['n']:>9.4f}")
    rng = random.Random(0)
    for lang in LANGS:
        sample = rng.sample(errors[lang], min(args.errors, len(errors[lang])))
        for pred, source, text in sample:
            print(f"[{lang}->{pred}] {source}: {text[:160]!r}")


if __name__ == "__main__":
    main()
