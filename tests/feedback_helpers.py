"""Shared by the feedback-store tests: a real database per test (a SQLite file, or a fresh schema
on the local PostgreSQL server) and classified rows with known numbers."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
from ci_parts import missing

# The one setting of the PostgreSQL store tests: an existing database they may create and drop
# schemas in (each test gets a fresh schema).
DATABASE_URL_ENV = "CXNLP_TEST_DATABASE_URL"
DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/test"
TOPICS = ("delivery", "price", "support", "app_website", "product_quality")
CHANNELS = ("app", "web", "survey")
SENTENCES = (
    "غذا سرد بود و پیک یک ساعت دیر رسید",
    "الخدمة ممتازة والتوصيل سريع",
    "The app keeps crashing when I pay",
    "قیمت‌ها نسبت به ماه قبل خیلی بالا رفته",
    "وصل الطلب متأخرا وباردا",
    "Friendly staff, but the refund took three weeks",
)


def postgres_url() -> str:
    """The test database's URL (`$CXNLP_TEST_DATABASE_URL`, else the local server's `test`), with
    the driver the store uses."""
    from cxnlp.feedback.db import resolve_url

    return resolve_url(os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL)


def postgres_answers() -> bool:
    """Whether the test database answers: for tests that use SQLite without one."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(postgres_url(), connect_args={"connect_timeout": 2})
    except ImportError:
        return False
    try:
        with engine.connect():
            return True
    except (sa.exc.OperationalError, sa.exc.InterfaceError):
        return False
    finally:
        engine.dispose()


def database_url(kind: str, tmp_path) -> Iterator[str]:
    """A URL of an empty database of `kind` ("sqlite" or "postgresql"), removed afterwards. No
    PostgreSQL server skips the test, or fails it in CI (`ci_parts.missing`)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.sqlite'}"
        return
    import sqlalchemy as sa

    url = sa.engine.make_url(postgres_url())
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    schema = f"cxnlp_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except (sa.exc.OperationalError, sa.exc.InterfaceError, ImportError) as exc:
        admin.dispose()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        missing(
            f"a PostgreSQL server at {url.render_as_string(hide_password=True)} ({first_line})",
            f"start one with a database the tests may create schemas in, or set {DATABASE_URL_ENV}",
        )
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def downgrade(engine, revision: str) -> None:
    """Take the store's schema back to the migration `revision`."""
    from alembic import command
    from alembic.config import Config

    from cxnlp.feedback.db import MIGRATIONS, current_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as c:
        config.attributes["connection"] = c
        command.downgrade(config, revision)
    assert current_revision(engine) == revision


def classified_frame(n: int = 600, seed: int = 0, days: int = 28) -> pd.DataFrame:
    """Rows in the layout of `cxnlp classify` output, with dates over `days` days from
    2026-09-07 (a Monday), channels, products, a `tier` dimension, NPS scores and topics; a few
    rows have an error instead of a result."""
    rng = np.random.default_rng(seed)
    sentiments = rng.choice(["negative", "neutral", "positive"], size=n, p=[0.35, 0.25, 0.4])
    rows = []
    for i in range(n):
        sentiment = str(sentiments[i])
        p = rng.dirichlet([1, 1, 1])
        p = {"negative": p[0], "neutral": p[1], "positive": p[2]}
        error = "empty text" if i % 97 == 13 else None
        k = rng.integers(0, 3)
        topics = [
            {
                "topic": str(t),
                "polarity": str(rng.choice(["negative", "positive", "neutral"])),
                "score": round(float(rng.uniform(0.5, 1)), 4),
            }
            for t in rng.choice(TOPICS, size=k, replace=False)
        ]
        day = pd.Timestamp("2026-09-07") + pd.Timedelta(days=int(rng.integers(0, days)))
        rows.append(
            {
                "id": f"r{i:05d}",
                "created_at": f"{day.date()}T{int(rng.integers(0, 24)):02d}:15:00",
                "channel": str(rng.choice(CHANNELS)) if i % 11 else "",
                "product": str(rng.choice(["food", "phone"])),
                "tier": str(rng.choice(["gold", "silver"])),
                "text": ("Delivery was LATE " if i % 5 == 0 else SENTENCES[i % 6] + " · ") + str(i),
                "score": int(rng.integers(0, 11)) if i % 3 else None,
                "sentiment": None if error else sentiment,
                "p_positive": None if error else round(p["positive"], 6),
                "p_neutral": None if error else round(p["neutral"], 6),
                "p_negative": None if error else round(p["negative"], 6),
                "confidence": None if error else round(max(p.values()), 6),
                "lang": None if error else str(rng.choice(["fa", "ar", "en"])),
                "topics": None if error else json.dumps(topics, ensure_ascii=False),
                "error": error,
            }
        )
    return pd.DataFrame(rows)


def case_row(item_id, customer=None, *, sentiment="negative", p_neg=0.95, level="none",
        urgency=0.0, score=None, topics=(), when="2026-09-07", text="text"):  # fmt: skip
    """A classified row (the layout of `cxnlp classify` output with urgency) for the case tests;
    `score` goes into an `nps` column."""
    p_pos = round((1 - p_neg) / 2, 6) if sentiment != "positive" else p_neg
    p_neg = p_neg if sentiment != "positive" else round((1 - p_neg) / 2, 6)
    return {
        "id": item_id,
        "text": text,
        "created_at": when,
        "customer_id": customer,
        "nps": score,
        "sentiment": sentiment,
        "p_positive": p_pos,
        "p_neutral": round(1 - p_pos - p_neg, 6),
        "p_negative": p_neg,
        "confidence": max(p_pos, p_neg),
        "lang": "en",
        "topics": json.dumps(list(topics)),
        "mixed": False,
        "urgency": urgency,
        "urgency_level": level,
        "urgency_evidence": "[]",
        "error": None,
    }
