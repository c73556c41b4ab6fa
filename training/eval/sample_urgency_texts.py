"""Draw the candidate texts of the urgency evaluation sets (`urgency_<lang>.jsonl`).

Texts come from the train and dev splits (never test) of customer-feedback datasets in
`../shared/data`. Two pools per language, drawn with a fixed seed after removing repeated texts and
keeping 3 to 80 words: texts containing a BROAD keyword (words around leaving, complaining, danger,
money and contact, deliberately wider than the cue lists of `cxnlp/data/urgency_cues.yaml`, so that
the set is not drawn by the matcher it tests) and negative-labeled texts without one (the hard
negatives: unhappy customers who need no urgent follow-up). Every candidate was then read and
labeled by hand; see README.md.

    python training/eval/sample_urgency_texts.py --out /tmp/urgency_candidates
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.text.normalize import normalize  # noqa: E402
from training.data import corpus_lines, drawn_row, read_jsonl, write_jsonl  # noqa: E402

DATA = REPO_ROOT / ".." / "shared" / "data"
SEED = 28
DATASETS = {
    "en": ["twitter_us_airline", "amazon_polarity_10k", "semeval2014_absa_restaurants_en",
           "semeval2016_absa_laptops_en", "uci_amazon_yelp_sentences", "yelp_absa_terms_pyabsa"],
    "fa": ["cafebazaar_bank_apps_rhatami", "cafebazaar_banking_apps", "snappfood",
           "snappfood_api_crawl_2022", "digikala_comments_tiny", "digikala_ut_ai_ca3",
           "digikala_zhpinkman"],
    "ar": ["omcca_jeeran", "masc", "ar_large_res1", "saudi_tourism_gmaps_reviews",
           "semeval2016_absa_ar_hotels_terms", "ar_large_res2"],
}  # fmt: skip
KEYWORDS = {
    "en": r"cancel|close my|never|again|switch|complain|report|lawyer|sue\b|sick|poison|hospital|"
    r"fire|danger|scam|fraud|stole|charged|call|contact|\bdm\b|help|respond|reply|asap|urgent|"
    r"refund|last time|back",
    "fa": r"دیگه|دیگر|هرگز|هیچ ?وقت|آخرین|اخرین|حساب|شکایت|پیگیری|جواب|پاسخ|تماس|پشتیبانی|"
    r"کلاه|دزد|کم شد|کسر|برنگشت|مسموم|حالم|سوسک|خطر|حذف|لغو|فوری|لطفا|عوض",
    "ar": r"اعود|أعود|ارجع|أرجع|اكرر|أكرر|آخر مر|اخر مر|الغاء|إلغاء|شكوى|اشتكي|أشتكي|حماية|تسمم|"
    r"حشر|صرصور|نصب|حرامي|سرق|احتيال|اتصل|تواصل|الرد|يرد|ساعد|مستشفى|غش|أبدا|ابدا|مستحيل",
}
# A second, smaller pool of words that more often go with an urgent text (still single words, not
# the cue patterns), drawn after the first so that about half of each set is urgent.
FOCUS = {
    "en": r"never|cancel|sick|call|contact|help|respond|reply|scam|fraud|lawyer|complain|switch|"
    r"hold|again|back",
    "fa": r"دیگه|هرگز|هیچ ?وقت|پیگیری|جواب|پاسخ|پشتیبانی|کم شد|کسر|برداشت|شکایت|کلاه|مسموم|"
    r"آخرین|اخرین|تماس",
    "ar": r"اعود|أعود|ارجع|أرجع|اكرر|أكرر|آخر مر|اخر مر|شكوى|تسمم|حشر|صرصور|نصب|حرامي|سرق|"
    r"احتيال|اتصل|الرد|يرد|مستحيل",
}
QUOTA = {"keyword": 130, "negative": 70, "focus": {"en": 160, "fa": 200, "ar": 130}}


def load(lang: str) -> list[dict]:
    rows, seen = [], set()
    for name in DATASETS[lang]:
        for line_no, text, row in corpus_lines(DATA / lang / f"{name}.jsonl"):
            if row.get("split") == "test" or text in seen or not 3 <= len(text.split()) <= 80:
                continue
            seen.add(text)
            rows.append(
                {**drawn_row(name, line_no, text, lang=lang), "source_label": row.get("label")}
            )
    return rows


def draw(
    rows: list[dict], lang: str, rng: random.Random, quota: dict
) -> tuple[list[dict], list[dict]]:
    """The candidates drawn from `rows` by `quota` (keyword, negative and focus pools), and the
    focus pool's rows left undrawn."""
    keyword = re.compile(KEYWORDS[lang], re.IGNORECASE)
    hits = [r for r in rows if keyword.search(r["text"])]
    negatives = [
        r for r in rows if r["source_label"] == "negative" and not keyword.search(r["text"])
    ]
    picked = rng.sample(hits, min(quota["keyword"], len(hits)))
    for r in picked:
        r["pool"] = "keyword"
    negs = rng.sample(negatives, min(quota["negative"], len(negatives)))
    for r in negs:
        r["pool"] = "negative"
    taken = {r["id"] for r in picked + negs}
    focus = re.compile(FOCUS[lang], re.IGNORECASE)
    pool = [r for r in hits if r["id"] not in taken and focus.search(r["text"])]
    more = rng.sample(pool, min(quota["focus"][lang], len(pool)))
    for r in more:
        r["pool"] = "focus"
    taken |= {r["id"] for r in more}
    return picked + negs + more, [r for r in pool if r["id"] not in taken]


def sample(lang: str, rng: random.Random) -> list[dict]:
    return draw(load(lang), lang, rng, QUOTA)[0]


def draw_unseen(
    lang: str,
    rng: random.Random,
    seen: set[str],
    quota: dict,
    topup: int,
    keep: Callable[[dict], bool] | None = None,
    topup_pattern: str | None = None,
) -> list[dict]:
    """`draw` over the pool's texts of `lang` whose normalized text is not in `seen` (and, given
    `keep`, for which `keep(row)` holds), then `topup` more of the rest at random (marked pool
    "focus"): the held-out samplers' draw. Given `topup_pattern`, the top-up is drawn only from
    the rest whose text it matches (case-insensitive) and is marked pool "dense"."""
    rows = [
        r
        for r in load(lang)
        if normalize(r["text"], lang) not in seen and (keep is None or keep(r))
    ]
    chosen, rest = draw(rows, lang, rng, quota)
    if topup_pattern is not None:
        dense = re.compile(topup_pattern, re.IGNORECASE)
        rest = [r for r in rest if dense.search(r["text"])]
    extra = rng.sample(rest, min(topup, len(rest)))
    for r in extra:
        r["pool"] = "focus" if topup_pattern is None else "dense"
    return chosen + extra


def browsed_files(lang: str, own: str) -> list[Path]:
    """The labeled or browsed files of `lang` whose texts a new urgency draw leaves out: every
    urgency set here and its second pass, the topic sets, `training/hard_cases` and
    `training/topic_labels`; files whose name holds `own` (the set being drawn) not included."""
    eval_dir = REPO_ROOT / "training" / "eval"
    files = sorted(eval_dir.glob(f"urgency_*{lang}.jsonl"))
    files += sorted(eval_dir.glob(f"topics_*{lang}.jsonl"))
    for folder in ("hard_cases", "topic_labels"):
        files += sorted((REPO_ROOT / "training" / folder).glob(f"*{lang}.jsonl"))
    return [f for f in files if own not in f.name]


def excluded_texts(lang: str, files: list[Path]) -> set[str]:
    """Normalized texts of `files` and of the test split of every pool dataset of `lang`."""
    seen = {normalize(r["text"], lang) for f in files for r in read_jsonl(f)}
    for name in DATASETS[lang]:
        for _, text, row in corpus_lines(DATA / lang / f"{name}.jsonl"):
            if row.get("split") == "test":
                seen.add(normalize(text, lang))
    return seen


def write_candidates(description: str, draw_one, seed: str) -> None:
    """The command line of a sampler: `--out DIR` gets `candidates_<lang>.jsonl`, each drawn by
    `draw_one(lang, rng)` with a generator seeded `f"{seed}-{lang}"`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for lang in DATASETS:
        rng = random.Random(f"{seed}-{lang}")
        write_jsonl(args.out / f"candidates_{lang}.jsonl", draw_one(lang, rng))


def main() -> None:
    write_candidates(__doc__.splitlines()[0], sample, str(SEED))


if __name__ == "__main__":
    main()


def md5_half(text: str, lang: str) -> str:
    """ "even" or "odd": the first hex digit of the md5 of a text's normalized form. heldout4 draws
    only even texts and train4 only odd ones, so the two sets cannot share a text."""
    import hashlib

    digit = hashlib.md5(normalize(text, lang).encode()).hexdigest()[0]
    return "even" if int(digit, 16) % 2 == 0 else "odd"
