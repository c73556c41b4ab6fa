"""The classified rows as every part of a report reads them: which rows count, their sentiment and
probabilities in `SENTIMENTS` order, and group labels with missing values named."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxnlp.labels import PROBABILITY_COLUMNS, SENTIMENTS
from cxnlp.report.segments import micro_array

MISSING_GROUP = "(missing)"


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with `_ok`, `_reason`, `_sentiment`, `_p_<label>` (normalised to add up to
    one) and `_micro_<label>` (the probability as given, in millionths: what PCC sums) columns
    added.

    Read back from CSV every cell is a string and a missing error is "", so both count as unset.
    """
    data = frame.reset_index(drop=True).copy()
    error = data["error"].astype("string").str.strip().fillna("")
    sentiment = data["sentiment"].astype("string").str.strip().str.lower()
    probabilities = data[list(PROBABILITY_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    valid = sentiment.isin(SENTIMENTS).fillna(False) & probabilities.notna().all(axis=1)
    data["_ok"] = (error == "") & valid
    data["_reason"] = error.where(error != "", "no sentiment or probabilities in the row")
    data["_sentiment"] = sentiment.where(data["_ok"], None).astype(object)
    p = probabilities.to_numpy(dtype=np.float64)
    for i, label in enumerate(SENTIMENTS):
        data[f"_micro_{label}"] = micro_array(p[:, i])
    totals = p.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / totals
    for i, label in enumerate(SENTIMENTS):
        data[f"_p_{label}"] = p[:, i]
    if "lang" in data.columns:
        data["lang"] = group_labels(data["lang"])
    return data


def group_labels(values: pd.Series) -> pd.Series:
    labels = values.astype("string").str.strip().fillna(MISSING_GROUP)
    return labels.where(labels != "", MISSING_GROUP)
