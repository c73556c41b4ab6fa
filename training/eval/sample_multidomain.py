"""Draw the texts of the multi-domain topic set, reproducibly, from the shared corpus's test splits.

Usage (from the repository root)::

    python training/eval/sample_multidomain.py OUT_DIR [--data-dir ../shared/data]

Writes `OUT_DIR/<lang>.jsonl`, one {id, dataset, domain, split, text} line per text, before
labelling; `id` is `<dataset>:<line>` (the 0-based line of the source file). Texts come from the
`test` split only (by the text's hash, as training.topic_data splits it, for a file without
one), so never a training row of any model, de-duplicated, 3 to 40 words, never a text
of another hand-labeled topic set. `split` (dev / test, half each per dataset) is assigned in
draw order, alternating. The seed and quotas below are the ones training/eval/README.md describes.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from training.data import corpus_lines, drawn_row, read_jsonl, text_key, write_jsonl  # noqa: E402
from training.topic_data import hash_split, topic_set_keys  # noqa: E402

SEED = 14  # the aspects issue
MIN_WORDS, MAX_WORDS = 3, 40
# dataset -> (domain, quota); 200 texts per language, four or more domains each.
QUOTAS: dict[str, dict[str, tuple[str, int]]] = {
    "fa": {
        "snappfood_api_crawl_2022": ("delivery_app", 60),
        "digikala_samsung_comments_2025": ("marketplace", 20),
        "digikala_comments_tiny": ("marketplace", 20),
        "digikala_ut_ai_ca3": ("marketplace", 10),
        "cafebazaar_bank_apps_rhatami": ("banking_app", 40),
        "insta_multidsenti": ("social", 26),
        "persian_instatext_3class": ("social", 24),
    },
    "ar": {
        "omcca_jeeran": ("venues_shops_telecom_banks", 50),
        "saudi_tourism_gmaps_reviews": ("travel", 30),
        "ar_large_res1": ("restaurants", 20),
        "masc": ("apps_and_mixed_reviews", 40),
        "arsarcasm_v2": ("social", 30),
        "ajgt": ("social", 30),
    },
    "en": {
        "twitter_us_airline": ("airline_customer_service", 60),
        "amazon_polarity_10k": ("marketplace", 30),
        "semeval2016_absa_restaurants_en": ("restaurants", 16),
        "semeval2016_absa_laptops_en": ("electronics", 14),
        "semeval2015_absa_hotels_en": ("travel_hotels", 10),
        "uci_amazon_yelp_sentences": ("marketplace_restaurants", 20),
        "semeval2013_2016_task4a_en": ("social", 50),
    },
}


def sample(data_dir: Path, lang: str) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    seen = topic_set_keys(skip="multidomain")
    chosen = []
    for dataset, (domain, quota) in QUOTAS[lang].items():
        pool = []
        path = data_dir / lang / f"{dataset}.jsonl"
        splits = {row.get("split") for row in read_jsonl(path)}
        for number, text, row in corpus_lines(path):
            # A file without a test split (SemEval-2016 training sets) is split by hash, as
            # training.topic_data does for it: its hash-test rows are never trained on.
            split = row.get("split") if "test" in splits else hash_split(text)
            if split != "test" or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                continue
            pool.append((number, text))
        rng.shuffle(pool)
        taken = 0
        for number, text in pool:
            if taken == quota:
                break
            if text_key(text) in seen:
                continue
            seen.add(text_key(text))
            split = "dev" if taken % 2 == 0 else "test"
            chosen.append(drawn_row(dataset, number, text, domain=domain, split=split))
            taken += 1
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--data-dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for lang in QUOTAS:
        rows = sample(Path(args.data_dir), lang)
        write_jsonl(out / f"{lang}.jsonl", rows)
        print(f"{lang}: {len(rows)} texts")


if __name__ == "__main__":
    main()
