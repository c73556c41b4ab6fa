"""A part the machine lacks (PostgreSQL, Chromium, Ray) skips its tests outside CI and fails
them in CI, naming the part."""

from __future__ import annotations

import pytest
from ci_parts import in_ci, missing, require_module
from feedback_helpers import DATABASE_URL_ENV, database_url, postgres_url


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("true", True), ("1", True)],
)
def test_in_ci_reads_the_ci_variable(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_a_missing_part_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is missing: install it"):
        missing("Chromium", "install it")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs Chromium is missing: install it"):
        missing("Chromium", "install it")


def test_require_module_names_the_module_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    assert require_module("json", "-").dumps([]) == "[]"
    with pytest.raises(pytest.fail.Exception, match="no_such_module_cxnlp.*pip install it"):
        require_module("no_such_module_cxnlp", "pip install it")


def test_no_postgresql_server_fails_the_store_tests_in_ci(monkeypatch, tmp_path):
    # Port 9 (discard) on loopback: nothing answers PostgreSQL there.
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://nobody@127.0.0.1:9/test")
    monkeypatch.setenv("CI", "1")
    assert postgres_url().startswith("postgresql+psycopg://nobody@127.0.0.1:9/")
    with pytest.raises(pytest.fail.Exception, match=r"PostgreSQL server at .*127\.0\.0\.1:9/test"):
        next(database_url("postgresql", tmp_path))
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=DATABASE_URL_ENV):
        next(database_url("postgresql", tmp_path))
