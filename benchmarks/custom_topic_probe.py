"""How well a custom topic is found without retraining: the README's *cold food* example.

Texts of real review sets that mention cold food (found by a keyword pattern, so a few of them
say the food was *not* cold) are mixed with four times as many other texts of the same set; the
topic, described in Persian only (examples/custom_topics.yaml), is then tagged in Persian, Arabic
and English. Prints, per set and score threshold, how many of each group get the topic, and the
top-scored texts.

    python benchmarks/custom_topic_probe.py --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import cxnlp

SETS = [
    ("fa", "snappfood_api_crawl_2022", r"سرد|یخ کرده|یخ زده"),
    ("ar", "ar_large_res1", r"بارد|باردة"),
    ("en", "semeval2014_absa_restaurants_en", r"\bcold\b"),
    ("en", "semeval2016_absa_restaurants_en", r"\bcold\b"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--model", default="default")
    parser.add_argument("--topics", default="examples/custom_topics.yaml")
    parser.add_argument("--per-set", type=int, default=40, help="cold-food texts per set")
    args = parser.parse_args()

    model = cxnlp.load(args.model)
    (name,) = model.add_custom_topics(args.topics)
    tagger = model.topic_tagger
    for lang, dataset, pattern in SETS:
        table = pd.read_json(Path(args.data) / lang / f"{dataset}.jsonl", lines=True)
        mentions = table["text"].str.contains(pattern, regex=True)
        hits = table.loc[mentions, "text"].head(args.per_set).tolist()
        others = table.loc[~mentions, "text"].sample(4 * len(hits), random_state=0).tolist()
        texts = hits + others
        features = model.features(texts, [lang] * len(texts))
        scores = tagger.custom_probabilities(features, [lang] * len(texts))[:, 0]
        print(f"{lang} {dataset}: {len(hits)} texts mentioning cold food, {len(others)} others")
        for threshold in (tagger.matcher.threshold, 0.6, 0.7, 0.8):
            found = scores >= threshold
            print(
                f"  score >= {threshold:.2f}: {found[: len(hits)].sum()}/{len(hits)} cold-food "
                f"texts, {found[len(hits) :].sum()}/{len(others)} others"
            )
        for i in np.argsort(-scores)[:3]:
            mark = "cold" if i < len(hits) else "    "
            print(f"    {scores[i]:.2f} {mark} {texts[i][:90]!r}")
    print(f"(topic {name!r}; default threshold {tagger.matcher.threshold:.2f})")


if __name__ == "__main__":
    main()
