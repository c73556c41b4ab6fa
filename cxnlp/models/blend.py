"""A weighted blend of sentiment models: the transformer and the character n-gram tier.

The two see different evidence (contextual subwords against the spelling of dialect and colloquial
words), and their errors differ enough that a blend of their log-probabilities beats either one on
Persian and Arabic reviews; the weight is chosen on dev data by training and the blend is then
calibrated as one model. Each member keeps its own directory inside the blend's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxnlp.modeldir import member_dir, model_class, read_config, write_config
from cxnlp.models.base import SentimentModel, span_langs
from cxnlp.models.calibration import log_softmax


class BlendedSentimentModel(SentimentModel):
    """`sum_i weight_i * log_softmax(member_i logits)`, calibrated by its own temperatures.

    `lang_weights` (chosen on dev data in training) gives a language its own member weights;
    other languages, and texts whose language is not given, get `weights`."""

    kind = "blend"
    reads_langs = True

    def __init__(
        self,
        members: Sequence[SentimentModel],
        weights: Sequence[float],
        lang_weights: dict[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError("a blend needs one weight per member and at least one member")
        kinds = [m.kind for m in members]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"blend members must be of different kinds, got {kinds}")
        self.members = list(members)
        self.weights = _checked_weights(weights, len(members), "*")
        self.lang_weights = {
            str(lang): _checked_weights(w, len(members), lang)
            for lang, w in (lang_weights or {}).items()
        }
        self.fitted_ = all(m.fitted_ for m in members)

    def weights_for(self, langs: Sequence[str] | None, n: int) -> np.ndarray:
        """Each text's member weights, shape (n, members)."""
        if langs is None or not self.lang_weights:
            return np.tile(self.weights, (n, 1))
        return np.array([self.lang_weights.get(lang, self.weights) for lang in langs])

    def member(self, kind: str) -> SentimentModel | None:
        if kind == self.kind:
            return self
        return next((m for m in self.members if m.kind == kind), None)

    def _logits(self, texts: list[str], langs: Sequence[str] | None = None) -> np.ndarray:
        return self._forward(texts, langs)[0]

    def _forward(
        self, texts: list[str], langs: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Blended logits, and the features of the first member that has any (the transformer)."""
        weights = self.weights_for(langs, len(texts))
        total = np.zeros((len(texts), len(self.labels)))
        features = None
        for k, member in enumerate(self.members):
            if weights[:, k].any() or (features is None and self.wants_features()):
                logits, member_features = member._forward(texts)
                total += weights[:, k : k + 1] * log_softmax(logits, axis=1)
                if features is None:
                    features = member_features
        return total, features

    def _read_units(
        self,
        docs: list[str],
        spans: list[list[tuple[int, int]]],
        langs: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Each member reads the documents and spans its own way (the transformer in one pass,
        the n-gram tier each span as a text); their log-probabilities are blended as in
        `_forward`, features taken from the first member that has them."""
        n_spans = sum(len(ranges) for ranges in spans)
        doc_weights = self.weights_for(langs, len(docs))
        span_weights = self.weights_for(
            None if langs is None else span_langs(langs, spans), n_spans
        )
        doc_total = np.zeros((len(docs), len(self.labels)))
        span_total = np.zeros((n_spans, len(self.labels)))
        doc_features = span_features = None
        for k, member in enumerate(self.members):
            if doc_weights[:, k].any() or (doc_features is None and self.wants_features()):
                d_logits, d_features, s_logits, s_features = member._read_units(docs, spans)
                doc_total += doc_weights[:, k : k + 1] * log_softmax(d_logits, axis=1)
                if n_spans:
                    span_total += span_weights[:, k : k + 1] * log_softmax(s_logits, axis=1)
                if doc_features is None:
                    doc_features, span_features = d_features, s_features
        return doc_total, doc_features, span_total, span_features

    def enable_similarity(self) -> None:
        for member in self.members:
            if hasattr(member, "enable_similarity"):
                member.enable_similarity()
                return
        super().enable_similarity()

    def save(self, path: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        entries = []
        for member, weight in zip(self.members, self.weights, strict=True):
            member.save(path / member_dir(member.kind))
            entries.append({"dir": member_dir(member.kind), "weight": weight})
        config: dict[str, Any] = {
            "kind": self.kind,
            "labels": list(self.labels),
            **self.calibration_config(),
            "members": entries,
        }
        if self.lang_weights:
            config["lang_weights"] = self.lang_weights
        write_config(path, {**config, **(extra_config or {})})
        self.save_heads(path)
        return path

    @classmethod
    def load(
        cls, path: str | Path, share_with: SentimentModel | None = None
    ) -> BlendedSentimentModel:
        """`share_with`: a loaded model whose parts each member may share (see
        `cxnlp.models.store.load`)."""
        path = Path(path)
        config = read_config(path)
        entries = _member_entries(path, config.get("members"))
        members = []
        for entry in entries:
            member_path = path / entry["dir"]
            kind = read_config(member_path).get("kind")
            members.append(model_class(kind).load(member_path, share_with=share_with))
        model = cls(
            members,
            [float(entry["weight"]) for entry in entries],
            lang_weights=config.get("lang_weights"),
        )
        model.labels = tuple(config["labels"])
        model.read_calibration(config)
        return model


def _checked_weights(weights: object, n: int, lang: str) -> list[float]:
    """One non-negative weight per member, summing to 1."""
    if (
        not isinstance(weights, list | tuple)
        or len(weights) != n
        or any(isinstance(w, bool) or not isinstance(w, int | float) for w in weights)
    ):
        raise ValueError(f"blend weights for {lang!r} must be {n} numbers, got {weights!r:.80}")
    if any(w < 0 for w in weights) or not np.isclose(sum(weights), 1.0):
        raise ValueError(
            f"blend weights must be non-negative and sum to 1, got {list(weights)} for {lang!r}"
        )
    return [float(w) for w in weights]


def _member_entries(path: Path, entries: object) -> list[dict]:
    """The `members` of a blend config, checked: a list of `{"dir", "weight"}` whose directories
    lie inside the blend's own (so a blend cannot contain itself, however its links go)."""
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            f"{path}: 'members' must be a non-empty list of {{'dir': ..., 'weight': ...}}, "
            f"got {entries!r:.80}"
        )
    root = path.resolve()
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("dir"), str)
            and isinstance(entry.get("weight"), int | float)
            and not isinstance(entry.get("weight"), bool)
        ):
            raise ValueError(
                f"{path}: a blend member must be {{'dir': str, 'weight': number}}, got {entry!r:.80}"
            )
        member = (path / entry["dir"]).resolve()
        if member == root or root not in member.parents:
            raise ValueError(
                f"{path}: blend member {entry['dir']!r} is not a directory inside the blend "
                "(a blend cannot hold itself or a model elsewhere)"
            )
    return entries
