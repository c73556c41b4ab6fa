"""`build_report()`: the whole workflow of `cxnlp report` as one call that a notebook or a script
can make: read a classified export, find the model's dev confusion matrix (or use a hand-labeled
sample), summarise, and write the JSON and HTML reports."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cxnlp.io.tables import read_table
from cxnlp.modeldir import DEV_CONFUSION_FILE, read_dev_confusion
from cxnlp.report.html import write_html
from cxnlp.report.summary import summarize

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"


def report_json(summary: dict[str, Any]) -> str:
    """The summary as the standard JSON text `cxnlp report --json` writes."""
    return json.dumps(summary, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def build_report(
    classified: str | Path | pd.DataFrame,
    *,
    model: str | Path | None = None,
    gold_col: str | None = None,
    labeled: str | Path | pd.DataFrame | None = None,
    group_by: Sequence[str] = (),
    date_col: str | None = None,
    period: str | None = None,
    date_format: str | None = None,
    score_col: str | Sequence[str] | None = None,
    score_kind: str | None = None,
    alpha: float = 0.05,
    p_adjust: str = "holm",
    baseline: str = "previous",
    text_col: str = "text",
    json_path: str | Path | None = None,
    html_path: str | Path | None = None,
    title: str | None = None,
    dev_acc: bool = False,
) -> dict[str, Any]:
    """Summarise a `cxnlp classify` output (a path or a frame) and write the reports asked for.

    ACC from the dev confusion matrix of `model` (a name or a path; by default the `default`
    model) only with `dev_acc`: that matrix describes the model's training mix, not the user's
    channel, and on ordinary exports its ACC was worse than raw, so it is never the default. With `gold_col`, the
    rows of `labeled` (a separate classified file or frame; by default `classified` itself) that
    carry a hand-given sentiment there replace it (see `cxnlp.report.quantification`). The other
    settings are those of `cxnlp.report.summary.summarize`. Returns the summary dict.

    >>> import cxnlp, tempfile
    >>> out = tempfile.mkdtemp()
    >>> _ = cxnlp.classify_file(cxnlp.load("fast"), "examples/reviews.csv", f"{out}/l.csv",
    ...                         progress=False)
    >>> summary = build_report(f"{out}/l.csv", model="fast", html_path=f"{out}/report.html")
    >>> summary["classified"]
    48
    """
    from cxnlp.models.store import resolve_model

    if labeled is not None and not gold_col:
        raise ValueError("--labeled needs --gold-col: the column that holds the hand-given labels")
    frame = classified if isinstance(classified, pd.DataFrame) else read_table(classified)
    confusion, note, model_dir = None, None, None
    try:
        model_dir = resolve_model(model or DEFAULT_MODEL)
    except FileNotFoundError:
        if model:  # a model asked for by name must exist; the default one may not
            raise
    if not dev_acc:
        note = (
            "ACC from the model's dev confusion matrix is off (it can be worse than raw on your "
            "data): label a sample (--gold-col) for a correction, or pass --dev-acc"
        )
    elif model_dir is None:
        note = "ACC omitted: no default model to read a dev confusion matrix from (pass --model)"
    else:
        confusion = read_dev_confusion(model_dir)
        if confusion is None:
            note = f"ACC omitted: the model {model_dir} has no {DEV_CONFUSION_FILE}"
    sample = None
    if gold_col:
        if labeled is None:
            sample = frame
        else:
            sample = labeled if isinstance(labeled, pd.DataFrame) else read_table(labeled)
    summary = summarize(
        frame,
        labeled=sample,
        gold_col=gold_col or "label",
        group_by=list(group_by),
        date_col=date_col,
        period=period,
        date_format=date_format,
        score_col=score_col,
        score_kind=score_kind,
        confusion=confusion,
        alpha=alpha,
        p_adjust=p_adjust,
        baseline=baseline,
        text_col=text_col,
        no_confusion_note=note,
    )
    if not isinstance(classified, pd.DataFrame):
        summary["source"] = str(classified)
    if json_path:
        Path(json_path).write_text(report_json(summary), encoding="utf-8")
    if html_path:
        name = Path(classified).name if not isinstance(classified, pd.DataFrame) else "table"
        write_html(summary, html_path, title=title or f"Customer feedback: {name}")
    return summary
