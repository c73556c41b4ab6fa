"""The retraining gate: a candidate replaces the default model only if it loses no more than a set
margin of macro-F1 on any language of the same test sets."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxnlp.modeldir import GateRecord, write_gate, write_metrics


@dataclass
class GateResult:
    promoted: bool
    rows: list[dict[str, Any]]
    margin: float
    # Where the replaced default was kept, once `run_gate` has promoted the candidate.
    archived: Path | None = None

    def table(self) -> str:
        lines = [f"{'lang':<6} {'current':>8} {'candidate':>10} {'delta':>7}  verdict"]
        for row in self.rows:
            lines.append(
                f"{row['lang']:<6} {row['current']:>8.4f} {row['candidate']:>10.4f} "
                f"{row['delta']:>+7.4f}  {'ok' if row['ok'] else 'WORSE than margin'}"
            )
        lines.append(f"margin {self.margin:.4f}: {self.verdict}")
        return "\n".join(lines)

    @property
    def verdict(self) -> str:
        return "promoted" if self.promoted else "not promoted"

    def record(self, reference: str | Path) -> GateRecord:
        """The verdict as the model directory's gate record (`cxnlp.modeldir.GateRecord`)."""
        rows = [
            {
                "part": "test",
                "lang": r["lang"],
                "n": None,
                "reference": r["current"],
                "candidate": None if math.isnan(r["candidate"]) else r["candidate"],
                "delta": None if math.isnan(r["delta"]) else r["delta"],
                "ok": r["ok"],
            }
            for r in self.rows
        ]
        return GateRecord("promote", self.promoted, self.verdict, self.margin, str(reference), rows)


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


def load_saved_report(path: str | Path | None) -> dict[str, Any] | None:
    """A saved `cxnlp evaluate --json` report, or None when no path is given."""
    if path is None:
        return None
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    if "by_lang" not in report:
        raise ValueError(f"{path} is not a `cxnlp evaluate --json` report (no 'by_lang')")
    return report


def run_gate(
    candidate: str | Path,
    current_dir: str | Path,
    *,
    test_data: str | Path,
    margin: float = 0.01,
    candidate_report: str | Path | None = None,
    current_report: str | Path | None = None,
) -> GateResult:
    """The whole promotion workflow of `cxnlp promote` (and `cxnlp train --promote`).

    Evaluates the candidate and the current model on `test_data` (or reuses the saved reports,
    which must name the same data), saves the candidate's metrics and the verdict (gate.json) in
    its directory, and, if it passes, copies it over `current_dir` (the old one is archived, see
    `promote`). A first model, with no current one, is promoted as is.
    """
    from cxnlp.models.store import load
    from training.evaluate import evaluate

    candidate, current_dir = Path(candidate), Path(current_dir)
    saved = {
        "candidate": load_saved_report(candidate_report),
        "current": load_saved_report(current_report),
    }
    reports = [r for r in saved.values() if r is not None]
    if len({str(r.get("data")) for r in reports}) > 1:
        raise ValueError(
            "the saved reports were made on different data: "
            + ", ".join(f"{k} {r.get('data')!r}" for k, r in saved.items() if r is not None)
        )
    candidate_scores = saved["candidate"] or evaluate(load(candidate), test_data)
    write_metrics(candidate, candidate_scores)
    if current_dir.exists():
        current_scores = saved["current"] or evaluate(load(current_dir), test_data)
        result = compare(current_scores, candidate_scores, margin)
    else:
        result = compare({}, candidate_scores, margin)
        result.promoted = True
    write_gate(candidate, result.record(current_dir))
    if result.promoted:
        result.archived = promote(candidate, current_dir)
    return result
