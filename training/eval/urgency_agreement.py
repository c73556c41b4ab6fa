"""Agreement between the held-out or train4 urgency labels and a second pass over about 10%.

python training/eval/urgency_agreement.py [--set heldout|heldout2|heldout3|heldout4|train4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.labels import LANGS  # noqa: E402
from training.data import read_jsonl  # noqa: E402
from training.topic_labels.agreement import topic_kappa  # noqa: E402

EVAL = Path(__file__).resolve().parent
SETS = ("heldout", "heldout2", "heldout3", "heldout4", "train4")


def agreement(lang: str, sets: Path = EVAL, which: str = "heldout") -> dict[str, float]:
    """Texts compared, share of equal labels and Cohen's kappa (1.0 when the passes are equal)."""
    first = {r["id"]: bool(r["urgent"]) for r in read_jsonl(sets / f"urgency_{which}_{lang}.jsonl")}
    second = list(read_jsonl(sets / f"urgency_{which}_second_pass_{lang}.jsonl"))
    a = [first[r["id"]] for r in second]
    b = [bool(r["urgent"]) for r in second]
    equal = sum(x == y for x, y in zip(a, b, strict=True))
    return {"n": len(b), "agreement": equal / len(b), "kappa": topic_kappa(a, b),
            "urgent_first": sum(a), "urgent_second": sum(b)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=SETS, default="heldout", dest="which")
    args = parser.parse_args()
    print(f"set: {args.which}")
    print("lang  n  agreement  kappa  urgent(1st/2nd)")
    for lang in LANGS:
        m = agreement(lang, which=args.which)
        print(f"{lang:4} {m['n']:2}  {m['agreement']:9.3f}  {m['kappa']:5.2f}  "
              f"{m['urgent_first']}/{m['urgent_second']}")  # fmt: skip


if __name__ == "__main__":
    main()
