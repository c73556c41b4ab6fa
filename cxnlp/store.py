"""Finding and loading model directories: `cxnlp.load("default")`, a name under the models
directory, or a path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cxnlp.base import CONFIG_FILE, METRICS_FILE, SentimentModel, read_config
from cxnlp.topics import TOPICS_DIR, TopicTagger, has_topics

MODELS_DIR_ENV = "CXNLP_MODELS_DIR"


def models_dir() -> Path:
    """Where named models live: $CXNLP_MODELS_DIR, else the `models/` folder of the source checkout
    cxnlp runs from, else `./models`."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "models"
    return checkout if checkout.is_dir() else Path.cwd() / "models"


def resolve_model(name_or_path: str | Path) -> Path:
    """The directory of a model given by name (under `models_dir()`) or by path."""
    candidate = Path(name_or_path).expanduser()
    if (candidate / CONFIG_FILE).exists():
        return candidate
    named = models_dir() / str(name_or_path)
    if (named / CONFIG_FILE).exists():
        return named
    available = [m["name"] for m in list_models()]
    raise FileNotFoundError(
        f"no model {str(name_or_path)!r}: not a model directory, and not a name under "
        f"{models_dir()} (available: {available or 'none'}; set ${MODELS_DIR_ENV} to look elsewhere)"
    )


def load(name_or_path: str | Path = "default") -> SentimentModel:
    """Load a trained model by name or path.

    >>> import cxnlp
    >>> model = cxnlp.load("fast")
    >>> model.predict(["The courier was two hours late"])[0].sentiment
    'negative'
    """
    path = resolve_model(name_or_path)
    try:
        model = _load(path)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - one error type for every way a directory is broken
        raise ModelLoadError(f"{path}: cannot load the model: {type(exc).__name__}: {exc}") from exc
    model.source_ = str(path.resolve())
    return model


class ModelLoadError(ValueError):
    """A model directory exists but cannot be loaded: damaged or missing weights, a config that
    is not a model config, a blend that names itself, a backbone without safetensors weights."""


def _load(path: Path) -> SentimentModel:
    kind = read_config(path).get("kind")
    if kind == "transformer":
        from cxnlp.transformer import TransformerSentimentModel

        model: SentimentModel = TransformerSentimentModel.load(path)
    elif kind == "fast":
        from cxnlp.fast import FastSentimentModel

        model = FastSentimentModel.load(path)
    elif kind == "blend":
        from cxnlp.blend import BlendedSentimentModel

        model = BlendedSentimentModel.load(path)
    else:
        raise ValueError(
            f"{path}: unknown model kind {kind!r}; expected 'transformer', 'fast' or 'blend'"
        )
    if has_topics(path):
        model.topic_tagger = TopicTagger.load(path / TOPICS_DIR)
    return model


def list_models() -> list[dict[str, Any]]:
    """Every model under `models_dir()` with its kind and headline metrics."""
    root = models_dir()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (path / CONFIG_FILE).exists():
            continue
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        metrics_path = path / METRICS_FILE
        metrics = (
            json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
        )
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
