"""Draw the candidate texts of the fourth urgency TRAINING sets (`urgency_train4_<lang>.jsonl`).

A training set for the learned urgency head (`training/urgency_head.py`), not a test: the head needs
more labeled text, above all urgent texts in wordings the cue lists have not read. Same datasets,
splits (train and dev, never test), length limits and pools as `sample_urgency_texts.py` (a
broad-keyword pool, a negative-without-keyword pool, a focus pool), a new seed, quotas weighted to
the focus and keyword pools so that close to half of the texts are urgent.

Left out, compared after `cxnlp.text.normalize.normalize` (`browsed_files`, `excluded_texts`): every
text of every urgency set here (tuning, heldout, heldout2, heldout3 and their second passes, and any
`urgency_heldout4_*` file), of `training/hard_cases`, `training/topic_labels` and
`training/eval/topics_*`, and every text in the test split of a pool dataset; and, compared by
`text_key`, the same files' texts again (a line break inside a text escapes `normalize`).

Disjoint from the fourth held-out TEST sets (`urgency_heldout4_<lang>.jsonl`), drawn at the same time
from the same pools, by construction: this draw keeps only texts whose
`md5(normalize(text, lang))` starts with an ODD hex digit (`in_train4`), the heldout4 draw only even
ones. The candidates were then read and labeled by hand before the cue matcher or any model was run
on them; see README.md.

    python training/eval/sample_urgency_train4.py --out /tmp/urgency_train4_candidates
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.text.clean import text_key  # noqa: E402
from training.data import read_jsonl  # noqa: E402
from training.eval.sample_urgency_texts import (  # noqa: E402
    browsed_files,
    draw_unseen,
    excluded_texts,
    md5_half,
    write_candidates,
)

SET = "train4"
SEED = 3041
QUOTA = {"keyword": 25, "negative": 5, "focus": {"en": 170, "fa": 170, "ar": 170}}
# A second draw, made after the first 200 were read and labeled, where they held under 40% urgent
# (fa 38, en 63 of 200): drawn after the others from the same generator (so the first 200 are
# unchanged), from the rest of the focus pool whose text holds one of the focus words that were
# urgent about half the time or more in the earlier labeled sets (`DENSE`; Persian without
# `دیگه`, `پیگیری`, `تماس`, mostly bank-app bug reports; English without never / call / help /
# again / back / complain / switch). Marked pool "dense".
TOPUP = {"en": 40, "fa": 60, "ar": 0}
DENSE = {
    "fa": r"پاسخ|برداشت|هیچ ?وقت|پشتیبانی|کسر|آخرین|اخرین|جواب|هرگز|کلاه|شکایت|مسموم|کم شد",
    "en": r"cancel|sick|contact|respond|reply|scam|fraud|lawyer|hold",
    "ar": None,
}


def in_train4(text: str, lang: str) -> bool:
    """Whether a text may be drawn for train4: the first hex digit of the md5 of its normalized
    text is odd (heldout4 draws the even ones)."""
    return md5_half(text, lang) == "odd"


def sample(lang: str, rng: random.Random) -> list[dict]:
    files = browsed_files(lang, SET)
    seen = excluded_texts(lang, files)
    keys = {text_key(r["text"]) for f in files for r in read_jsonl(f)}
    return draw_unseen(
        lang,
        rng,
        seen,
        QUOTA,
        TOPUP[lang],
        keep=lambda r: in_train4(r["text"], lang) and text_key(r["text"]) not in keys,
        topup_pattern=DENSE[lang],
    )


def main() -> None:
    write_candidates(__doc__.splitlines()[0], sample, f"{SEED}-{SET}")


if __name__ == "__main__":
    main()
