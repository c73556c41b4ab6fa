"""Which examples a training run sees: per-dataset caps, and draw weights that balance languages and
classes so that the smallest pool (Persian) and the rarest class still count."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.config import DataConfig


def cap_per_dataset(
    frame: pd.DataFrame, cap: int | None, seed: int, overrides: dict[str, int] | None = None
) -> pd.DataFrame:
    """At most `cap` rows of each dataset (or its entry in `overrides`), drawn at random but
    stratified by label; `cap=None` (and no overrides) keeps every row."""
    if cap is None and not overrides:
        return frame.copy()
    cap = cap if cap is not None else len(frame)
    parts = []
    for name, rows in frame.groupby("dataset", sort=True):
        limit = (overrides or {}).get(str(name), cap)
        if len(rows) > limit:
            rows = _stratified_sample(rows, limit, seed)
        parts.append(rows)
    return pd.concat(parts).sort_index() if parts else frame.copy()


def _stratified_sample(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Exactly `n` rows, each label keeping its share. Rounding each label's share on its own can
    overshoot `n` (three labels of 3 rows capped at 5 round to 2 + 2 + 2), so the rows left by
    rounding down go to the labels with the largest remainders."""
    counts = rows["label"].value_counts().sort_index()
    exact = counts * n / len(rows)
    quota = exact.astype(int)
    leftover = n - int(quota.sum())
    quota[(exact - quota).sort_values(ascending=False, kind="stable").index[:leftover]] += 1
    return pd.concat(
        rows[rows["label"] == label].sample(n=int(k), random_state=seed)
        for label, k in quota.items()
    )


def draw_weights(frame: pd.DataFrame, config: DataConfig) -> np.ndarray:
    """A probability per row: each language gets its configured share of the draws and, within a
    language, each label an equal share when `balance_classes` is set. Within a language and label,
    datasets share by (rows ** `dataset_temperature`), split evenly over their rows."""
    weights = np.zeros(len(frame))
    datasets = (
        frame["dataset"].astype(str).to_numpy()
        if "dataset" in frame.columns
        else np.zeros(len(frame), dtype=str)
    )
    alpha = config.dataset_temperature
    lang_weights = {lang: config.lang_weights.get(lang, 1.0) for lang in frame["lang"].unique()}
    langs = frame["lang"].to_numpy()
    labels = frame["label"].to_numpy()
    for lang, lang_weight in lang_weights.items():
        in_lang = langs == lang
        if config.balance_classes:
            present = np.unique(labels[in_lang])
            for label in present:
                rows = in_lang & (labels == label)
                weights[rows] = _within(rows, datasets, alpha) * lang_weight / len(present)
        else:
            weights[in_lang] = _within(in_lang, datasets, alpha) * lang_weight
    return weights / weights.sum()


def _within(rows: np.ndarray, datasets: np.ndarray, alpha: float) -> np.ndarray:
    """Weights summing to 1 over `rows`: dataset d gets n_d ** alpha of the mass, split evenly
    (alpha = 1 is every row alike)."""
    names, counts = np.unique(datasets[rows], return_counts=True)
    mass = counts.astype(float) ** alpha
    mass /= mass.sum()
    per_row = dict(zip(names, mass / counts, strict=True))
    return np.array([per_row[d] for d in datasets[rows]])


def epoch_batches(
    weights: np.ndarray,
    lengths: np.ndarray,
    n_examples: int,
    batch_size: int,
    seed: int,
    epoch: int,
    sort_window: int = 64,
) -> list[np.ndarray]:
    """The batches of one epoch: `n_examples` draws by weight (seeded by epoch, so a resumed run
    draws the same), grouped so that texts of similar length share a batch, batches shuffled."""
    rng = np.random.default_rng([seed, epoch])
    drawn = rng.choice(len(weights), size=n_examples, replace=True, p=weights)
    window = batch_size * sort_window
    batches = []
    for start in range(0, len(drawn), window):
        chunk = drawn[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]
