"""A small learned head over what the predict pipeline reads of a text: a logistic regression on
named per-text signals and the document's pooled encoder features, with a decision threshold per
language. The `mixed` head (`cxnlp.models.mixed`) and the urgency head (`cxnlp.models.urgency`)
are both one; they differ only in their signals and in how their decision is used.

`probability = sigmoid(w . z + b)`, `z` the standardised row (signals, then the first `n_features`
of the features). Stored in a directory of the model as `model.safetensors` (mean, scale, weights,
bias) and `config.json` (its kind, signal names, feature count, thresholds, `or_rule` and what
training recorded); never pickled. A head whose stored signal names differ from the ones this
cxnlp computes is refused on load with the verb that retrains it.

>>> class Demo(LinearHead):
...     SIGNALS = ("a", "b")
>>> head = Demo(0, np.zeros(2), np.ones(2), np.array([1.0, 0.0]), 0.0, thresholds={"en": 0.6})
>>> head.probability(np.array([0.0, 5.0]), None).round(2).tolist()
[0.5]
>>> head.covers("en"), head.covers("fa")
(True, False)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from cxnlp.modeldir import CONFIG_FILE, WEIGHTS_FILE

H = TypeVar("H", bound="LinearHead")
# What the config keeps beside what training records (`info`).
_CONFIG_KEYS = {"kind", "signals", "n_features", "thresholds", "or_rule"}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class LinearHead:
    """Standardised signals and features -> logistic regression -> per-language threshold.

    `mean`, `scale` and `weights` have `len(signal_names()) + n_features` entries; `thresholds`
    maps a language to its threshold (a language without one is not covered: the caller keeps
    its rule there); `or_rule[lang]` makes the language's rule count as well (what the rule is
    belongs to the subclass); `info` is what training recorded."""

    # Subclasses name their signals, what the head decides (for messages) and the verb that
    # fits it.
    SIGNALS: ClassVar[tuple[str, ...]] = ()
    NAME: ClassVar[str] = "linear"
    VERB: ClassVar[str] = ""

    def __init__(
        self,
        n_features: int,
        mean: np.ndarray,
        scale: np.ndarray,
        weights: np.ndarray,
        bias: float,
        *,
        thresholds: dict[str, float] | None = None,
        or_rule: dict[str, bool] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        n_signals = len(self.signal_names())
        width = n_signals + int(n_features)
        arrays = {"mean": mean, "scale": scale, "weights": weights}
        for name, value in arrays.items():
            if np.shape(value) != (width,):
                raise ValueError(
                    f"{self.NAME} head: {name} has shape {np.shape(value)}, expected ({width},) "
                    f"({n_signals} signals + {n_features} features)"
                )
        self.n_features = int(n_features)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.where(np.asarray(scale, dtype=np.float64) > 0, scale, 1.0)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)
        self.thresholds = {str(k): float(v) for k, v in (thresholds or {}).items()}
        self.or_rule = {str(k): bool(v) for k, v in (or_rule or {}).items()}
        self.info: dict[str, Any] = dict(info or {})

    @classmethod
    def signal_names(cls) -> tuple[str, ...]:
        """The names of the signals the head reads before the features, in order."""
        return cls.SIGNALS

    def covers(self, lang: str | None) -> bool:
        """Whether the head decides for texts of `lang` (else the caller's rule does)."""
        return lang in self.thresholds

    def can_read(self, features: np.ndarray | None) -> bool:
        """Whether a text's features (None for a model without an encoder) are enough."""
        return self.n_features == 0 or (features is not None and len(features) >= self.n_features)

    def matrix(self, signals: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The head's input rows: signals, then the first `n_features` of the features."""
        signals = np.atleast_2d(np.asarray(signals, dtype=np.float64))
        if self.n_features == 0:
            return signals
        if features is None:
            raise ValueError(
                f"this {self.NAME} head reads {self.n_features} encoder features; got none"
            )
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.shape[1] < self.n_features:
            raise ValueError(
                f"this {self.NAME} head reads {self.n_features} encoder features; got "
                f"{features.shape[1]} (a head trained on another model?)"
            )
        return np.hstack([signals, features[:, : self.n_features]])

    def probability(self, signals: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The head's probability for each text, shape (n,)."""
        z = (self.matrix(signals, features) - self.mean) / self.scale
        return sigmoid(z @ self.weights + self.bias)

    def save(self, path: str | Path) -> Path:
        """Write `model.safetensors` and `config.json` into the directory `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(
            {
                "mean": self.mean.astype(np.float32),
                "scale": self.scale.astype(np.float32),
                "weights": self.weights.astype(np.float32),
                "bias": np.array([self.bias], dtype=np.float32),
            },
            str(path / WEIGHTS_FILE),
        )
        config = {
            "kind": "logistic",
            "signals": list(self.signal_names()),
            "n_features": self.n_features,
            "thresholds": {k: round(v, 6) for k, v in self.thresholds.items()},
            "or_rule": self.or_rule,
            **self.info,
        }
        (path / CONFIG_FILE).write_text(
            json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        return path

    @classmethod
    def load(cls: type[H], path: str | Path) -> H:
        """The head saved in the directory `path`."""
        path = Path(path)
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        expected = list(cls.signal_names())
        if config.get("signals") != expected:
            raise ValueError(
                f"{path}: the {cls.NAME} head reads signals {config.get('signals')}, this cxnlp "
                f"computes {expected}; retrain it with `{cls.VERB}`"
            )
        state = load_file(str(path / WEIGHTS_FILE))
        return cls(
            int(config["n_features"]),
            state["mean"],
            state["scale"],
            state["weights"],
            float(state["bias"][0]),
            thresholds=config.get("thresholds") or {},
            or_rule=config.get("or_rule") or {},
            info={k: v for k, v in config.items() if k not in _CONFIG_KEYS},
        )
