"""A bounded fuzz run of the whole API from its OpenAPI schema (schemathesis), on the `fast`
model: whatever the body, no endpoint answers 500 (issues 15 and 31). The Azure and AWS routes
are on, and the stats routes read the feedback store on PostgreSQL when a server answers on
127.0.0.1:5432 (else on a SQLite file); the store never is the default file in the checkout.
Each operation gets a few dozen generated requests, so the run stays within a few seconds per
operation."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from feedback_helpers import database_url, postgres_answers
from hypothesis import HealthCheck, settings

from service import Settings, create_app

JOBS_DIR = tempfile.mkdtemp(prefix="cxnlp-fuzz-jobs-")
# PostgreSQL when it answers: a fresh schema, dropped when the module is done.
_STORE = database_url("postgresql" if postgres_answers() else "sqlite", Path(JOBS_DIR))
STORE_URL = next(_STORE)
# Auth off so that generated bodies reach the handlers (401s would hide them); the admin reload
# is fuzzed too: a bad model name must be a 404 / 422 like any other bad input.
SETTINGS = Settings(
    model="fast",
    auth=False,
    jobs_dir=JOBS_DIR,
    max_wait_ms=1,
    database_url=STORE_URL,
    azure_api=True,
    aws_api=True,
)
app = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def served():
    with TestClient(app):  # runs the lifespan once: model loaded, batcher and job threads up
        yield
    next(_STORE, None)  # drops the PostgreSQL schema


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_500(case):
    response = case.call()
    assert response.status_code < 500 or response.status_code == 503, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
    )
