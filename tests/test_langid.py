"""Tests for cxnlp.text.langid. Sentences marked with a source are real rows of the labelled data sets,
copied in so that the tests do not need the data; the other-language ones are written here."""

from __future__ import annotations

import pytest

import cxnlp.text.langid as langid
from cxnlp.labels import LANGS
from cxnlp.text.langid import OTHER, detect_language, detect_languages
from cxnlp.text.normalize import EMAIL_TOKEN, PHONE_TOKEN, URL_TOKEN, USER_TOKEN, normalize

REAL = {
    "fa": [
        "همه ساندویچ‌ها سرد بود متاسفانه در صورتی که فاصله تا رستوران کمتر از ۵ دقیقه است.",  # snappfood
        "برنامه خیلی کند عمل میکنه اینجوری‌نبود",  # cafebazaar_bank_apps_rhatami
        # Arabic-keyboard Persian, which fastText alone calls Arabic:
        "سريع باكيفيت مشتري مدار خوشمزه عالي",  # snappfood_api_crawl_2022 (fastText: ar 0.96)
        "تحويل به موقع\nكيفيت مناسب",  # snappfood_api_crawl_2022 (fastText: ar 0.98)
        "ولي با همه اين حرفها خيلي عاليه و ارزش خريدنش رو حتما داره.",  # deepsentipers
        "ﻋﺠﺐ اﺩﻡ ﺑﻴﺸﻌﻮﺭﻱ ﺑﻮﺩ ﻫﻤﻴﻦ ﻫﺎ ﻫﺴﺘﻦ ﻛﻪ ﻛﺎﺭﻣﻮﻥ ﻛﺸﻴﺪﻩ ﺑﻪ اﻳﻨﺠﺎ",  # persian_instatext_3class
        "به نظر من اين مدل بهتره Motorola Digital Photo Frame MF810",  # sentipers_user_reviews
        "عالیع",  # cafebazaar_bank_apps_rhatami (fastText: ur)
        "مرغش کم بود",  # snappfood_api_crawl_2022 (fastText: ar)
        "تشکرازبرنامه\u200cخوب\u200cوعالیتون👑👌",  # cafebazaar_bank_apps_rhatami
    ],
    "ar": [
        "كله رائع بجد ربنا يكرمك",  # ajgt
        "ممتاز جدا",  # ar_large_res1 (fastText: fa)
        "رخيص و نظيف",  # semeval2016_absa_ar_hotels_terms (fastText: fa)
        "روعه سندوتشاتهم لذيذه",  # ar_large_res1 (fastText: fa)
        "ﻟﻮ ﺇﻧﻘﻄﻌـــــﺖ ﺍﻷﻧﺘﺮﻧﻴــﺖ ﻓﻲ ﺍﻟﻮﻃـــﻦ ﺍﻟﻌﺮﺑـــﻲ",  # semeval2017_task4a_ar (fastText: fi)
        "لم أتصور أن أضيع مثل هذا الوفت فى قرأه كتاب تافه عقيم لم يضيف لى شىء فى اى شىء",  # haad
        "شجرة عيد الميلاد ، رمز الحياة و النور#kronfol #ilovekronfol #lebanon #christmas "
        "https://t.co/ZnORyTaCkG",  # arsarcasm_v2: English hashtags and a URL
        "مررررررررره جيد وجلستو روعه وخدمتو حلوه والاكل يمممممممممممممممي لزيز",  # omcca_jeeran
        "مع فيدرر يا آجا والكبار 😍 https://t.co/hrBeHbkBNu",  # arsarcasm_v2
    ],
    "en": [
        "This computer is absolutely AMAZING!!!",  # semeval2016_absa_laptops_en
        "@VirginAmerica I didn't today... Must mean I need to take another trip!",  # airline
        "I love my macbook pro!",  # semeval2016_absa_laptops_en (fastText: it)
        "Great price, too!",  # uci_amazon_yelp_sentences (fastText: it)
        "10 plus hours of battery...",  # semeval2016_absa_laptops_en (fastText: fr)
        "The phone gets EXTREMELY HOT!",  # uci_amazon_yelp_sentences
        "@SouthwestAir ok, gotcha! ✈️😃👍",  # twitter_us_airline
        "Worth a visit.",  # semeval2014_absa_restaurants_en
        "The delivery guy was great, خیلی ممنون to the whole team",  # English with Persian words
    ],
}
CASES = [(lang, text) for lang, texts in REAL.items() for text in texts]

OTHER_LANGUAGES = [
    "Le service était vraiment excellent, je recommande ce restaurant à tous mes amis.",
    "La comida estaba fría y el camarero fue muy grosero con nosotros.",
    "Das Essen war kalt und der Kellner war sehr unfreundlich.",
    "Ürün çok güzel, hızlı kargo için teşekkürler.",
    "Pelayanannya sangat bagus dan makanannya enak sekali.",
    "O produto chegou quebrado e ninguém respondeu minhas mensagens.",
    "یہ فون بہت اچھا ہے، میں نے کل خریدا تھا اور بیٹری بھی ٹھیک ہے۔",  # Urdu
    "دا ډېر ښه رستورانت دی، خواړه یې خوندور دي.",  # Pashto (fastText lite: azb/fa)
    "ئەم خواردنە زۆر خۆشە و نرخەکەی گونجاوە.",  # Sorani Kurdish
    "Обслуживание было ужасным, еда холодная.",
    "服务很好，菜也很好吃。",
    "השירות היה מצוין והאוכל טעים מאוד.",
    "खाना बहुत अच्छा था और सेवा भी तेज़ थी।",
]
NO_LETTERS = ["", "   ", "😂😂 100", "۴و۵", "1238", "A+", "👍🏻👍🏻👍🏻", "!!!", "5/5", "\u200c"]


def test_supported_langs_are_fa_ar_en() -> None:
    assert LANGS == ("fa", "ar", "en")
    assert OTHER == "other"


@pytest.mark.parametrize(("lang", "text"), CASES)
def test_detect_language_real_text(lang: str, text: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize("text", OTHER_LANGUAGES)
def test_detect_language_other_language_gives_other(text: str) -> None:
    assert detect_language(text) == OTHER


@pytest.mark.parametrize("text", NO_LETTERS)
def test_detect_language_text_without_letters_gives_other(text: str) -> None:
    assert detect_language(text) == OTHER


def test_detect_language_placeholders_alone_give_other() -> None:
    text = f"{URL_TOKEN} {USER_TOKEN} {EMAIL_TOKEN} {PHONE_TOKEN}"
    assert detect_language(text) == OTHER


@pytest.mark.parametrize(("lang", "text"), CASES)
def test_detect_language_unchanged_by_normalize(lang: str, text: str) -> None:
    assert detect_language(normalize(text)) == detect_language(text)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("fa", "این گوشی خیلی خوبه و کیفیتش عالیه"),
        ("ar", "الخدمة ممتازة والمكان نظيف جدا"),
        ("en", "the food was great and the staff were really friendly"),
        (OTHER, "😍😍😍"),
    ],
)
def test_detect_language_skips_fasttext_when_evidence_decides(
    lang: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("fastText should not be called")

    monkeypatch.setattr(langid, "_fasttext", fail)
    assert detect_language(text) == lang


@pytest.mark.parametrize("text", ["مناسب", "تف", "lol", "Dell rocks"])
def test_detect_language_asks_fasttext_without_evidence(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = langid._fasttext

    def spy(line: str, k: int = 10) -> dict[str, float]:
        calls.append(line)
        return real(line, k)

    monkeypatch.setattr(langid, "_fasttext", spy)
    detect_language(text)
    assert calls, "fastText should break the tie"


def test_detect_languages_matches_detect_language() -> None:
    texts = [text for _, text in CASES] + OTHER_LANGUAGES + NO_LETTERS
    assert detect_languages(texts) == [detect_language(t) for t in texts]


def test_detect_languages_empty_list_gives_empty_list() -> None:
    assert detect_languages([]) == []


def test_detect_language_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="detect_language expects a str, got NoneType"):
        detect_language(None)  # type: ignore[arg-type]
