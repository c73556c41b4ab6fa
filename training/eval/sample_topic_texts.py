"""Draw the texts of the hand-labeled topic sets, reproducibly, from the shared corpus's test splits.

Usage (from the repository root)::

    .venv/bin/python training/eval/sample_topic_texts.py fa OUT.jsonl [--data-dir DIR]

Writes one {id, dataset, text} line per text, before labelling; `id` is `<dataset>:<line>` (the
0-based line of the source file). Texts come from the `test` split of customer-review datasets,
de-duplicated, 4 to 70 words; 80% of each dataset's quota is drawn from texts of 10 words or
more, which mention aspects more often, the rest from shorter ones. The seed and quotas below are
the ones training/eval/README.md describes; changing them draws a different set.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from training.data import corpus_lines, drawn_row, text_key, write_jsonl  # noqa: E402

SEED = 4  # the topics issue
LONG_SHARE = 0.8
MIN_WORDS, LONG_WORDS, MAX_WORDS = 4, 10, 70
QUOTAS = {
    "fa": {
        "snappfood_api_crawl_2022": 60,
        "digikala_samsung_comments_2025": 20,
        "digikala_comments_tiny": 15,
        "digikala_ut_ai_ca3": 10,
        "digikala_zhpinkman": 5,
        "cafebazaar_bank_apps_rhatami": 30,
        "cafebazaar_banking_apps": 12,
    },
    "ar": {
        "saudi_tourism_gmaps_reviews": 40,
        "omcca_jeeran": 50,
        "ar_large_res1": 25,
        "ar_large_res2": 10,
        "semeval2016_absa_ar_hotels_terms": 27,
    },
}


def sample(data_dir: Path, lang: str) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    chosen, seen = [], set()
    for dataset, quota in QUOTAS[lang].items():
        long, short = [], []
        for number, text, row in corpus_lines(data_dir / lang / f"{dataset}.jsonl"):
            words = len(text.split())
            key = text_key(text)
            if row.get("split") != "test" or key in seen:
                continue
            if not MIN_WORDS <= words <= MAX_WORDS:
                continue
            seen.add(key)
            item = drawn_row(dataset, number, text)
            (long if words >= LONG_WORDS else short).append(item)
        n_long = min(len(long), round(quota * LONG_SHARE))
        picked = rng.sample(long, n_long) + rng.sample(short, min(len(short), quota - n_long))
        chosen.extend(picked)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lang", choices=sorted(QUOTAS))
    parser.add_argument("out")
    parser.add_argument("--data-dir", default=str(REPO_ROOT / ".." / "shared" / "data"))
    args = parser.parse_args()
    rows = sample(Path(args.data_dir), args.lang)
    write_jsonl(args.out, rows)
    print(f"{len(rows)} texts -> {args.out}")


if __name__ == "__main__":
    main()
