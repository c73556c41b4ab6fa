"""Tests for cxnlp.text.normalize. The sentences are real rows of the labelled data sets (source in the
comment), copied in so that the tests do not need the data."""

from __future__ import annotations

import html
import re
import unicodedata

import pytest

from cxnlp.text.normalize import EMAIL_TOKEN, PHONE_TOKEN, URL_TOKEN, USER_TOKEN, normalize

# (lang, raw, expected normalize(raw, lang))
REAL = [
    # cafebazaar_bank_apps_rhatami: Arabic-keyboard ي/ك, hazm joins درحالی‌که
    ("fa", "بهم ميگه گوشيت روت هست درحالي كه نيس", "بهم میگه گوشیت روت هست درحالی\u200cکه نیس"),
    # deepsentipers: ي/ك, parentheses spacing, بی رقیب -> بی‌رقیب
    (
        "fa",
        "گوشي خوبيه(قوي و شکيل و زيبا و بي رقيب)البته تو تيپ وگروه خودش عاليه!",
        "گوشی خوبیه (قوی و شکیل و زیبا و بی\u200cرقیب) البته تو تیپ وگروه خودش عالیه!",
    ),
    # digikala_comments_tiny: elongation, newlines, ها with ZWNJ
    (
        "fa",
        "خیلییییی خوب بود\nواسه بچه های 5 تا 10 ساله خوبه\nجذاب و آموزنده\nنسبت به قیمتش عالیه",
        "خیلیی خوب بود\nواسه بچه\u200cهای 5 تا 10 ساله خوبه\nجذاب و آموزنده\nنسبت به قیمتش عالیه",
    ),
    # digikala_ut_ai_ca3: tanween removed, می کنم -> می‌کنم
    (
        "fa",
        "در کل کاملاً این فلشو به دوستان پیشنهاد می کنم",
        "در کل کاملا این فلشو به دوستان پیشنهاد می\u200cکنم",
    ),
    # pars_absa_test: Persian digit inside a Latin model name
    (
        "fa",
        "تفاوت زیادی با j۵prime نداره و قیمتش بنظر م زیاده ولی درکل گوشی خوبیه",
        "تفاوت زیادی با j5prime نداره و قیمتش بنظر م زیاده ولی درکل گوشی خوبیه",
    ),
    # parsinlu_sentiment_movie: URL, repeated ؟
    (
        "fa",
        "این آهنگ رضا بهرام https://bamiseda.ir/?p=10012  همونیه که تو دل خونده میشه؟؟؟؟؟",
        "این آهنگ رضا بهرام URL همونیه که تو دل خونده میشه؟؟؟",
    ),
    # cafebazaar_bank_apps_rhatami: ZWNJ and emoji kept
    (
        "fa",
        "فقط وقتایی پول دارم خوب کار می\u200cکنه بقیه وقتا نه 😁",
        "فقط وقتایی پول دارم خوب کار می\u200cکنه بقیه وقتا نه 😁",
    ),
    # persian_instatext_3class: a Persian-digit mobile number
    (
        "fa",
        "بامن حتماحتماحتماتماس بگیرکاواجب دارم ۰۹۱۴۷۳۴۹۴۲۳",
        "بامن حتماحتماحتماتماس بگیرکاواجب دارم PHONE",
    ),
    # semeval2017_task4a_ar: tanween, hamza alefs, ى, emoji
    (
        "ar",
        'كنت أعتقد أن خدمة "غوغل ترجمة" سيئة جدًا إلى أن جربت "بينغ". ملك جمال الترجمة #غوغل 😅',
        'كنت اعتقد ان خدمة "غوغل ترجمة" سيئة جدا الي ان جربت "بينغ". ملك جمال الترجمة #غوغل 😅',
    ),
    # omcca_jeeran: tatweel, madda alefs (آلقآعة)
    (
        "ar",
        "أنا رحت لهـ آلقآعة عآدية جداً وحتى ديكورهآ عآدي مافيهآ شي مميز",
        "انا رحت له القاعة عادية جدا وحتي ديكورها عادي مافيها شي مميز",
    ),
    # omcca_jeeran: elongations cut to two letters
    (
        "ar",
        "ونظافة لمحل تمااااام وسرعة الخدمة جيدة جدددااااا ..",
        "ونظافة لمحل تماام وسرعة الخدمة جيدة جدداا ..",
    ),
    # ar_large_res1: Arabic-Indic digits and percent sign
    (
        "ar",
        "الشغل الطعم  النظافة كل شي ١٠٠٪ حتى اسعاره مقبولة",
        "الشغل الطعم النظافة كل شي 100% حتي اسعاره مقبولة",
    ),
    # semeval2017_task4a_ar: presentation forms (NFKC) and tatweel
    (
        "ar",
        "ﻟﻮ ﺇﻧﻘﻄﻌـــــﺖ ﺍﻷﻧﺘﺮﻧﻴــﺖ ﻓﻲ ﺍﻟﻮﻃـــﻦ ﺍﻟﻌﺮﺑـــﻲ",
        "لو انقطعت الانترنيت في الوطن العربي",
    ),
    # astd: a Saudi mobile number
    (
        "ar",
        "لطلب الخدمة 0559000899 أتصل #اماراتي",
        "لطلب الخدمة PHONE اتصل #اماراتي",
    ),
    # semeval2013_2016_task4a_en: URL and mention
    (
        "en",
        "How Donald Trump may make Ted Cruz president http://t.co/EgsdU9FZkl via @examinercom",
        "How Donald Trump may make Ted Cruz president URL via @user",
    ),
    # twitter_us_airline: elongation and !!!
    (
        "en",
        "@USAirways Can someone please answer my call. I have been waaaaaaiting!!!",
        "@user Can someone please answer my call. I have been waaiting!!!",
    ),
    # twitter_us_airline: emoji kept, case kept
    (
        "en",
        "@AmericanAir thanks 😩. idk if it still Late Flight but I hope I get it tonight 😭",
        "@user thanks 😩. idk if it still Late Flight but I hope I get it tonight 😭",
    ),
    # semeval2013_2016_task4a_en: phone number, but "2nd" and "PAUL" kept
    (
        "en",
        "Want em? Call 313-298-1043 after the 2nd Paul/Beatles song. It WILL happen.",
        "Want em? Call PHONE after the 2nd Paul/Beatles song. It WILL happen.",
    ),
    # twitter_us_airline: curly quotes, mention glued to a quote
    (
        "en",
        "😳 LOLOLOLOLOL “@JetBlue: Our fleet's on fleek. http://t.co/YXSwFq9tGP”",
        '😳 LOLOLOLOLOL "@user: Our fleet\'s on fleek. URL"',
    ),
    # ar_large_res2 (an English review): CRLF and a run of dots
    (
        "en",
        "Tried and tested and always great \r\nI have been eating in McSwiggins since it opened ........a",
        "Tried and tested and always great\nI have been eating in McSwiggins since it opened ...a",
    ),
    # ar_large_res1 (an English review): HTML entity
    (
        "en",
        "911 restaurant is a quality &amp; hygenic food",
        "911 restaurant is a quality & hygenic food",
    ),
]
REAL_IDS = [f"{lang}-{i}" for i, (lang, _, _) in enumerate(REAL)]


@pytest.mark.parametrize(("lang", "raw", "expected"), REAL, ids=REAL_IDS)
def test_normalize_real_sentence_gives_expected_text(lang: str, raw: str, expected: str) -> None:
    assert normalize(raw, lang) == expected


@pytest.mark.parametrize(("lang", "raw", "expected"), REAL, ids=REAL_IDS)
def test_normalize_detected_language_gives_same_text(lang: str, raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize("lang", [None, "fa", "ar", "en", "other"])
@pytest.mark.parametrize("raw", [raw for _, raw, _ in REAL], ids=REAL_IDS)
def test_normalize_is_idempotent(raw: str, lang: str | None) -> None:
    once = normalize(raw, lang)
    assert normalize(once, lang) == once


# --- meaning preservation -------------------------------------------------------------------
_LETTER_MAP = str.maketrans("يكىأإآٱةۀ", "یکیااااهه")
_MARKS_RE = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_CONTACT_RE = re.compile(r"https?://\S+|@\w+|\b(?:URL|PHONE|EMAIL)\b")
_EMOJI_RE = re.compile("[\u2600-\u27bf\U0001f000-\U0001faff]")


def _letters(text: str) -> str:
    """Letters only, in order, after the mappings normalize() documents (case kept)."""
    text = _CONTACT_RE.sub(" ", unicodedata.normalize("NFKC", html.unescape(text)))
    text = _MARKS_RE.sub("", text).translate(_LETTER_MAP)
    text = re.sub(r"([^\W\d_])\1{2,}", r"\1\1", text)
    return "".join(ch for ch in text if ch.isalpha())


@pytest.mark.parametrize(("lang", "raw", "expected"), REAL, ids=REAL_IDS)
def test_normalize_keeps_every_letter_and_emoji(lang: str, raw: str, expected: str) -> None:
    out = normalize(raw)
    assert _letters(out) == _letters(raw)
    assert set(_EMOJI_RE.findall(out)) == set(_EMOJI_RE.findall(raw))


# --- placeholders -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mail me at sara.k+cx@mail.example.com please", f"mail me at {EMAIL_TOKEN} please"),
        ("see www.digikala.com/product/123.", f"see {URL_TOKEN}."),
        ("ثبت شکایت: https://snappfood.ir/x?id=5 لطفا", f"ثبت شکایت: {URL_TOKEN} لطفا"),
        ("جديدةhttps://t.co/lonD0nImA0", f"جديدة {URL_TOKEN}"),
        ("@a_b@c2 thanks", f"{USER_TOKEN} thanks"),
        ("هولاء@NBA4ARAB", f"هولاء {USER_TOKEN}"),
        ("تماس با +98 912 123 4567 بگیرید", f"تماس با {PHONE_TOKEN} بگیرید"),
        ("tel: 021-88776655", f"tel: {PHONE_TOKEN}"),
        ("اغراض0569339790#جدة", f"اغراض {PHONE_TOKEN}#جدة"),
        ("call (555) 123-4567 now", f"call {PHONE_TOKEN} now"),
    ],
)
def test_normalize_replaces_contacts_with_placeholders(raw: str, expected: str) -> None:
    assert normalize(raw, "other") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "price 1,250,000 and 12.500.000",
        "order 123456789012",  # no leading 0 or +: an order number, not a phone
        "card 6037 9971 2345 6789",
        "date 2024-02-28 1402/05/12 at 10:30",
        "0.5 and 150 200 1000",
        "sale -25% on the S21",
    ],
)
def test_normalize_keeps_prices_dates_and_order_numbers(raw: str) -> None:
    assert normalize(raw, "en") == raw


# --- language steps -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lang", "raw", "expected"),
    [
        ("fa", "گوشی Galaxy S21 و iPhone13 و 128GB", "گوشی Galaxy S21 و iPhone13 و 128GB"),
        ("fa", "قیمت ۱۲٫۵٪ کمتر", "قیمت 12.5% کمتر"),
        ("ar", "السعر ٣٥٫٥ ريال", "السعر 35.5 ريال"),
        ("en", "Part III of Final Fantasy XIII", "Part III of Final Fantasy XIII"),
        ("en", "Sooooo gooood", "Soo good"),
        ("fa", "کتاب ها رو خریدم", "کتاب\u200cها رو خریدم"),
        ("ar", "ذهبتُ إلى المكتبة، ووجدتُ كتاباً", "ذهبت الي المكتبة، ووجدت كتابا"),
        ("ar", "كیف حالک", "كيف حالك"),  # Persian ی/ک typed in Arabic text
    ],
)
def test_normalize_language_step_gives_expected_text(lang: str, raw: str, expected: str) -> None:
    assert normalize(raw, lang) == expected


@pytest.mark.parametrize("lang", ["fa", "ar", "en", "other"])
@pytest.mark.parametrize(
    "emoji", ["😍", "👍🏽", "❤️", "👨\u200d👩\u200d👧", "‼️", "™", "ℹ️", "🇮🇷", "🈁"]
)
def test_normalize_keeps_emoji(lang: str, emoji: str) -> None:
    assert normalize(f"ok {emoji} ok", lang) == f"ok {emoji} ok"


@pytest.mark.parametrize("lang", ["fa", "ar", "en", "other"])
def test_normalize_cuts_runs_of_four_identical_emoji_to_three(lang: str) -> None:
    assert normalize("خوب 😂😂😂😂😂😂", lang).endswith(" 😂😂😂")


@pytest.mark.parametrize("lang", ["fa", "ar", "en", "other"])
def test_normalize_tidies_whitespace_and_invisible_chars(lang: str) -> None:
    raw = "\ufeff  a\u200b\tb \u200e c\x07\r\n\r\n\n  d\u00a0e  "
    assert normalize(raw, lang) == "a b c\nd e"


def test_normalize_persian_keeps_zwnj_inside_words_only() -> None:
    assert normalize("\u200cمی\u200c\u200cخواهم \u200cبروم\u200c", "fa") == "می\u200cخواهم بروم"


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_normalize_drops_zwnj_outside_persian(lang: str) -> None:
    assert "\u200c" not in normalize("ab\u200ccd", lang)


def test_normalize_other_keeps_text_in_other_languages() -> None:
    assert normalize("Très bonne crêperie!!!!!", "other") == "Très bonne crêperie!!!"


@pytest.mark.parametrize("raw", ["", "   ", "\u200c", "\u200b\ufeff"])
def test_normalize_blank_text_gives_empty_string(raw: str) -> None:
    assert normalize(raw) == ""


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["de", "FA", "persian", ""])
def test_normalize_rejects_unknown_lang(lang: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported lang .*'fa', 'ar', 'en', 'other'"):
        normalize("text", lang)


def test_normalize_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="normalize expects a str, got int"):
        normalize(42, "en")  # type: ignore[arg-type]
