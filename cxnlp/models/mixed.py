"""The learned `mixed` head: a logistic regression over what the predict pipeline already reads
of a text, with a decision threshold per language.

A text is `mixed` when it both praises and complains. The hand rules of `cxnlp.models.pipeline`
(`MIXED_RULES`) need two confident clauses of opposite polarity, a positive and a negative topic,
or a document floor; a tweet has one clause and no topic, so they rarely fire there. The head reads,
per text (`mixed_signals`, in `SIGNALS` order):

- the document's probabilities (in `SENTIMENTS` order) and the smaller of its positive and negative;
- its clause pieces' strongest positive and strongest negative probability, the smaller of the
  two, and how many pieces there are (log(1 + n); 0 for a text read whole);
- whether its topics carry a positive and a negative one;
- its language, one-hot over `LANGS`;

and then the document's pooled encoder features (the rows the topic head reads), the first
`n_features` of them. Standardised, weighted, summed: `probability = sigmoid(w . z + b)`. A text is
mixed at `probability >= thresholds[lang]` (or, where `or_rule[lang]`, also when the language's
rule fires); a language without a threshold keeps the rules. `cxnlp train-mixed`
(`training/mixed_head.py`) fits it and chooses the thresholds on dev rows; it is stored as
`mixed/model.safetensors` and `mixed/config.json` in the model directory.

>>> head = MixedHead(0, np.zeros(len(SIGNALS)), np.ones(len(SIGNALS)), np.zeros(len(SIGNALS)), 0.0,
...                  thresholds={"en": 0.4})
>>> head.decide(np.zeros(len(SIGNALS)), None, "en", rule=False)  # sigmoid(0) = 0.5 >= 0.4
True
>>> head.covers("fa")
False
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.modeldir import CONFIG_FILE, WEIGHTS_FILE

# The per-text signals the head reads before the document's features, in this order.
SIGNALS: tuple[str, ...] = (
    *(f"doc_{label}" for label in SENTIMENTS),
    "doc_both",
    "piece_positive",
    "piece_negative",
    "piece_both",
    "pieces",
    "topics_mixed",
    *(f"lang_{lang}" for lang in LANGS),
)


@dataclass
class MixedSignals:
    """What `cxnlp.models.pipeline.analyze` read of one text for `mixed`: `signals` (in `SIGNALS`
    order), the document's pooled features (None for a model without an encoder) and the
    decision of the language's rule."""

    signals: np.ndarray
    features: np.ndarray | None
    rule: bool


def mixed_signals(
    doc: np.ndarray,
    pieces: np.ndarray,
    topics_mixed: bool,
    lang: str,
    labels: Sequence[str],
) -> np.ndarray:
    """The `SIGNALS` of one text: `doc` its document probabilities and `pieces` its clause
    pieces' (rows), both in `labels` order; `topics_mixed` whether it has a positive and a
    negative topic.

    >>> labels = ("negative", "neutral", "positive")
    >>> s = mixed_signals(np.array([0.3, 0.2, 0.5]), np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]),
    ...                   False, "en", labels)
    >>> dict(zip(SIGNALS, s.round(3).tolist()))["piece_both"]
    0.8
    """
    positive, negative = labels.index("positive"), labels.index("negative")
    doc = np.asarray(doc, dtype=np.float64)
    ordered = [float(doc[labels.index(label)]) for label in SENTIMENTS]
    pieces = np.asarray(pieces, dtype=np.float64).reshape(-1, len(labels))
    strongest_positive = float(pieces[:, positive].max()) if len(pieces) else 0.0
    strongest_negative = float(pieces[:, negative].max()) if len(pieces) else 0.0
    return np.array(
        [
            *ordered,
            min(float(doc[positive]), float(doc[negative])),
            strongest_positive,
            strongest_negative,
            min(strongest_positive, strongest_negative),
            float(np.log1p(len(pieces))),
            float(topics_mixed),
            *(float(lang == known) for known in LANGS),
        ]
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class MixedHead:
    """Standardised signals and features -> logistic regression -> per-language threshold.

    `mean`, `scale` and `weights` have `len(SIGNALS) + n_features` entries; `thresholds` maps a
    language to its threshold (a language without one keeps the rules); `or_rule[lang]` makes the
    language's rule fire too (chosen on dev by training); `info` is what training recorded."""

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
        width = len(SIGNALS) + int(n_features)
        arrays = {"mean": mean, "scale": scale, "weights": weights}
        for name, value in arrays.items():
            if np.shape(value) != (width,):
                raise ValueError(
                    f"mixed head: {name} has shape {np.shape(value)}, expected ({width},) "
                    f"({len(SIGNALS)} signals + {n_features} features)"
                )
        self.n_features = int(n_features)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.where(np.asarray(scale, dtype=np.float64) > 0, scale, 1.0)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)
        self.thresholds = {str(k): float(v) for k, v in (thresholds or {}).items()}
        self.or_rule = {str(k): bool(v) for k, v in (or_rule or {}).items()}
        self.info: dict[str, Any] = dict(info or {})

    def covers(self, lang: str | None) -> bool:
        """Whether the head decides `mixed` for texts of `lang` (else the rules do)."""
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
            raise ValueError(f"this mixed head reads {self.n_features} encoder features; got none")
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.shape[1] < self.n_features:
            raise ValueError(
                f"this mixed head reads {self.n_features} encoder features; got "
                f"{features.shape[1]} (a head trained on another model?)"
            )
        return np.hstack([signals, features[:, : self.n_features]])

    def probability(self, signals: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The head's probability that each text is mixed, shape (n,)."""
        z = (self.matrix(signals, features) - self.mean) / self.scale
        return _sigmoid(z @ self.weights + self.bias)

    def decide(
        self, signals: np.ndarray, features: np.ndarray | None, lang: str, rule: bool
    ) -> bool:
        """`mixed` for one text of a language the head covers: its probability at or above the
        language's threshold, or (where `or_rule[lang]`) the rule's own decision `rule`."""
        if self.or_rule.get(lang) and rule:
            return True
        return bool(self.probability(signals, features)[0] >= self.thresholds[lang])

    def save(self, path: str | Path) -> Path:
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
            "signals": list(SIGNALS),
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
    def load(cls, path: str | Path) -> MixedHead:
        path = Path(path)
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("signals") != list(SIGNALS):
            raise ValueError(
                f"{path}: the mixed head reads signals {config.get('signals')}, this cxnlp "
                f"computes {list(SIGNALS)}; retrain it with `cxnlp train-mixed`"
            )
        state = load_file(str(path / WEIGHTS_FILE))
        known = {"kind", "signals", "n_features", "thresholds", "or_rule"}
        return cls(
            int(config["n_features"]),
            state["mean"],
            state["scale"],
            state["weights"],
            float(state["bias"][0]),
            thresholds=config.get("thresholds") or {},
            or_rule=config.get("or_rule") or {},
            info={k: v for k, v in config.items() if k not in known},
        )
