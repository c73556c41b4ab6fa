"""The served models and what the service says about them: loaded once, replaced whole on reload.

Beside the default model the service may serve named adapters (`CXNLP_ADAPTERS`, `cxnlp serve
--adapter NAME=DIR`): model directories made by `cxnlp adapt` from it, loaded with
`cxnlp.models.store.load(share_with=default)`, so that they run on the default's embeddings and
frozen lower layers and each holds only its own trained layers, head, n-gram weights and topic
head. A request picks one by name (`model`); none, the default.
"""

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
    # For an adapter: the name of the served model whose encoder it runs on.
    base: str | None = None

    def describe(self) -> dict[str, Any]:
        """What any API key holder may see: no server paths (the directory stays in the log; an
        absolute path inside metrics.json, e.g. of the evaluation data, is cut to its last part)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "cxnlp_version": self.cxnlp_version,
            "loaded_at": self.loaded_at,
            "metrics": _without_paths(self.metrics),
            "base": self.base,
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


def load_model(
    name_or_path: str,
    custom_topics: str | Path | None = None,
    *,
    share_with: LoadedModel | None = None,
    name: str | None = None,
) -> LoadedModel:
    """Load a model by name under the models directory or by path, add the custom topics file
    if one is given, and warm it up. With `share_with` (the served default) it is an adapter
    running on that model's encoder, served as `name`."""
    path = resolve_model(name_or_path)
    config = read_config(path)
    started = time.perf_counter()
    model = load(path, share_with=share_with.model if share_with is not None else None)
    if custom_topics is not None:
        model.add_custom_topics(custom_topics)
    model.predict(WARMUP_TEXTS)
    metrics = read_metrics(path)
    logger.info("loaded %s (%s) in %.1f s", path, config.get("kind"), time.perf_counter() - started)
    return LoadedModel(
        model=model,
        name=name or path.name,
        path=str(path.resolve()),
        kind=str(config.get("kind")),
        cxnlp_version=config.get("cxnlp_version"),
        metrics=metrics,
        confusion=read_dev_confusion(path),
        base=share_with.name if share_with is not None else None,
    )


def load_adapters(
    adapters: dict[str, str],
    default: LoadedModel,
    custom_topics: str | Path | None = None,
) -> dict[str, LoadedModel]:
    """The adapters `{name: directory}`, each loaded onto `default`'s encoder. A name that is the
    default's own, or a directory that was not adapted from it, is refused (ValueError)."""
    if default.name in adapters:
        raise ValueError(
            f"adapter name {default.name!r} is the served model's own name: choose another"
        )
    loaded = {}
    for name, directory in adapters.items():
        try:
            loaded[name] = load_model(directory, custom_topics, share_with=default, name=name)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"adapter {name!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - one message for every way an adapter is refused
            reason = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            raise ValueError(
                f"adapter {name!r} ({directory}) cannot be served beside {default.name!r}: {reason}"
            ) from exc
    return loaded


def wrap_model(model: Any, name: str = "custom", base: str | None = None) -> LoadedModel:
    """A `LoadedModel` for a model object built in code (tests, notebooks); `base`: the served
    model it is an adapter of."""
    kind = str(getattr(model, "kind", ""))
    return LoadedModel(model=model, name=name, path="", kind=kind, base=base)
