"""How much topic signal the shared corpus gives once its labels are mapped onto the taxonomy.

Usage (from the repository root)::

    .venv/bin/python benchmarks/topic_coverage.py [DATA_DIR] [--mapping FILE] [--unmapped N]
        [--commercial-only] [--json counts.json]

Prints, per dataset and split: rows, rows with at least one mapped topic, and mentions per topic
as ``total (positive/negative/neutral/mixed)``; with ``--unmapped N`` also the N most frequent
source labels that gave no topic (those the mapping does not know are marked ``?``). DATA_DIR
defaults to ``../shared/data`` relative to the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.topics.taxonomy import TOPICS  # noqa: E402
from training.topic_data import (  # noqa: E402
    TOPIC_POLARITIES,
    load_mapping,
    load_topic_corpus,
)

SPLIT_ORDER = ("train", "dev", "test")


def coverage(corpus) -> dict:
    """Counts per dataset and split: rows, rows with a topic, and topic x polarity mentions."""
    counts: dict = {}
    for (dataset, split), part in corpus.groupby(["dataset", "split"], sort=False):
        entry = counts.setdefault(dataset, {"lang": part["lang"].iat[0], "splits": {}})
        entry["partial"] = bool(part["partial"].iat[0])
        entry["scope"] = list(part["scope"].iat[0])
        entry["polarity_source"] = part["polarity_source"].iat[0]
        mentions = Counter((t["topic"], t["polarity"]) for topics in part["topics"] for t in topics)
        entry["splits"][split] = {
            "rows": len(part),
            "rows_with_topic": int(part["topics"].map(bool).sum()),
            "topics": {
                topic: {p: mentions[(topic, p)] for p in TOPIC_POLARITIES}
                for topic in TOPICS
                if any(mentions[(topic, p)] for p in TOPIC_POLARITIES)
            },
        }
    return counts


def print_counts(counts: dict) -> None:
    for dataset, entry in counts.items():
        kind = "partial" if entry["partial"] else f"complete within {entry['scope']}"
        print(f"\n== {dataset} ({entry['lang']}; {kind}; polarity from {entry['polarity_source']})")
        splits = [s for s in SPLIT_ORDER if s in entry["splits"]]
        print(f"  {'':18}" + "".join(f"{s:>26}" for s in splits))
        for key in ("rows", "rows_with_topic"):
            cells = "".join(f"{entry['splits'][s][key]:>26}" for s in splits)
            print(f"  {key:18}{cells}")
        for topic in TOPICS:
            cells = []
            for split in splits:
                found = entry["splits"][split]["topics"].get(topic)
                if not found:
                    cells.append(f"{'-':>26}")
                    continue
                detail = "/".join(str(found[p]) for p in ("positive", "negative", "neutral"))
                detail += f"/{found['mixed']}"
                cells.append(f"{sum(found.values()):>8} ({detail})".rjust(26))
            if any(c.strip() != "-" for c in cells):
                print(f"  {topic:18}" + "".join(cells))
    print("\ncells: mentions (positive/negative/neutral/mixed)")


def print_unmapped(corpus, mapping_path: str | None, limit: int) -> None:
    mappings = load_mapping(mapping_path)
    print(f"\nmost frequent source labels with no topic (? = not in the mapping), top {limit}:")
    for dataset, part in corpus.groupby("dataset", sort=False):
        found = Counter(label for labels in part["unmapped"] for label in labels)
        if not found:
            continue
        mapping = mappings[dataset]
        shown = ", ".join(
            f"{label}{'?' if mapping.resolve(label) is None else ''} {n}"
            for label, n in found.most_common(limit)
        )
        print(f"  {dataset} ({sum(found.values())} mentions): {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default=str(REPO_ROOT / ".." / "shared" / "data"))
    parser.add_argument("--mapping", default=None, help="mapping YAML (default: the shipped one)")
    parser.add_argument("--unmapped", type=int, default=0, help="show N unmapped labels each")
    parser.add_argument("--commercial-only", action="store_true")
    parser.add_argument("--json", default=None, help="also write the counts to this file")
    args = parser.parse_args()

    corpus = load_topic_corpus(args.data_dir, args.mapping, commercial_only=args.commercial_only)
    counts = coverage(corpus)
    print_counts(counts)
    if args.unmapped:
        print_unmapped(corpus, args.mapping, args.unmapped)
    if args.json:
        Path(args.json).write_text(json.dumps(counts, indent=2, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
