"""Shared fixtures: one backbone build per test session, in a throwaway cache unless
CXNLP_CACHE_DIR points somewhere (then it is reused across sessions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cxnlp import backbone


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.environ.get("CXNLP_CACHE_DIR"):
        os.environ["CXNLP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cxnlp-cache"))
    return Path(os.environ["CXNLP_CACHE_DIR"])


@pytest.fixture(scope="session")
def built(cache_dir: Path) -> Path:
    """The real backbone directory, built once per session."""
    return backbone.build_backbone(cache_dir)
