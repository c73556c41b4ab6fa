"""The feedback store: analyzed items accumulated in a database (SQLite by default, PostgreSQL by
URL) and the SQL aggregates the dashboard and `/v1/stats` read.

    from cxnlp.feedback import open_store, ingest_file, queries
    with open_store() as store:              # $CXNLP_DATABASE_URL or cxnlp-feedback.sqlite
        ingest_file("reviews_labeled.csv", dataset="reviews", store=store)
        with store.engine.connect() as connection:
            print(queries.summary(connection, queries.StatsFilter(channel=["app"]))["shares"])
"""

from cxnlp.feedback import queries
from cxnlp.feedback.db import FeedbackStore, open_store, resolve_url
from cxnlp.feedback.ingest import IngestStats, ingest_file, ingest_frame
from cxnlp.feedback.queries import StatsFilter

__all__ = [
    "FeedbackStore",
    "IngestStats",
    "StatsFilter",
    "ingest_file",
    "ingest_frame",
    "open_store",
    "queries",
    "resolve_url",
]
