"""cxnlp: customer-feedback analysis for Persian, Arabic and English.

>>> import cxnlp
>>> cxnlp.detect_language("ارسال خیلی دیر بود")
'fa'
"""

from importlib import import_module
from typing import Any

# Eager on purpose: `cxnlp.normalize` is also a submodule name, and importing the function here
# keeps the package attribute bound to the function whichever module is imported first.
from cxnlp.langid import detect_language
from cxnlp.normalize import normalize

__version__ = "0.1.0"

# Public names and the module each lives in; modules are imported on first use so that
# `import cxnlp` stays fast (torch and transformers load only when a model is needed).
_EXPORTS = {
    "build_backbone": "cxnlp.backbone",
    "resolve_backbone": "cxnlp.backbone",
    "load": "cxnlp.store",
    "list_models": "cxnlp.store",
    "Prediction": "cxnlp.base",
    "SentimentModel": "cxnlp.base",
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
