"""Draw the candidate texts of the HELD-OUT urgency sets (`urgency_heldout_<lang>.jsonl`).

Same datasets, splits (train and dev, never test), length limits and pools as
`sample_urgency_texts.py` (a broad-keyword pool, a negative-without-keyword pool, a focus pool), but
another seed and smaller quotas, and every text already in `urgency_<lang>.jsonl` (the sets the cue
lists were tuned on) left out, compared after `cxnlp.text.normalize.normalize`. The candidates were
then read and labeled by hand without running the cue matcher or any model; see README.md.

    python training/eval/sample_urgency_heldout.py --out /tmp/urgency_heldout_candidates
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.text.normalize import normalize  # noqa: E402
from training.eval.sample_urgency_texts import draw_unseen, write_candidates  # noqa: E402

EVAL = Path(__file__).resolve().parent
SEED = 2028
QUOTA = {"keyword": 25, "negative": 12, "focus": {"en": 30, "fa": 36, "ar": 30}}
# A second focus draw, made after the first was read, where it held under 20 urgent texts (en, fa);
# drawn after the others from the same generator, so the first draw is unchanged.
TOPUP = {"en": 15, "fa": 15, "ar": 0}


def tuned_texts(lang: str) -> set[str]:
    """The normalized texts of the set the cue lists were tuned on."""
    with (EVAL / f"urgency_{lang}.jsonl").open(encoding="utf-8") as handle:
        return {normalize(json.loads(line)["text"], lang) for line in handle if line.strip()}


def sample(lang: str, rng: random.Random) -> list[dict]:
    seen = tuned_texts(lang)
    return draw_unseen(lang, rng, seen, QUOTA, TOPUP[lang])


def main() -> None:
    write_candidates(__doc__.splitlines()[0], sample, f"{SEED}-heldout")


if __name__ == "__main__":
    main()
