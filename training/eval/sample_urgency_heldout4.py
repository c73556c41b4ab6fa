"""Draw the candidate texts of the FOURTH held-out urgency sets (`urgency_heldout4_<lang>.jsonl`).

The untouched test of the next urgency head and cue lists (heldout3 became a set to fit on). Same
datasets, splits (train and dev, never test), length limits, pools and quotas as
`sample_urgency_heldout3.py` (keyword 20, negative 10, focus 120, drawn by
`sample_urgency_texts.draw_unseen`), so that the sets are comparable; a new seed.

Left out, compared after `cxnlp.text.normalize.normalize` (`browsed_files`, `excluded_texts`): every
text of every other urgency set here (tuning, heldout, heldout2, heldout3 and their second passes, and
any `urgency_train4_*` file), of `training/hard_cases`, `training/topic_labels` and
`training/eval/topics_*`, and every text in the test split of a pool dataset; and, compared by
`text_key`, the same files' texts again (a line break inside a text escapes `normalize`: heldout3 drew
a hard case that way).

Disjoint from the fourth urgency TRAINING sets (`urgency_train4_<lang>.jsonl`, drawn at the same time
from the same pools) by construction: this draw keeps only texts whose `md5(normalize(text, lang))`
starts with an EVEN hex digit (`in_heldout4`), the train4 draw only odd ones. The candidates were
then read and labeled by hand before the cue matcher or any model was run on them; see README.md.

    python training/eval/sample_urgency_heldout4.py --out /tmp/urgency_heldout4_candidates
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.text.clean import text_key  # noqa: E402
from training.data import read_jsonl  # noqa: E402
from training.eval.sample_urgency_heldout3 import QUOTA  # noqa: E402
from training.eval.sample_urgency_texts import (  # noqa: E402
    browsed_files,
    draw_unseen,
    excluded_texts,
    md5_half,
    write_candidates,
)

SET = "heldout4"
SEED = 2031
# A second focus draw, made after the first 150 were read, where they held under 45 urgent texts (fa: 33 of
# 150); drawn after the others from the same generator, so the first draw is unchanged.
TOPUP = {"en": 0, "fa": 60, "ar": 0}


def in_heldout4(text: str, lang: str) -> bool:
    """Whether a text may be drawn for heldout4: the first hex digit of the md5 of its normalized
    text is even (train4 draws the odd ones)."""
    return md5_half(text, lang) == "even"


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
        keep=lambda r: in_heldout4(r["text"], lang) and text_key(r["text"]) not in keys,
    )


def main() -> None:
    write_candidates(__doc__.splitlines()[0], sample, f"{SEED}-{SET}")


if __name__ == "__main__":
    main()
