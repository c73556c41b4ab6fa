"""The served model and what the service says about it: loaded once, replaced whole on reload."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from cxnlp.modeldir import read_config, read_dev_confusion, read_metrics
from cxnlp.models.store import load, resolve_model

logger = logging.getLogger(__name__)

# A few texts run through a freshly loaded model before it serves, so that a broken model fails
# the reload instead of the first requests, and lazy initialisation happens off the request path.
WARMUP_TEXTS = ["خیلی خوب بود", "الخدمة سيئة", "It arrived on time"]


@dataclass(frozen=True)
class LoadedModel:
    """A model with its identity. Immutable: a reload builds a new one and swaps the reference,
    so a request holding the old one finishes on it."""

    model: Any
    name: str
    path: str
    kind: str
    cxnlp_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # The dev confusion matrices of the model directory, for the rollup's adjusted shares.
    confusion: dict[str, list[list[float]]] | None = None
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        """What any API key holder may see: no server paths (the directory stays in the log; an
        absolute path inside metrics.json, e.g. of the evaluation data, is cut to its last part)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "cxnlp_version": self.cxnlp_version,
            "loaded_at": self.loaded_at,
            "metrics": _without_paths(self.metrics),
        }


def _without_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, str):
        if value[1:3] in (":\\", ":/"):
            return PureWindowsPath(value).name
        if value.startswith(("/", "~")):
            return Path(value).name
    return value


def load_model(name_or_path: str, custom_topics: str | Path | None = None) -> LoadedModel:
    """Load a model by name under the models directory or by path, add the custom topics file
    if one is given, and warm it up."""
    path = resolve_model(name_or_path)
    config = read_config(path)
    started = time.perf_counter()
    model = load(path)
    if custom_topics is not None:
        model.add_custom_topics(custom_topics)
    model.predict(WARMUP_TEXTS)
    metrics = read_metrics(path)
    logger.info("loaded %s (%s) in %.1f s", path, config.get("kind"), time.perf_counter() - started)
    return LoadedModel(
        model=model,
        name=path.name,
        path=str(path.resolve()),
        kind=str(config.get("kind")),
        cxnlp_version=config.get("cxnlp_version"),
        metrics=metrics,
        confusion=read_dev_confusion(path),
    )


def wrap_model(model: Any, name: str = "custom") -> LoadedModel:
    """A `LoadedModel` for a model object built in code (tests, notebooks)."""
    return LoadedModel(model=model, name=name, path="", kind=str(getattr(model, "kind", "")))
