"""The Arabic-script letters Persian and Arabic write differently, and every table built from them.

One set of letter facts; each table below is a documented choice of which of them to apply, because
the jobs differ: `normalize` rewrites Arabic text towards Arabic letters (and keeps Persian letters
in Persian text, which hazm handles); language identification compares words in one spelling
whichever keyboard typed them, so it folds towards Persian letters and must not erase the letters
that tell the two languages apart (ة, آ); fastText reads the text as `normalize` would write it;
and training's aspect-term lexicons match terms in one loose spelling.

>>> "كيف".translate(WORD_KEY_TABLE)
'کیف'
>>> "إلى".translate(ARABIC_TEXT_TABLE)
'الي'
"""

from __future__ import annotations

import re

ALEF = "\u0627"  # ا
ALEF_MADDA = "\u0622"  # آ: typical of Persian; Arabic normalisation folds it too
ALEF_VARIANTS = "\u0623\u0625\u0671"  # أ إ ٱ: hamza above, hamza below, wasla
ARABIC_YEH, PERSIAN_YEH, ALEF_MAKSURA = "\u064a", "\u06cc", "\u0649"  # ي ی ى
ARABIC_KAF, PERSIAN_KAF = "\u0643", "\u06a9"  # ك ک
TEH_MARBUTA, HEH = "\u0629", "\u0647"  # ة ه
TATWEEL = "\u0640"
ZWNJ = "\u200c"

# Letters only one of the two languages uses (measured on the labelled fa/ar sets; see langid).
PERSIAN_ONLY_LETTERS = "پچژگ" + PERSIAN_YEH + PERSIAN_KAF
# Letters of other languages written in Arabic script (Urdu, Pashto, Kurdish, Sindhi, Uyghur).
OTHER_ARABIC_SCRIPT_LETTERS = "ٹڈڑںھےۓښږځڅټډړۍېێۆڵڕەۇۈۋڤڭڻڦ"
# Arabic-script letters, as character-class ranges.
ARABIC_LETTER_RANGES = "\u0620-\u064a\u066e-\u06d3\u06d5\u06fa-\u06ff\u0750-\u077f"

# Combining marks, as character-class ranges: the harakat (fatha, damma, kasra, tanwin, shadda,
# sukun, ...) and the superscript alef, then the honorific and Quranic annotation marks.
HARAKAT = "\u064b-\u065f\u0670"
ARABIC_MARKS = "\u0610-\u061a" + HARAKAT + "\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed"
# Quranic signs that sit among the marks in Unicode (end of ayah, rub el hizb, sajdah).
QURANIC_SIGNS = "\u06dd\u06de\u06e9"

_ALEFS_TO_ALEF = {ch: ALEF for ch in ALEF_VARIANTS}
_TO_ARABIC_LETTERS = {ALEF_MAKSURA: ARABIC_YEH, PERSIAN_YEH: ARABIC_YEH, PERSIAN_KAF: ARABIC_KAF}
_TO_PERSIAN_LETTERS = {ARABIC_YEH: PERSIAN_YEH, ALEF_MAKSURA: PERSIAN_YEH, ARABIC_KAF: PERSIAN_KAF}

# normalize(lang="ar"): one alef, Arabic yeh and kaf, no tatweel, no ZWNJ (ة is kept: mapping it to
# ه would merge it with the pronoun suffix).
ARABIC_TEXT_TABLE = str.maketrans(
    {**_ALEFS_TO_ALEF, ALEF_MADDA: ALEF, **_TO_ARABIC_LETTERS, TATWEEL: None, ZWNJ: None}
)
ARABIC_TEXT_MARKS_RE = re.compile(f"[{ARABIC_MARKS}]")

# Language id compares words in Persian spelling, so Persian typed on an Arabic keyboard and
# normalised Arabic still match its word lists; آ is kept (typical of Persian).
WORD_KEY_TABLE = str.maketrans({**_TO_PERSIAN_LETTERS, **_ALEFS_TO_ALEF})
# Language id reads text as normalize() leaves it: marks, Quranic signs and tatweel dropped.
LANGID_MARKS_RE = re.compile(f"[{ARABIC_MARKS}{QURANIC_SIGNS}{TATWEEL}]")
# What fastText reads: alefs and alef maksura as Arabic normalisation writes them; ی and ک, which
# point to Persian, kept.
FASTTEXT_TABLE = str.maketrans({ALEF_MAKSURA: ARABIC_YEH, **_ALEFS_TO_ALEF, ALEF_MADDA: ALEF})

# Training's aspect-term lexicons: the loosest spelling (Persian letters, ة as ه, one alef, ZWNJ as
# a space), so that a term matches however a dataset wrote it.
TERM_TABLE = str.maketrans(
    {**_TO_PERSIAN_LETTERS, TEH_MARBUTA: HEH, **_ALEFS_TO_ALEF, ALEF_MADDA: ALEF, ZWNJ: " "}
)
TERM_MARKS_RE = re.compile(f"[{HARAKAT}{TATWEEL}]")
