"""Draw the texts of the team's topic training set (issue 27), reproducibly, from the shared corpus.

Usage (from the repository root)::

    python training/topic_labels/sample.py [--data-dir ../shared/data]

Writes `training/topic_labels/unlabeled_<lang>.jsonl`, one {id, dataset, domain, split, text} line per
text, before labelling; `id` is `<dataset>:<line>` (the 0-based line of the source file). Texts come
from the `train` and `dev` splits of every dataset of the language (tweets and social posts with no
aspect included), de-duplicated, 3 to 60 words, never a text of a hand-labeled evaluation set under
`training/eval/` (the multi-domain test half stays untouched). `split` (train / dev, about 80 / 20) is
assigned in draw order. Every dataset of a language gets a share of `PER_LANG` by its domain:
customer reviews weigh three times a tweet set, as the product reads mostly reviews.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.labels import LANGS  # noqa: E402
from training.data import corpus_lines, dataset_catalog, drawn_row, text_key, write_jsonl  # noqa: E402
from training.topic_data import topic_set_keys  # noqa: E402

SEED = 27  # the topics issue
PER_LANG = 1100
MIN_WORDS, MAX_WORDS = 3, 60
DOMAIN_WEIGHT = {"review": 3.0, "tweet": 1.0, "other": 1.0}
# Tweets to a company's customer service are customer feedback too.
DATASET_WEIGHT = {"twitter_us_airline": 4.0}
OUT_DIR = Path(__file__).resolve().parent


def quotas(lang: str, data_dir: Path) -> dict[str, int]:
    """Texts per dataset: PER_LANG split by domain weight, over the datasets present and trainable."""
    infos = [
        info
        for info in dataset_catalog().values()
        if info.lang == lang
        and not info.eval_only
        and (data_dir / lang / f"{info.name}.jsonl").exists()
    ]
    weights = {
        info.name: DATASET_WEIGHT.get(info.name, DOMAIN_WEIGHT.get(info.domain, 1.0))
        for info in infos
    }
    total = sum(weights.values())
    out = {name: int(round(PER_LANG * w / total)) for name, w in sorted(weights.items())}
    return out


def _pool(data_dir: Path, lang: str, dataset: str, rng: random.Random) -> list[tuple[int, str]]:
    pool = []
    for number, text, row in corpus_lines(data_dir / lang / f"{dataset}.jsonl"):
        if row.get("split") not in ("train", "dev"):
            continue
        if not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            continue
        pool.append((number, text))
    rng.shuffle(pool)
    return pool


def sample(data_dir: Path, lang: str) -> list[dict[str, str]]:
    """Each dataset's quota; what a small dataset cannot fill goes to the others, in turn."""
    rng = random.Random(SEED)
    seen = topic_set_keys()  # every hand-labeled evaluation set: never drawn for training
    catalog = dataset_catalog()
    want = quotas(lang, data_dir)
    pools = {name: _pool(data_dir, lang, name, rng) for name in want}
    taken: dict[str, list[tuple[int, str]]] = {name: [] for name in want}

    def take(name: str, n: int) -> int:
        got = 0
        while got < n and pools[name]:
            number, text = pools[name].pop(0)
            if text_key(text) in seen:
                continue
            seen.add(text_key(text))
            taken[name].append((number, text))
            got += 1
        return got

    short = sum(want[name] - take(name, want[name]) for name in want)
    while short > 0 and any(pools.values()):
        for name in sorted(want, key=lambda n: -want[n]):
            if short > 0 and take(name, 1):
                short -= 1
    chosen = []
    for name, rows in taken.items():
        for index, (number, text) in enumerate(rows):
            split = "dev" if index % 5 == 4 else "train"
            chosen.append(drawn_row(name, number, text, domain=catalog[name].domain, split=split))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--out-dir", default=str(OUT_DIR))
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        rows = sample(Path(args.data_dir), lang)
        write_jsonl(out / f"unlabeled_{lang}.jsonl", rows)
        print(f"{lang}: {len(rows)} texts")


if __name__ == "__main__":
    main()
