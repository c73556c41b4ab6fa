"""Rebuild examples/reviews.csv (+ reviews_gold.csv) from the shared corpus's permissively licensed
test splits. Run from the repository root: python examples/build_reviews.py ../shared/data

The texts and labels are real; `created_at` dates are spread over four weeks for the demo, and
`channel` / `product` say where each source's texts come from.
"""

import csv
import datetime
import json
import random
import sys
from pathlib import Path

# (file, channel, product, rows): MIT-licensed sources only (see training/datasets.yaml).
SOURCES = [
    ("fa/digikala_samsung_comments_2025.jsonl", "marketplace", "Samsung phone", 8),
    ("fa/cafebazaar_banking_apps.jsonl", "app_store", "Banking app", 8),
    ("ar/saudi_tourism_gmaps_reviews.jsonl", "google_maps", "Tourist site", 8),
    ("ar/semeval2016_absa_ar_hotels_terms.jsonl", "hotel_site", "Hotel", 8),
    ("en/semeval2016_absa_restaurants_en_testgold_terms.jsonl", "survey", "Restaurant", 8),
    ("en/yelp_absa_terms_pyabsa.jsonl", "yelp", "Restaurant", 8),
]


def main(data_dir: Path, out_dir: Path) -> None:
    rng = random.Random(7)
    rows = []
    for path, channel, product, n in SOURCES:
        lines = (data_dir / path).read_text(encoding="utf-8").splitlines()
        data = [json.loads(line) for line in lines]
        data = [
            d
            for d in data
            if d["split"] == "test"
            and d["label"] in ("positive", "negative", "neutral")
            and 3 <= len(d["text"].split()) <= 60
        ]
        by_label: dict[str, list] = {}
        for d in data:
            by_label.setdefault(d["label"], []).append(d)
        labels, chosen, i = sorted(by_label), [], 0
        while len(chosen) < n:
            pool = by_label[labels[i % len(labels)]]
            i += 1
            if pool:
                chosen.append(pool.pop(rng.randrange(len(pool))))
        rows += [(d, channel, product, Path(path).stem) for d in chosen]
    rng.shuffle(rows)
    start = datetime.date(2026, 9, 7)
    with open(out_dir / "reviews.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "created_at", "channel", "product", "text"])
        for i, (d, channel, product, _) in enumerate(rows):
            day = start + datetime.timedelta(days=(i * 28) // len(rows))
            w.writerow(
                [f"r{i + 1:03d}", day.isoformat(), channel, product, " ".join(d["text"].split())]
            )
    with open(out_dir / "reviews_gold.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "lang", "dataset"])
        for i, (d, _, _, dataset) in enumerate(rows):
            w.writerow([f"r{i + 1:03d}", d["label"], d["lang"], dataset])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"), Path(__file__).parent)
