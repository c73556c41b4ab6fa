"""Shared fixtures: one backbone build per test session, in a throwaway cache unless
CXNLP_CACHE_DIR points somewhere (then it is reused across sessions)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from cxnlp.backbone import build as backbone

# A test that opens the feedback store without a URL (a service with default settings, the CLI
# without --db) writes a throwaway database, never cxnlp-feedback.sqlite in the checkout, where
# `cxnlp serve` would later show its rows in the dashboard (issue 31).
os.environ.setdefault(
    "CXNLP_DATABASE_URL",
    f"sqlite:///{tempfile.mkdtemp(prefix='cxnlp-test-store-')}/feedback.sqlite",
)


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.environ.get("CXNLP_CACHE_DIR"):
        os.environ["CXNLP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cxnlp-cache"))
    return Path(os.environ["CXNLP_CACHE_DIR"])


@pytest.fixture(scope="session")
def built(cache_dir: Path) -> Path:
    """The real backbone directory, built once per session."""
    return backbone.build_backbone(cache_dir)


@pytest.fixture(scope="session")
def tiny_backbone(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 3-layer encoder with the real backbone's tokenizer."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=250037,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-backbone")
    BertModel(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(built / name, path / name)
    return path


# Handwritten reviews, ten per language, covering the three sentiments: enough for a tiny fast
# model that fits them, built in a second, for the tests of saving, batch runs and the CLI.
TINY_TRAIN = [
    ("fa", "غذا خیلی خوشمزه بود و به موقع رسید", "positive"),
    ("fa", "عالی بود، ممنون از پیک خوش اخلاق", "positive"),
    ("fa", "کیفیت گوشی عالیه، راضیم", "positive"),
    ("fa", "غذا سرد بود و پیک یک ساعت دیر رسید", "negative"),
    ("fa", "خیلی بد بود، دیگه سفارش نمیدم", "negative"),
    ("fa", "برنامه مدام قطع میشه، افتضاحه", "negative"),
    ("fa", "سفارش را دیروز ثبت کردم", "neutral"),
    ("fa", "این گوشی دو سیم کارت دارد", "neutral"),
    ("fa", "ساعت کاری فروشگاه از نه صبح است", "neutral"),
    ("fa", "بسته امروز تحویل داده شد", "neutral"),
    ("ar", "الخدمة ممتازة والتوصيل سريع", "positive"),
    ("ar", "تطبيق رائع وسهل الاستخدام", "positive"),
    ("ar", "الطعام لذيذ جدا شكرا لكم", "positive"),
    ("ar", "الخدمة سيئة جدا والموظف غير محترم", "negative"),
    ("ar", "التطبيق بطيء ويتوقف دائما", "negative"),
    ("ar", "وصل الطلب متأخرا وباردا", "negative"),
    ("ar", "طلبت وجبة من المطعم أمس", "neutral"),
    ("ar", "الفرع يفتح الساعة التاسعة صباحا", "neutral"),
    ("ar", "تم تحديث التطبيق اليوم", "neutral"),
    ("ar", "المنتج متوفر باللون الأسود", "neutral"),
    ("en", "Great app, fast delivery, love it", "positive"),
    ("en", "Excellent service and friendly staff", "positive"),
    ("en", "The food was delicious, thank you", "positive"),
    ("en", "Terrible service, the courier was two hours late", "negative"),
    ("en", "The app keeps crashing, awful", "negative"),
    ("en", "Worst order ever, cold food and rude driver", "negative"),
    ("en", "I ordered a pizza yesterday", "neutral"),
    ("en", "The store opens at nine", "neutral"),
    ("en", "The package was delivered today", "neutral"),
    ("en", "The phone comes in black and white", "neutral"),
]


@pytest.fixture(scope="session")
def tiny_train() -> list[tuple[str, str, str]]:
    """(lang, text, label) rows `tiny_fast_model` was fitted on."""
    return list(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_fast_model():
    """A FastSentimentModel fitted on TINY_TRAIN, with non-trivial temperatures so that saving
    and loading them is exercised too. Treat it as read-only."""
    from cxnlp.models.fast import FastSentimentModel

    langs, texts, labels = zip(*TINY_TRAIN, strict=True)
    model = FastSentimentModel(n_features=2**14, ngram_range=(1, 4), C=10.0)
    model.fit(list(texts), list(labels), langs=list(langs))
    model.temperatures_ = {"*": 1.5, "fa": 0.8}
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_fast_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_fast_model` saved as a model directory named `tiny`."""
    return tiny_fast_model.save(tmp_path_factory.mktemp("models") / "tiny")
