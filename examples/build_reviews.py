"""Rebuild examples/reviews.csv (+ reviews_gold.csv) from the shared corpus's permissively licensed
test splits. Run from the repository root: python examples/build_reviews.py ../shared/data

The texts and labels are real; the rest is made up for the demo, reproducibly: `created_at` dates
are spread over two periods (September and October 2026, 24 texts each), `customer_id` gives
twelve customers a text in each period (same channel and product), and `nps` is a survey answer
drawn from the text's own label (negative 0-6, neutral 7-8, positive 9-10). `channel` /
`product` say where each source's texts come from.
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


# The two periods of the demo: the first half of the rows in the first, the rest in the second.
PERIODS = [(datetime.date(2026, 9, 1), 30), (datetime.date(2026, 10, 1), 31)]
RETURNING = 12  # customers with a text in each period
NPS_BY_LABEL = {"negative": (0, 6), "neutral": (7, 8), "positive": (9, 10)}


def demo_columns(rows: list) -> tuple[list[str], list[str], list[int]]:
    """Dates, customer ids and NPS answers of the (shuffled) rows; own random generator, so the
    choice of texts above stays as it was."""
    rng = random.Random(11)
    half = len(rows) // 2
    days = []
    for i in range(len(rows)):
        (start, length), k, n = (PERIODS[0], i, half) if i < half else (PERIODS[1], i - half, half)
        days.append((start + datetime.timedelta(days=(k * length) // n)).isoformat())
    # A returning customer's second text is one from the same channel and product a month later.
    later = list(range(half, len(rows)))
    pairs: dict[int, int] = {}
    for i in range(half):
        if len(pairs) == RETURNING:
            break
        same = [j for j in later if rows[j][1:3] == rows[i][1:3]]
        if same:
            pairs[i] = same[0]
            later.remove(same[0])
    customers = [""] * len(rows)
    for n, (i, j) in enumerate(sorted(pairs.items())):
        customers[i] = customers[j] = f"c{n + 1:03d}"
    fresh = RETURNING
    for i in range(len(rows)):
        if not customers[i]:
            fresh += 1
            customers[i] = f"c{fresh:03d}"
    scores = [rng.randint(*NPS_BY_LABEL[d["label"]]) for d, *_ in rows]
    return days, customers, scores


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
    days, customers, scores = demo_columns(rows)
    with open(out_dir / "reviews.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "created_at", "customer_id", "channel", "product", "nps", "text"])
        for i, (d, channel, product, _) in enumerate(rows):
            text = " ".join(d["text"].split())
            w.writerow([f"r{i + 1:03d}", days[i], customers[i], channel, product, scores[i], text])
    with open(out_dir / "reviews_gold.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "lang", "dataset"])
        for i, (d, _, _, dataset) in enumerate(rows):
            w.writerow([f"r{i + 1:03d}", d["label"], d["lang"], dataset])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"), Path(__file__).parent)
