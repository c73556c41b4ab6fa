"""QuaPy's aggregative quantifiers run on probabilities the model already gave (no refitting), for
`benchmarks/quantification.py`.

Each method is fitted on a hand-labeled sample (the model's probabilities and the true labels of
its rows) and estimates the label shares of other rows from their probabilities alone. A label
with fewer than `MIN_LABEL_ROWS` rows in the sample is not estimated (share 0), as the report's
own ACC / PACC do with a label absent from the sample.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

MIN_LABEL_ROWS = 5


class Posteriors(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose input rows are already its class probabilities."""

    def __init__(self, n_classes: int = 3) -> None:
        self.n_classes = n_classes
        self.classes_ = np.arange(n_classes)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Posteriors:
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X).argmax(axis=1)


class OneVsRest:
    """A binary-only QuaPy method made multiclass: one quantifier per label on (1 - p, p), the
    label's share estimated by each, then normalised to sum to 1 (QuaPy's own one-vs-all needs a
    binary classifier per label, which probabilities alone do not give)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def fit(self, X: np.ndarray, y: np.ndarray) -> OneVsRest:
        self.parts = [
            self.make().fit(_binary(X, c), (y == c).astype(int)) for c in range(X.shape[1])
        ]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        shares = np.array([q.predict(_binary(X, c))[1] for c, q in enumerate(self.parts)])
        total = shares.sum()
        return shares / total if total > 0 else np.full(len(shares), 1 / len(shares))


def _binary(X: np.ndarray, c: int) -> np.ndarray:
    return np.column_stack([1 - X[:, c], X[:, c]])


def methods() -> dict[str, Callable[[int, np.ndarray, np.ndarray], Any]]:
    """Every aggregative QuaPy method that runs on probabilities alone, for k labels: name ->
    factory(k, X_sample, y_sample). Left out: the Bayesian ones (jax / numpyro / pystan), RLLS
    (cvxpy), the SVM-perf ones (a compiled binary) and the threshold methods of binary
    classifiers (MAX, X, T50, MS, MS2: crisp decisions at moving thresholds need a score, and
    for three labels a one-vs-rest split of probabilities)."""
    from quapy.method import aggregative as agg
    from quapy.method._kdey import KDEyCS, KDEyHD, KDEyML

    def plain(cls: type, **kw: Any) -> Callable[[int, np.ndarray, np.ndarray], Any]:
        return lambda k, X, y: cls(Posteriors(k), fit_classifier=False, **kw)

    def binary(cls: type) -> Callable[[int, np.ndarray, np.ndarray], Any]:
        return lambda k, X, y: OneVsRest(
            lambda: cls(Posteriors(2), fit_classifier=False, val_split=None)
        )

    return {
        "CC": plain(agg.CC),
        "PCC": plain(agg.PCC, val_split=None),
        "ACC": plain(agg.ACC, val_split=None),
        "PACC": plain(agg.PACC, val_split=None),
        "EMQ": plain(agg.EMQ, val_split=None),
        "EMQ-BCTS": lambda k, X, y: agg.EMQ(
            Posteriors(k), fit_classifier=False, val_split=(X, y), calib="bcts"
        ),
        "BBSEhard": plain(agg.BBSEhard, val_split=None),
        "BBSEsoft": plain(agg.BBSEsoft, val_split=None),
        "DMy-HD": plain(agg.DMy, val_split=None, divergence="HD"),
        "DMy-topsoe": plain(agg.DMy, val_split=None, divergence="topsoe"),
        "EDy": plain(agg.EDy, val_split=None),
        "KDEyML": plain(KDEyML, val_split=None),
        "KDEyHD": plain(KDEyHD, val_split=None),
        "KDEyCS": plain(KDEyCS, val_split=None),
        "HDy (1-vs-rest)": binary(agg.HDy),
        "DyS (1-vs-rest)": binary(agg.DyS),
        "SMM (1-vs-rest)": binary(agg.SMM),
    }


class Fitted:
    """Every QuaPy method fitted on one labeled sample; `estimate` gives each method's three
    shares (label order of the probability columns) for other rows' probabilities."""

    def __init__(self, probabilities: np.ndarray, labels: np.ndarray, seed: int = 0) -> None:
        counts = np.bincount(labels, minlength=probabilities.shape[1])
        self.present = np.flatnonzero(counts >= MIN_LABEL_ROWS)
        self.n_labels = probabilities.shape[1]
        keep = np.isin(labels, self.present)
        X = self._restrict(probabilities[keep])
        y = np.searchsorted(self.present, labels[keep])
        self.methods: dict[str, Any] = {}
        self.failed: dict[str, str] = {}
        for name, make in methods().items():
            np.random.seed(seed)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.methods[name] = make(len(self.present), X, y).fit(X, y)
            except Exception as exc:  # a method that cannot fit this sample is reported, not fatal
                self.failed[name] = f"{type(exc).__name__}: {exc}"[:200]

    def _restrict(self, probabilities: np.ndarray) -> np.ndarray:
        p = probabilities[:, self.present]
        total = p.sum(axis=1, keepdims=True)
        return np.divide(p, total, out=np.full_like(p, 1 / p.shape[1]), where=total > 0)

    def estimate(self, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        X = self._restrict(probabilities)
        out = {}
        for name, quantifier in self.methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    shares = np.asarray(quantifier.predict(X), dtype=np.float64)
                except Exception as exc:
                    self.failed.setdefault(name, f"{type(exc).__name__}: {exc}"[:200])
                    continue
            full = np.zeros(self.n_labels)
            full[self.present] = shares
            out[name] = full
        return out


def app_indices(
    labels: np.ndarray, sample_size: int, n_prevalences: int, repeats: int, seed: int
) -> list[np.ndarray]:
    """QuaPy's artificial-prevalence protocol (APP) over the labels that `labels` holds at least
    20 times: one index array of `sample_size` rows (drawn with replacement within each label)
    per point of the prevalence grid with `n_prevalences` steps per label, `repeats` times."""
    import quapy as qp
    from quapy.data import LabelledCollection
    from quapy.protocol import APP

    present = [c for c in np.unique(labels) if (labels == c).sum() >= 20]
    if len(present) < 2:
        return []
    rows = np.flatnonzero(np.isin(labels, present))
    collection = LabelledCollection(
        rows, np.searchsorted(present, labels[rows]), classes=np.arange(len(present))
    )
    protocol = APP(
        collection,
        sample_size=sample_size,
        n_prevalences=n_prevalences,
        repeats=repeats,
        random_state=seed,
        sanity_check=None,
    )
    with qp.util.temp_seed(seed):
        return [rows[index] for index in protocol.samples_parameters()]
