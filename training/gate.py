"""The retraining gate: a candidate replaces the default model only if it loses no more than a set
margin of macro-F1 on any language of the same test sets."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxnlp.models.base import METRICS_FILE
from cxnlp.topics.tagger import TOPICS_DIR


@dataclass
class GateResult:
    promoted: bool
    rows: list[dict[str, Any]]
    margin: float

    def table(self) -> str:
        lines = [f"{'lang':<6} {'current':>8} {'candidate':>10} {'delta':>7}  verdict"]
        for row in self.rows:
            lines.append(
                f"{row['lang']:<6} {row['current']:>8.4f} {row['candidate']:>10.4f} "
                f"{row['delta']:>+7.4f}  {'ok' if row['ok'] else 'WORSE than margin'}"
            )
        verdict = "promoted" if self.promoted else "not promoted"
        lines.append(f"margin {self.margin:.4f}: {verdict}")
        return "\n".join(lines)


def compare(current: dict[str, Any], candidate: dict[str, Any], margin: float) -> GateResult:
    """Compare two evaluation reports language by language (macro-F1)."""
    rows = []
    for lang, cur in sorted(current.get("by_lang", {}).items()):
        cand = candidate.get("by_lang", {}).get(lang)
        if cand is None:
            rows.append(
                {
                    "lang": lang,
                    "current": cur["macro_f1"],
                    "candidate": float("nan"),
                    "delta": float("nan"),
                    "ok": False,
                }
            )
            continue
        delta = cand["macro_f1"] - cur["macro_f1"]
        rows.append(
            {
                "lang": lang,
                "current": cur["macro_f1"],
                "candidate": cand["macro_f1"],
                "delta": delta,
                # The tolerance keeps a loss of exactly `margin` (0.79 - 0.80) on the ok side.
                "ok": delta >= -margin - 1e-9,
            }
        )
    return GateResult(promoted=bool(rows) and all(r["ok"] for r in rows), rows=rows, margin=margin)


def promote(candidate_dir: Path, default_dir: Path) -> Path | None:
    """Make `candidate_dir` the default; the previous default is kept beside it under a dated
    name, which is returned."""
    archived = None
    if default_dir.exists():
        stamp = f"{default_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        archived = default_dir.with_name(stamp)
        # Two promotions within a second must not collide (a rename onto a folder fails).
        n = 1
        while archived.exists():
            n += 1
            archived = default_dir.with_name(f"{stamp}-{n}")
        default_dir.rename(archived)
    shutil.copytree(candidate_dir, default_dir)
    return archived


def save_gate(result: GateResult, path: Path) -> None:
    path.write_text(
        json.dumps(
            {"promoted": result.promoted, "margin": result.margin, "rows": result.rows}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )


def write_metrics(model_dir: Path, report: dict[str, Any]) -> None:
    """Save an evaluation report in a model directory: sentiment scores as metrics.json, topic
    scores (if the report has them) beside the topic head, topics/metrics.json, not twice."""
    sentiment = {k: v for k, v in report.items() if k != "topics"}
    (model_dir / METRICS_FILE).write_text(json.dumps(sentiment, indent=2) + "\n", encoding="utf-8")
    if report.get("topics") and (model_dir / TOPICS_DIR).is_dir():
        (model_dir / TOPICS_DIR / METRICS_FILE).write_text(
            json.dumps(report["topics"], indent=2) + "\n", encoding="utf-8"
        )
