"""The feedback store: analyzed items accumulated in a database (SQLite by default, PostgreSQL by
URL) and the SQL aggregates the dashboard and `/v1/stats` read.

    from cxnlp.feedback import open_store, ingest_file, queries
    with open_store() as store:              # $CXNLP_DATABASE_URL or cxnlp-feedback.sqlite
        ingest_file("reviews_labeled.csv", dataset="reviews", store=store)
        with store.engine.connect() as connection:
            print(queries.summary(connection, queries.StatsFilter(channel=["app"]))["shares"])
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded on first use: `cxnlp --help` registers the store's verbs without SQLAlchemy or statsmodels.
_EXPORTS = {
    "FeedbackStore": "cxnlp.feedback.db",
    "open_store": "cxnlp.feedback.db",
    "resolve_url": "cxnlp.feedback.db",
    "IngestStats": "cxnlp.feedback.ingest",
    "ingest_file": "cxnlp.feedback.ingest",
    "ingest_frame": "cxnlp.feedback.ingest",
    "StatsFilter": "cxnlp.feedback.queries",
}
__all__ = sorted([*_EXPORTS, "queries"])


def __getattr__(name: str) -> Any:
    if name == "queries":
        return import_module("cxnlp.feedback.queries")
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cxnlp.feedback' has no attribute {name!r}")
