"""Which examples a training run sees: per-dataset caps, and draw weights that balance languages and
classes so that the smallest pool (Persian) and the rarest class still count."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.config import DataConfig


def cap_per_dataset(
    frame: pd.DataFrame, cap: int, seed: int, overrides: dict[str, int] | None = None
) -> pd.DataFrame:
    """At most `cap` rows of each dataset (or its entry in `overrides`), drawn at random but
    stratified by label."""
    parts = []
    for name, rows in frame.groupby("dataset", sort=True):
        limit = (overrides or {}).get(str(name), cap)
        if len(rows) > limit:
            rows = rows.groupby("label").sample(frac=limit / len(rows), random_state=seed)
        parts.append(rows)
    return pd.concat(parts).sort_index()


def draw_weights(frame: pd.DataFrame, config: DataConfig) -> np.ndarray:
    """A probability per row: each language gets its configured share of the draws and, within a
    language, each label an equal share when `balance_classes` is set."""
    weights = np.zeros(len(frame))
    lang_weights = {lang: config.lang_weights.get(lang, 1.0) for lang in frame["lang"].unique()}
    total_lang = sum(lang_weights.values())
    langs = frame["lang"].to_numpy()
    labels = frame["label"].to_numpy()
    for lang, lang_weight in lang_weights.items():
        in_lang = langs == lang
        if config.balance_classes:
            present = np.unique(labels[in_lang])
            for label in present:
                rows = in_lang & (labels == label)
                weights[rows] = lang_weight / total_lang / len(present) / rows.sum()
        else:
            weights[in_lang] = lang_weight / total_lang / in_lang.sum()
    return weights / weights.sum()


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
