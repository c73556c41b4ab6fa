"""Finding and loading model directories: `cxnlp.load("default")`, a name under the models
directory, or a path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cxnlp.modeldir import (
    has_mixed,
    has_topics,
    has_urgency,
    is_model_dir,
    mixed_dir,
    model_class,
    read_config,
    read_metrics,
    topics_dir,
    urgency_dir,
)
from cxnlp.models.base import SentimentModel
from cxnlp.models.mixed import MixedHead
from cxnlp.models.urgency import UrgencyHead
from cxnlp.topics.tagger import TopicTagger

MODELS_DIR_ENV = "CXNLP_MODELS_DIR"


def models_dir() -> Path:
    """Where named models live: $CXNLP_MODELS_DIR, else the `models/` folder of the source checkout
    cxnlp runs from, else `./models`."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).expanduser()
    checkout = Path(__file__).resolve().parents[2] / "models"
    return checkout if checkout.is_dir() else Path.cwd() / "models"


def resolve_model(name_or_path: str | Path) -> Path:
    """The directory of a model given by name (under `models_dir()`) or by path."""
    candidate = Path(name_or_path).expanduser()
    if is_model_dir(candidate):
        return candidate
    named = models_dir() / str(name_or_path)
    if is_model_dir(named):
        return named
    available = [m["name"] for m in list_models()]
    raise FileNotFoundError(
        f"no model {str(name_or_path)!r}: not a model directory, and not a name under "
        f"{models_dir()} (available: {available or 'none'}; set ${MODELS_DIR_ENV} to look elsewhere)"
    )


def load(
    name_or_path: str | Path = "default", *, share_with: SentimentModel | None = None
) -> SentimentModel:
    """Load a trained model by name or path.

    `share_with`, a model already loaded, is the one a model made by `cxnlp adapt` was adapted
    from (or any model with the same encoder and frozen layers): the new model then runs on its
    embeddings and frozen lower layers instead of a copy of its own, so that several adapted
    models in one process hold one encoder; a model that cannot share them is refused
    (`ModelLoadError` saying what differs).

    >>> import cxnlp
    >>> model = cxnlp.load("fast")
    >>> model.predict(["The courier was two hours late"])[0].sentiment
    'negative'
    """
    path = resolve_model(name_or_path)
    try:
        model = _load(path, share_with)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - one error type for every way a directory is broken
        raise ModelLoadError(f"{path}: cannot load the model: {type(exc).__name__}: {exc}") from exc
    model.source_ = str(path.resolve())
    return model


class ModelLoadError(ValueError):
    """A model directory exists but cannot be loaded: damaged or missing weights, a config that
    is not a model config, a blend that names itself, a backbone without safetensors weights."""


def _load(path: Path, share_with: SentimentModel | None = None) -> SentimentModel:
    kind = read_config(path).get("kind")
    try:
        cls = model_class(kind)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    model: SentimentModel = cls.load(path, share_with=share_with)
    if has_topics(path):
        model.topic_tagger = TopicTagger.load(topics_dir(path))
    if has_mixed(path):
        model.mixed_head = MixedHead.load(mixed_dir(path))
    if has_urgency(path):
        model.urgency_head = UrgencyHead.load(urgency_dir(path))
    model.source_ = str(path.resolve())
    return model


def list_models() -> list[dict[str, Any]]:
    """Every model under `models_dir()` with its kind and headline metrics."""
    root = models_dir()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not is_model_dir(path):
            continue
        config = read_config(path, warn_newer=False)
        metrics = read_metrics(path)
        found.append(
            {
                "name": path.name,
                "path": str(path),
                "kind": config.get("kind"),
                "cxnlp_version": config.get("cxnlp_version"),
                "macro_f1_by_lang": {
                    lang: round(s["macro_f1"], 4) for lang, s in metrics.get("by_lang", {}).items()
                },
            }
        )
    return found
