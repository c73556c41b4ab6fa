"""What every cxnlp sentiment model shares: preparing texts, calibrated probabilities, predictions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.modeldir import mixed_dir, topics_dir, urgency_dir
from cxnlp.models.calibration import softmax
from cxnlp.models.mixed import MixedHead
from cxnlp.models.pipeline import AspectOptions, analyze
from cxnlp.models.urgency import UrgencyHead
from cxnlp.text.langid import detect_language
from cxnlp.text.normalize import normalize
from cxnlp.text.urgency import empty_urgency
from cxnlp.topics.tagger import TopicTagger
from cxnlp.topics.taxonomy import Topic, load_taxonomy, topic_phrases

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One text's result. `probabilities` is calibrated and sums to 1 over the three sentiments.

    Each topic is `{"topic", "polarity", "score", "evidence"}`, `evidence` the clause (or cue)
    that carries it as `{"start", "end", "text"}` offsets into the input text; `mixed` is True when
    the text both praises and complains: as the model's learned head reads it, or by the rules (a
    confidently positive and a confidently negative clause, ...; see `cxnlp.models.pipeline`)."""

    sentiment: str
    probabilities: dict[str, float]
    lang: str
    confidence: float
    topics: list[dict[str, Any]] = field(default_factory=list)
    mixed: bool = False
    # {"score", "level", "evidence"} from cxnlp.text.urgency (evidence offsets into the text).
    urgency: dict[str, Any] = field(default_factory=empty_urgency)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def span_langs(langs: Sequence[str], spans: Sequence[Sequence[Any]]) -> list[str]:
    """Each span's language: its document's, spans in document order."""
    return [lang for lang, ranges in zip(langs, spans, strict=True) for _ in ranges]


class NotFittedError(RuntimeError):
    """The model was used before `fit` (or before loading a trained one)."""


class SentimentModel:
    """Base of the shipped model kinds. Subclasses implement `_logits` and persistence."""

    kind: ClassVar[str] = ""
    # True for a model whose `_logits` / `_forward` / `_read_units` take the texts' languages
    # (a blend with per-language weights); others are called without them.
    reads_langs: ClassVar[bool] = False
    labels: tuple[str, ...] = SENTIMENTS
    # What predict returns per text (cxnlp.models.pipeline builds them through this name).
    prediction_class: ClassVar[type] = Prediction

    def __init__(self) -> None:
        # Calibration temperature per language, "*" for any other; fitted on dev data in training.
        self.temperatures_: dict[str, float] = {"*": 1.0}
        # A prior correction per language: offsets added to the logits (in `labels` order) before
        # the temperature, chosen on dev data in training; a language without one gets none.
        self.biases_: dict[str, list[float]] = {}
        self.fitted_ = False
        self.source_: str | None = None  # the directory it was loaded from, if any
        self.topic_tagger: TopicTagger | None = None  # set when the model directory has topics/
        self.mixed_head: MixedHead | None = None  # set when the model directory has mixed/
        self.urgency_head: UrgencyHead | None = None  # set when the model directory has urgency/
        # How predict reads clauses (mixed threshold, clause topics, cues); see cxnlp.models.pipeline.
        self.aspect_options: AspectOptions = AspectOptions()

    def member(self, kind: str) -> SentimentModel | None:
        """The part of this model of `kind`: itself, or (in a blend) its member of that kind."""
        return self if self.kind == kind else None

    def wants_features(self) -> bool:
        """Whether predicting needs encoder features: the topic head, the `mixed` head or the
        urgency head reads them."""
        return self.topic_tagger is not None or any(
            head is not None and head.n_features > 0
            for head in (self.mixed_head, self.urgency_head)
        )

    def temperatures_for(self, langs: Sequence[str]) -> np.ndarray:
        default = self.temperatures_.get("*", 1.0)
        return np.array([[self.temperatures_.get(lang, default)] for lang in langs])

    def biases_for(self, langs: Sequence[str]) -> np.ndarray:
        zero = [0.0] * len(self.labels)
        default = self.biases_.get("*", zero)
        return np.array([self.biases_.get(lang, default) for lang in langs], dtype=np.float64)

    def calibrated(self, logits: np.ndarray, langs: Sequence[str]) -> np.ndarray:
        """Probabilities from raw logits: each language's prior correction, then its temperature."""
        if len(langs) == 0:
            return np.asarray(logits, dtype=np.float64)
        shifted = np.asarray(logits, dtype=np.float64) + self.biases_for(langs)
        return softmax(shifted, self.temperatures_for(langs))

    def calibration_config(self) -> dict[str, Any]:
        """What a saved model's config records of its calibration."""
        config: dict[str, Any] = {"temperatures": self.temperatures_}
        if self.biases_:
            config["biases"] = self.biases_
        return config

    def read_calibration(self, config: dict[str, Any]) -> None:
        self.temperatures_ = dict(config.get("temperatures", {"*": 1.0}))
        biases = config.get("biases") or {}
        for lang, offsets in biases.items():
            if not isinstance(offsets, list) or len(offsets) != len(self.labels):
                raise ValueError(
                    f"calibration bias for {lang!r} must be {len(self.labels)} numbers, "
                    f"got {offsets!r:.80}"
                )
        self.biases_ = {lang: [float(x) for x in offsets] for lang, offsets in biases.items()}

    def _logits(self, texts: list[str], langs: Sequence[str] | None = None) -> np.ndarray:
        """Raw logits of normalised texts; `langs` (each text's language, when known) matters
        only to a blend with per-language weights."""
        raise NotImplementedError

    def _forward(
        self, texts: list[str], langs: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, for models with an encoder, the pooled features topics are read from."""
        return (self._logits(texts) if langs is None else self._logits(texts, langs)), None

    def _forward_for(
        self, texts: list[str], langs: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """`_forward`, given the languages only by a model that reads them (`reads_langs`), so
        that a subclass written with `_forward(texts)` keeps working."""
        return self._forward(texts, langs) if self.reads_langs else self._forward(texts)

    def _read_units(
        self,
        docs: list[str],
        spans: list[list[tuple[int, int]]],
        langs: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Logits and features of each document and of each of its spans (character ranges
        into it, in order). This default reads each span as a text of its own; the transformer
        pools spans from the document's own encoder pass."""
        pieces = [
            doc[start:end] for doc, ranges in zip(docs, spans, strict=True) for start, end in ranges
        ]
        logits, features = self._forward_for(
            list(docs) + pieces, None if langs is None else list(langs) + span_langs(langs, spans)
        )
        n = len(docs)
        return (
            logits[:n],
            None if features is None else features[:n],
            logits[n:],
            None if features is None else features[n:],
        )

    def read_units(
        self, docs: list[str], spans: list[list[tuple[int, int]]], langs: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Calibrated probabilities and features of each (normalised) document and of each of
        its spans, from one encoder pass: (doc probabilities, doc features, span probabilities,
        span features); spans come in document order, a document's in the order given."""
        self._check_fitted()
        if self.reads_langs:
            units = self._read_units(docs, spans, langs)
        else:
            units = self._read_units(docs, spans)
        doc_logits, doc_features, span_logits, span_features = units
        return (
            self.calibrated(doc_logits, langs),
            doc_features,
            self.calibrated(span_logits, span_langs(langs, spans)),
            span_features,
        )

    def features(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """The pooled encoder features of each text, shape (n, d): what topics are read from."""
        _, features = self.predict_proba_and_features(texts, langs)
        if features is None:
            raise TypeError(f"a {self.kind!r} model has no encoder features (topics need one)")
        return features

    def predict_proba_and_features(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities and the pooled encoder features (None for a model without an
        encoder) from one pass, as training a topic head needs both."""
        self._check_fitted()
        normalised, resolved = self.prepare(texts, langs)
        logits, features = self._forward_for(normalised, resolved)
        return self.calibrated(logits, resolved), features

    def enable_similarity(self) -> None:
        """Make `features` carry plain sentence embeddings too (see the transformer tier)."""
        raise TypeError(f"a {self.kind!r} model has no encoder to embed texts with")

    def add_custom_topics(self, topics: Sequence[Topic] | str | Path) -> list[str]:
        """Tag extra topics from now on, with no retraining: `Topic`s, or a file in the taxonomy's
        format (see `cxnlp.topics.taxonomy`). Returns the names added.

        Each topic is matched by embedding similarity to its definition and cues (any of
        fa / ar / en), with the calibrated threshold stored in the model's topics/ directory.
        """
        if self.topic_tagger is None:
            raise ValueError(
                f"this {self.kind!r} model has no topic head; use a model with topics "
                "(e.g. `default`) to add custom topics"
            )
        if isinstance(topics, (str, Path)):
            topics = load_taxonomy(topics)
        self.enable_similarity()
        for topic in topics:
            phrases, langs = topic_phrases(topic)
            self.topic_tagger.add_custom_topic(topic, self.features(phrases, langs))
        return [topic.name for topic in topics]

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit() or load a trained model "
                "with cxnlp.load()"
            )

    @staticmethod
    def prepare(
        texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> tuple[list[str], list[str]]:
        """Detect each text's language where none is given, then normalise the text for it."""
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, got a single string; wrap it in a list")
        if langs is None:
            langs = [None] * len(texts)
        if len(langs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(langs)} langs")
        resolved = [lang or detect_language(text) for text, lang in zip(texts, langs, strict=True)]
        normalised = [
            normalize(text, lang=lang if lang in LANGS else None)
            for text, lang in zip(texts, resolved, strict=True)
        ]
        return normalised, resolved

    def predict_logits(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Uncalibrated scores, shape (n, 3), columns in `labels` order."""
        self._check_fitted()
        normalised, resolved = self.prepare(texts, langs)
        return self._forward_for(normalised, resolved)[0]

    def predict_proba(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Calibrated probabilities, shape (n, 3), columns in `labels` order."""
        self._check_fitted()
        normalised, resolved = self.prepare(texts, langs)
        return self.calibrated(self._forward_for(normalised, resolved)[0], resolved)

    def predict(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """One `Prediction` per text, in input order: the document's sentiment, its topics with
        the polarity and evidence of the clause that carries each, and `mixed`. A text longer
        than the encoder's max length is read in windows, not truncated (`cxnlp.models.pipeline`)."""
        self._check_fitted()
        return analyze(self, texts, langs, self.aspect_options)

    def save_heads(self, path: Path) -> None:
        """Write the topic head, the `mixed` head and the urgency head, where the model has
        them, into the model directory `path`."""
        if self.topic_tagger is not None:
            self.topic_tagger.save(topics_dir(path))
        if self.mixed_head is not None:
            self.mixed_head.save(mixed_dir(path))
        if self.urgency_head is not None:
            self.urgency_head.save(urgency_dir(path))
