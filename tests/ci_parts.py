"""The parts of a machine some tests need beyond the Python packages: a PostgreSQL server,
Chromium, Ray (and Playwright, which drives Chromium).

Outside CI a missing part skips its tests, saying what is missing and how to get it. When the
`CI` environment variable is set (as CI services do, and `.ci/run`), a missing part FAILS them,
naming it: a CI run that silently lost PostgreSQL or Chromium must not stay green.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

CI_ENV = "CI"


def in_ci() -> bool:
    """True when `CI` is set to anything but empty, 0, false or no."""
    return os.environ.get(CI_ENV, "").strip().lower() not in ("", "0", "false", "no")


def missing(part: str, how: str) -> NoReturn:
    """Skip the test (outside CI) or fail it (in CI): `part` is missing, `how` gets it."""
    message = f"{part} is missing: {how}"
    if in_ci():
        pytest.fail(f"CI needs {message} (the {CI_ENV} variable is set)", pytrace=False)
    pytest.skip(message)


def require_module(name: str, how: str) -> ModuleType:
    """The imported module `name`, or `missing` when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"the Python module {name} ({exc})", how)
