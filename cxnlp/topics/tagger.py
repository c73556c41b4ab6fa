"""Pain-point topics: which topics a text talks about, and the polarity of each.

`TopicTagger` reads the features the transformer already computes for sentiment (so tagging costs
one small MLP, not another encoder pass): the mean-pooled output of the fine-tuned top layer next
to that of the last frozen layer, which keeps more of what a text is about. A multi-label head
scores each topic; each topic has its own decision threshold, tuned on dev data by training, and
its own 3-way polarity head.

Custom topics need no retraining: a topic given by a definition and example phrases (the taxonomy
file's format, any of fa / ar / en) is tagged when a text's cosine similarity to one of its phrases
stands far enough above the similarity of ordinary reviews to that phrase. That distance is
measured in standard deviations of the background similarity (stored as the mean and covariance
of background review features), and mapped to a probability by a logistic calibration fitted on
dev data with the shipped taxonomy's own phrases standing in for custom topics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import CONFIG_FILE, WEIGHTS_FILE
from cxnlp.topics.taxonomy import Topic


class TopicNet(nn.Module):
    """Standardised features -> hidden layer -> topic presence logits and per-topic polarity."""

    def __init__(self, n_features: int, n_topics: int, hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.body = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(n_features, hidden), nn.GELU(), nn.Dropout(0.2)
        )
        self.presence = nn.Linear(hidden, n_topics)
        self.polarity = nn.Linear(hidden, n_topics * len(SENTIMENTS))
        self.n_topics = n_topics

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body((features - self.mean) / self.scale)
        polarity = self.polarity(hidden).view(-1, self.n_topics, len(SENTIMENTS))
        return self.presence(hidden), polarity


@dataclass
class CustomTopicMatcher:
    """Standardises text-to-phrase cosine similarities against background reviews of the text's
    language and calibrates them: `probability = sigmoid(slope * z + intercept)`; a text gets the
    topic at `probability >= threshold`.

    Standardising per language matters: a Persian phrase is less similar to any English text
    than to any Persian one, so a raw similarity means different things across languages.
    `feature_slice` picks the plain e5 embedding out of the model's features.
    """

    background: dict[str, tuple[np.ndarray, np.ndarray]]  # lang or "*" -> (mean, covariance)
    slope: float
    intercept: float
    feature_slice: tuple[int, int]
    threshold: float = 0.5

    def unit(self, features: np.ndarray) -> np.ndarray:
        start, stop = self.feature_slice
        part = np.asarray(features, dtype=np.float64)[:, start:stop]
        return part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)

    def z_scores(
        self, features: np.ndarray, phrases: np.ndarray, langs: Sequence[str] | None = None
    ) -> np.ndarray:
        """(n texts, n phrases) standardised similarities; `phrases` are unit vectors."""
        similarity = self.unit(features) @ phrases.T
        langs = list(langs) if langs is not None else ["*"] * len(similarity)
        z = np.empty_like(similarity)
        for lang in set(langs):
            rows = [i for i, value in enumerate(langs) if value == lang]
            mean, cov = self.background.get(lang, self.background["*"])
            expected = phrases @ mean
            spread = np.sqrt(np.maximum(np.einsum("pd,de,pe->p", phrases, cov, phrases), 1e-12))
            z[rows] = (similarity[rows] - expected) / spread
        return z

    def probability(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * z + self.intercept)))


@dataclass
class TopicGate:
    """A document-level "any topic at all" gate for one language: a logistic regression on the
    head's input features (the whole text's); where its probability is under `floor`, the text
    gets no taxonomy topic from the head (cue rules and custom topics still apply). Fitted and
    its floor chosen by training/topic_calibration.py (`fit_gates`)."""

    weights: np.ndarray
    bias: float
    floor: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(the text has a topic) for each row of `features` (n, >= len(weights))."""
        features = np.asarray(features, dtype=np.float64)[:, : len(self.weights)]
        return 1.0 / (1.0 + np.exp(-(features @ self.weights + self.bias)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(float(self.bias), 6),
            "floor": round(float(self.floor), 4),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TopicGate:
        return cls(
            np.asarray(raw["weights"], dtype=np.float64), float(raw["bias"]), float(raw["floor"])
        )


class TopicTagger:
    """The taxonomy's topics from model features, plus any custom topics added at run time."""

    def __init__(
        self,
        topics: Sequence[str],
        n_features: int,
        *,
        hidden: int = 256,
        thresholds: Sequence[float] | None = None,
        matcher: CustomTopicMatcher | None = None,
    ) -> None:
        self.topics = tuple(topics)
        self.n_features = n_features
        self.hidden = hidden
        self.net = TopicNet(n_features, len(self.topics), hidden)
        self.thresholds_ = np.asarray(
            thresholds if thresholds is not None else [0.5] * len(self.topics), dtype=np.float64
        )
        self.matcher = matcher
        # Per-language thresholds (lang -> one per topic), where recalibrated on a dev mix of
        # domains; a language without its own uses `thresholds_`.
        self.thresholds_by_lang: dict[str, np.ndarray] = {}
        # Per-language document gates (lang -> TopicGate); a language without one is not gated.
        self.gates: dict[str, TopicGate] = {}
        # How much the text's own sentiment counts in each topic's polarity, against the
        # polarity head's 1 (a product of the two distributions); tuned on dev by training.
        self.polarity_text_weight = 0.0
        # Per-language weights (lang -> weight), where chosen on a dev mix of domains read as
        # `predict` reads them (training/topic_calibration.py); a language without one uses
        # `polarity_text_weight`.
        self.polarity_text_weight_by_lang: dict[str, float] = {}
        self.custom_topics: list[Topic] = []
        self._custom_phrases: list[np.ndarray] = []
        self.info: dict[str, Any] = {}

    def thresholds_for(self, lang: str | None) -> np.ndarray:
        """The topics' thresholds for a text of language `lang`."""
        return self.thresholds_by_lang.get(lang or "", self.thresholds_)

    def gate_open(self, features: np.ndarray, langs: Sequence[str | None]) -> np.ndarray:
        """Per row of `features` (whole texts), whether the head may tag it: True where its
        language has no gate or the gate's probability reaches the floor."""
        features = np.asarray(features)
        open_ = np.ones(len(features), bool)
        for lang, gate in self.gates.items():
            rows = np.flatnonzero([row_lang == lang for row_lang in langs])
            if len(rows):
                open_[rows] = gate.probability(features[rows]) >= gate.floor
        return open_

    @torch.inference_mode()
    def scores(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Topic probabilities (n, topics) and polarity probabilities (n, topics, 3)."""
        self.net.eval()
        features = np.asarray(features, dtype=np.float32)[:, : self.n_features]
        presence, polarity = self.net(torch.as_tensor(features))
        return torch.sigmoid(presence).numpy(), torch.softmax(polarity, -1).numpy()

    def polarity_weight_for(self, lang: str | None) -> float:
        """The weight of the text's sentiment in the topics' polarity for language `lang`."""
        return self.polarity_text_weight_by_lang.get(lang or "", self.polarity_text_weight)

    def polarities(
        self,
        features: np.ndarray,
        sentiments: np.ndarray,
        polarity: np.ndarray | None = None,
        langs: Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """(n, topics) index into SENTIMENTS of each topic's polarity: the polarity head's
        log-probabilities (`polarity`, from `scores`, computed when not given) plus the weight
        of each row's language (`polarity_weight_for`; `polarity_text_weight` without `langs`)
        times those of the text's sentiment."""
        if polarity is None:
            _, polarity = self.scores(features)
        if langs is None:
            weights = np.full(len(polarity), self.polarity_text_weight)
        else:
            weights = np.array([self.polarity_weight_for(lang) for lang in langs], dtype=np.float64)
        combined = np.log(polarity + 1e-9) + weights[:, None, None] * np.log(
            np.asarray(sentiments)[:, None, :] + 1e-9
        )
        return combined.argmax(-1)

    def add_custom_topic(self, topic: Topic, phrase_features: np.ndarray) -> None:
        """Tag `topic` from now on; `phrase_features` are the model's features of its phrases."""
        if self.matcher is None:
            raise ValueError(
                "this topic model has no custom-topic calibration; retrain its topics with "
                "`cxnlp train-topics` to add custom topics"
            )
        if topic.name in self.topics or topic.name in {t.name for t in self.custom_topics}:
            raise ValueError(
                f"topic {topic.name!r} already exists; give the custom topic a new name"
            )
        if len(phrase_features) == 0:
            raise ValueError(f"custom topic {topic.name!r} has no definition or cues to match")
        self.custom_topics.append(topic)
        self._custom_phrases.append(self.matcher.unit(phrase_features))

    def custom_probabilities(
        self, features: np.ndarray, langs: Sequence[str] | None = None
    ) -> np.ndarray:
        """(n, custom topics) calibrated probabilities of the custom topics."""
        if not self.custom_topics:
            return np.zeros((len(features), 0))
        z = [
            self.matcher.z_scores(features, phrases, langs).max(1)
            for phrases in self._custom_phrases
        ]
        return self.matcher.probability(np.stack(z, axis=1))

    def tag(
        self, features: np.ndarray, sentiments: np.ndarray, langs: Sequence[str] | None = None
    ) -> list[list[dict[str, Any]]]:
        """Per text, its topics as `{"topic", "polarity", "score"}`, highest score first.

        `sentiments` are the texts' calibrated sentiment probabilities, (n, 3) in `SENTIMENTS`
        order. A custom topic takes the text's sentiment as its polarity; a taxonomy topic
        combines its polarity head with it (see `polarities`).
        """
        presence, head_polarity = self.scores(features)
        polarity = self.polarities(features, sentiments, head_polarity, langs)
        custom = self.custom_probabilities(features, langs)
        open_ = (
            self.gate_open(features, langs) if langs is not None else np.ones(len(presence), bool)
        )
        tagged = []
        for row in range(len(presence)):
            thresholds = self.thresholds_for(langs[row] if langs is not None else None)
            found = [
                {
                    "topic": name,
                    "polarity": SENTIMENTS[int(polarity[row, k])],
                    "score": round(float(presence[row, k]), 4),
                }
                for k, name in enumerate(self.topics)
                if open_[row] and presence[row, k] >= thresholds[k]
            ]
            text_polarity = SENTIMENTS[int(np.argmax(sentiments[row]))]
            found += [
                {"topic": topic.name, "polarity": text_polarity, "score": round(float(p), 4)}
                for topic, p in zip(self.custom_topics, custom[row], strict=True)
                if p >= (topic.min_score or self.matcher.threshold)
            ]
            tagged.append(sorted(found, key=lambda t: -t["score"]))
        return tagged

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {name: t.detach().float().contiguous() for name, t in self.net.state_dict().items()}
        config: dict[str, Any] = {
            "topics": list(self.topics),
            "n_features": self.n_features,
            "hidden": self.hidden,
            "thresholds": [round(float(t), 4) for t in self.thresholds_],
            "polarities": list(SENTIMENTS),
            "polarity_text_weight": self.polarity_text_weight,
            **self.info,
        }
        if self.polarity_text_weight_by_lang:
            config["polarity_text_weight_by_lang"] = {
                lang: float(weight) for lang, weight in self.polarity_text_weight_by_lang.items()
            }
        if self.thresholds_by_lang:
            config["thresholds_by_lang"] = {
                lang: [round(float(t), 4) for t in values]
                for lang, values in self.thresholds_by_lang.items()
            }
        if self.gates:
            config["gates"] = {lang: gate.to_dict() for lang, gate in self.gates.items()}
        if self.matcher is not None:
            for lang, (mean, cov) in self.matcher.background.items():
                state[f"matcher.{lang}.mean"] = torch.as_tensor(mean).float()
                state[f"matcher.{lang}.cov"] = torch.as_tensor(cov).float()
            config["custom_topics"] = {
                "slope": self.matcher.slope,
                "intercept": self.matcher.intercept,
                "threshold": self.matcher.threshold,
                "feature_slice": list(self.matcher.feature_slice),
                "background_langs": list(self.matcher.background),
            }
        save_file(state, str(path / WEIGHTS_FILE))
        (path / CONFIG_FILE).write_text(
            json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> TopicTagger:
        path = Path(path)
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        state = load_file(str(path / WEIGHTS_FILE))
        matcher = None
        if "custom_topics" in config:
            calibration = config["custom_topics"]
            background = {
                lang: (
                    state.pop(f"matcher.{lang}.mean").double().numpy(),
                    state.pop(f"matcher.{lang}.cov").double().numpy(),
                )
                for lang in calibration["background_langs"]
            }
            matcher = CustomTopicMatcher(
                background=background,
                slope=float(calibration["slope"]),
                intercept=float(calibration["intercept"]),
                feature_slice=tuple(calibration["feature_slice"]),
                threshold=float(calibration.get("threshold", 0.5)),
            )
        tagger = cls(
            config["topics"],
            config["n_features"],
            hidden=config.get("hidden", 256),
            thresholds=config["thresholds"],
            matcher=matcher,
        )
        tagger.net.load_state_dict(state)
        tagger.polarity_text_weight = float(config.get("polarity_text_weight", 0.0))
        tagger.polarity_text_weight_by_lang = {
            lang: float(weight)
            for lang, weight in (config.get("polarity_text_weight_by_lang") or {}).items()
        }
        tagger.thresholds_by_lang = {
            lang: np.asarray(values, dtype=np.float64)
            for lang, values in (config.get("thresholds_by_lang") or {}).items()
        }
        tagger.gates = {
            lang: TopicGate.from_dict(raw) for lang, raw in (config.get("gates") or {}).items()
        }
        known = {
            "gates",
            "thresholds_by_lang",
            "topics",
            "n_features",
            "hidden",
            "thresholds",
            "polarities",
            "polarity_text_weight",
            "polarity_text_weight_by_lang",
            "custom_topics",
        }
        tagger.info = {k: v for k, v in config.items() if k not in known}
        return tagger
