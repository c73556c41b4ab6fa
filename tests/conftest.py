"""Shared fixtures: one backbone build per test session, in a throwaway cache unless
CXNLP_CACHE_DIR points somewhere (then it is reused across sessions); a tiny fast model; and,
for the browser tests, Chromium driven by Playwright against a live service."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from ci_parts import missing, require_module

from cxnlp.backbone import build as backbone

ROOT = Path(__file__).resolve().parent.parent

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
def tiny_bert_factory(tmp_path_factory: pytest.TempPathFactory, tiny_train):
    """`make(n_layers)`: a randomly initialised BERT of that depth with a character-level
    WordPiece vocabulary of the training texts (no prefix, pad id 0), saved as an ordinary Hugging
    Face directory; one per depth per session."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    made: dict[int, Path] = {}

    def make(n_layers: int) -> Path:
        if n_layers in made:
            return made[n_layers]
        path = tmp_path_factory.mktemp(f"tiny-bert-{n_layers}")
        chars = sorted({ch for _, text, _ in tiny_train for ch in text.lower() if not ch.isspace()})
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=n_layers,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
            pad_token_id=0,
        )
        torch.manual_seed(0)
        BertModel(config).save_pretrained(path)
        made[n_layers] = path
        return path

    return make


@pytest.fixture(scope="session")
def tiny_head_model_path(tiny_bert_factory, tmp_path_factory) -> Path:
    """A 2-layer character BERT with a random head, saved as a model directory (what the tests
    of the learned `mixed` and urgency heads read)."""
    from cxnlp.models.transformer import TransformerSentimentModel, build_net

    backbone = tiny_bert_factory(2)
    tokenizer, net = build_net(str(backbone))
    torch.manual_seed(3)
    torch.nn.init.normal_(net.head.weight, std=1.0)
    model = TransformerSentimentModel(
        tokenizer, net, max_length=48, trained_from_layer=1, backbone=str(backbone), dtype="float32"
    )
    return model.save(tmp_path_factory.mktemp("head-models") / "tiny")


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


# --- the browser tests: Chromium, Playwright, a live service ------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's executable: Debian's /usr/bin/chromium, else the first `chromium` on PATH.
    Missing, the test skips, saying so, or fails in CI (`ci_parts`)."""
    found = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if found is None:
        missing(
            "Chromium (no /usr/bin/chromium, no chromium on PATH)",
            "install Debian's chromium (apt-get install -y chromium) to run the browser tests",
        )
    return found


@pytest.fixture
def browser_page(chromium: str) -> Iterator[Any]:
    """A Playwright page in headless Chromium (1400 x 1000, one minute per wait)."""
    sync_api = require_module("playwright.sync_api", 'pip install -e ".[test]"')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_service(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Callable[[str, str], str]]:
    """`start(database_url, api_key)`: `uvicorn service.app:create_app` in its own process with
    the tiny model, that store and auth on (the shipped case rules), ready; its base URL. The
    process is stopped after the test; a server that does not start fails with its log."""
    started: list[tuple[subprocess.Popen, Any]] = []

    def start(database_url: str, api_key: str) -> str:
        port = _free_port()
        env = {
            **os.environ,
            "CXNLP_API_KEYS": api_key,
            "CXNLP_MODEL": str(tiny_model_dir),
            "CXNLP_DATABASE_URL": database_url,
            "CXNLP_JOBS_DIR": str(tmp_path / "jobs"),
            "OMP_NUM_THREADS": "1",
        }
        env.pop("CXNLP_CASE_RULES", None)
        log_path = tmp_path / "server.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed after the test
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append((process, log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 600  # a loaded CI machine takes minutes to import torch
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(log_path.read_text())
            time.sleep(0.3)

    yield start
    for process, log in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# --- the service in-process --------------------------------------------------------------------


@pytest.fixture
def service_client(tiny_fast_model, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`make(model=None, **settings)`: a started TestClient of the service serving `model` (the
    tiny fast model by default), its jobs and its feedback store (SQLite) under the test's
    tmp_path, batches not held back (`max_wait_ms` 1), `settings` over those. Every client is
    closed after the test."""
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    clients: list[TestClient] = []

    def make(model: Any = None, **settings: Any) -> TestClient:
        values = {
            "jobs_dir": tmp_path / "jobs",
            "database_url": f"sqlite:///{tmp_path / 'feedback.sqlite'}",
            "max_wait_ms": 1,
            **settings,
        }
        client = TestClient(create_app(Settings(**values), model=model or tiny_fast_model))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
