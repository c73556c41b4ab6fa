"""The cxnlp HTTP service (FastAPI): `cxnlp serve`, or `create_app(Settings(...))` in code.

The service imports cxnlp; cxnlp never imports the service. Its names load on first use, so that
`cxnlp --help` (which reads the service's verbs) does not import FastAPI, torch or the model code.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"create_app": "service.app", "Settings": "service.settings"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'service' has no attribute {name!r}")
