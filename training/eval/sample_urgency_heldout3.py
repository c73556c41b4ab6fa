"""Draw the candidate texts of the THIRD held-out urgency sets (`urgency_heldout3_<lang>.jsonl`).

Drawn after the cue lists were widened on the second held-out sets (which were scored once and are tuning
sets now). Same datasets, splits (train and dev, never test), length limits and pools as
`sample_urgency_texts.py` (a broad-keyword pool, a negative-without-keyword pool, a focus pool), a new seed,
quotas weighted to the focus pool so that a third to a half of the texts are urgent. Left out, compared after
`cxnlp.text.normalize.normalize`: every text of an urgency set already here (the tuning sets, the first and
second held-out sets and their second passes), of `training/hard_cases/*.jsonl`,
`training/topic_labels/*.jsonl` and `training/eval/topics_*.jsonl`, and every text that occurs in the test
split of a pool dataset. The candidates were then read and labeled by hand before the cue matcher or any
model was run on them; see README.md.

    python training/eval/sample_urgency_heldout3.py --out /tmp/urgency_heldout3_candidates
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from training.eval.sample_urgency_texts import (  # noqa: E402
    browsed_files,
    draw_unseen,
    excluded_texts,
    write_candidates,
)

SET = "heldout3"
SEED = 2030
QUOTA = {"keyword": 20, "negative": 10, "focus": {"en": 120, "fa": 120, "ar": 120}}
# A second focus draw, made after the first 150 were read, where they held under a third urgent (fa: 35 of
# 150); drawn after the others from the same generator, so the first draw is unchanged.
TOPUP = {"en": 0, "fa": 30, "ar": 0}


# Sets drawn after this one: their files are not left out, so that the draw is the same as when it was made.
DRAWN_LATER = ("heldout4", "train4")


def excluded_files(lang: str) -> list[Path]:
    """The labeled or browsed files whose texts a heldout3 draw must not contain: those there were
    when it was drawn (`browsed_files`, less the sets drawn later)."""
    return [f for f in browsed_files(lang, SET) if not any(s in f.name for s in DRAWN_LATER)]


def sample(lang: str, rng: random.Random) -> list[dict]:
    seen = excluded_texts(lang, excluded_files(lang))
    return draw_unseen(lang, rng, seen, QUOTA, TOPUP[lang])


def main() -> None:
    write_candidates(__doc__.splitlines()[0], sample, f"{SEED}-{SET}")


if __name__ == "__main__":
    main()
