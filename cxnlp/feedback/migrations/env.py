"""Alembic environment of the feedback store. `cxnlp.feedback.db.upgrade` runs it with the
connection in `config.attributes["connection"]`; `alembic -x url=...` works too."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from cxnlp.feedback.db import VERSION_TABLE
from cxnlp.feedback.models import Base, managed_by_orm

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=managed_by_orm,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
