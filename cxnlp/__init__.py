"""cxnlp: customer-feedback analysis for Persian, Arabic and English.

>>> import cxnlp
>>> cxnlp.detect_language("ارسال خیلی دیر بود")
'fa'
"""

from importlib import import_module
from typing import Any

# Eager: both are cheap (no torch), and `import cxnlp` is what most callers do first.
from cxnlp.text.langid import detect_language
from cxnlp.text.normalize import normalize

__version__ = "0.1.0"

# Public names and the module each lives in; modules are imported on first use so that
# `import cxnlp` stays fast (torch and transformers load only when a model is needed).
_EXPORTS = {
    "build_backbone": "cxnlp.backbone.build",
    "resolve_backbone": "cxnlp.backbone.build",
    "load": "cxnlp.models.store",
    "list_models": "cxnlp.models.store",
    "Prediction": "cxnlp.models.base",
    "SentimentModel": "cxnlp.models.base",
    "classify_file": "cxnlp.io.batch",
    "classify_frame": "cxnlp.io.batch",
    "read_table": "cxnlp.io.tables",
    "write_table": "cxnlp.io.tables",
    "summarize": "cxnlp.report.summary",
    "build_report": "cxnlp.report.build",
}

__all__ = ["__version__", "detect_language", "normalize", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cxnlp' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
