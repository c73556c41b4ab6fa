"""The fast tier: character n-gram TF-IDF with logistic regression.

A floor for the transformer to beat and a tier for very large batches. The n-grams are hashed, so
the model has no vocabulary to store: its state is the IDF vector and the regression weights,
saved as safetensors plus JSON like every cxnlp model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save_file

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import WEIGHTS_FILE, read_config, write_config
from cxnlp.models.base import SentimentModel
from cxnlp.models.ngram_hash import tfidf_linear_scores

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer


class SavedIdf:
    """The IDF weights of a saved model's `TfidfTransformer(sublinear_tf=True)`, all that
    prediction reads (`idf_`); `transform` (for training code) hands them to scikit-learn, which
    a loaded model otherwise never imports."""

    def __init__(self, idf: np.ndarray) -> None:
        self.idf_ = idf

    def transform(self, counts: Any) -> Any:
        from sklearn.feature_extraction.text import TfidfTransformer

        tfidf = TfidfTransformer(sublinear_tf=True)
        tfidf.idf_ = self.idf_
        return tfidf.transform(counts)


class SavedLinear:
    """A saved model's logistic regression weights: `coef_`, `intercept_`, `classes_`, as the
    fitted `LogisticRegression` has them."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.coef_ = coef
        self.intercept_ = intercept
        self.classes_ = np.arange(len(intercept))


class FastSentimentModel(SentimentModel):
    """Char n-gram TF-IDF + logistic regression over the three sentiments.

    >>> model = FastSentimentModel(n_features=2**12).fit(
    ...     ["great food", "awful service", "it is a phone"] * 3,
    ...     ["positive", "negative", "neutral"] * 3,
    ... )
    >>> model.predict(["great food"], langs=["en"])[0].sentiment
    'positive'
    """

    kind = "fast"

    def __init__(
        self,
        n_features: int = 2**20,
        ngram_range: tuple[int, int] = (1, 5),
        C: float = 4.0,  # noqa: N803 - scikit-learn's name
        max_iter: int = 300,
    ) -> None:
        super().__init__()
        if n_features < 16 or n_features & (n_features - 1):
            raise ValueError(f"n_features must be a power of two >= 16, got {n_features}")
        self.n_features = n_features
        self.ngram_range = tuple(ngram_range)
        self.C = C
        self.max_iter = max_iter

    def _vectorizer(self) -> HashingVectorizer:
        """scikit-learn's vectoriser of these n-grams (training; prediction computes the same
        features without it, see `cxnlp.models.ngram_hash`)."""
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            analyzer="char_wb",
            ngram_range=self.ngram_range,
            n_features=self.n_features,
            alternate_sign=False,
            norm=None,
            lowercase=True,
        )

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        langs: Sequence[str | None] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> FastSentimentModel:
        unknown = sorted(set(labels) - set(SENTIMENTS))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; expected {list(SENTIMENTS)}")
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        normalised, _ = self.prepare(texts, langs)
        counts = self._vectorizer().transform(normalised)
        self.tfidf_ = TfidfTransformer(sublinear_tf=True).fit(counts)
        y = np.array([SENTIMENTS.index(label) for label in labels])
        self.classifier_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.classifier_.fit(self.tfidf_.transform(counts), y, sample_weight=sample_weight)
        if list(self.classifier_.classes_) != list(range(len(SENTIMENTS))):
            raise ValueError("training data must contain all three sentiments")
        self.fitted_ = True
        return self

    def _logits(self, texts: list[str], langs: Sequence[str] | None = None) -> np.ndarray:
        """`classifier_.decision_function(tfidf_.transform(_vectorizer().transform(texts)))`,
        computed in numpy (the same floats; `cxnlp.models.ngram_hash`)."""
        return tfidf_linear_scores(
            texts,
            self.n_features,
            self.ngram_range,
            np.asarray(self.tfidf_.idf_, dtype=np.float64),
            np.asarray(self.classifier_.coef_, dtype=np.float64),
            np.asarray(self.classifier_.intercept_, dtype=np.float64),
        )

    def save(self, path: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        # safetensors writes an array's memory as it lies: scikit-learn's coef_ is Fortran-ordered,
        # so without the C-order copy the weights load scrambled.
        save_file(
            {
                "idf": np.ascontiguousarray(self.tfidf_.idf_, dtype=np.float32),
                "coef": np.ascontiguousarray(self.classifier_.coef_, dtype=np.float32),
                "intercept": np.ascontiguousarray(self.classifier_.intercept_, dtype=np.float32),
            },
            str(path / WEIGHTS_FILE),
        )
        write_config(
            path,
            {
                "kind": self.kind,
                "labels": list(self.labels),
                **self.calibration_config(),
                "n_features": self.n_features,
                "ngram_range": list(self.ngram_range),
                "analyzer": "char_wb",
                "C": self.C,
                **(extra_config or {}),
            },
        )
        return path

    @classmethod
    def load(cls, path: str | Path, share_with: SentimentModel | None = None) -> FastSentimentModel:
        """`share_with`: a loaded model whose n-gram member's IDF this model takes (one array in
        memory, not two) where it is the same, as for a model `cxnlp adapt` made from it."""
        path = Path(path)
        config = read_config(path)
        model = cls(n_features=config["n_features"], ngram_range=tuple(config["ngram_range"]))
        model.C = config.get("C", model.C)
        weights = load_file(str(path / WEIGHTS_FILE))
        model.tfidf_ = SavedIdf(weights["idf"].astype(np.float64))
        base = share_with.member(cls.kind) if share_with is not None else None
        if (
            isinstance(base, FastSentimentModel)
            and base.n_features == model.n_features
            and np.array_equal(base.tfidf_.idf_, model.tfidf_.idf_)
        ):
            model.tfidf_ = base.tfidf_
        model.classifier_ = SavedLinear(
            weights["coef"].astype(np.float64), weights["intercept"].astype(np.float64)
        )
        model.read_calibration(config)
        model.fitted_ = True
        return model
