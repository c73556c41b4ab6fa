"""The generalisation check of issue 26 (item 7): a model trained with whole datasets left out,
scored on those datasets' test splits beside models that saw them.

    python benchmarks/leave_out_check.py --report /tmp/leave2out_test.json \\
        --against v3=/tmp/v3_metrics.json v5=models/default/metrics.json

`--report` and each `--against` are `cxnlp evaluate --json` reports (a model's `metrics.json`
is one). The left-out datasets are read from the candidate's `training_config.json`
(`data.exclude`) when `--model` is given, else from `--datasets`. Prints, per left-out dataset
and for the pooled languages, 3-class macro-F1 and accuracy of each model, and the candidate's
difference from each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_report(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def left_out(model_dir: str) -> list[str]:
    config = json.loads((Path(model_dir) / "training_config.json").read_text(encoding="utf-8"))
    return list(config["data"]["exclude"])


def rows(reports: dict[str, dict], datasets: list[str]) -> list[tuple[str, dict[str, dict]]]:
    """(row name, {model: its scores}) for each left-out dataset and each pooled language."""
    out = []
    for name in datasets:
        found = {m: r["by_dataset"].get(name) for m, r in reports.items()}
        if any(found.values()):
            out.append((name, found))
    for lang in ("fa", "ar", "en"):
        out.append((f"pooled {lang}", {m: r["by_lang"].get(lang) for m, r in reports.items()}))
    return out


def table(reports: dict[str, dict], datasets: list[str], candidate: str) -> str:
    names = list(reports)
    head = "| test split | n | " + " | ".join(f"{m} macro-F1 / acc." for m in names)
    head += " | " + " | ".join(f"{candidate} - {m}" for m in names if m != candidate) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(names) - 1)]
    for row, found in rows(reports, datasets):
        n = next((s["n"] for s in found.values() if s), 0)
        cells = [f"{s['macro_f1']:.3f} / {s['accuracy']:.3f}" if s else "-" for s in found.values()]
        ours = found.get(candidate)
        deltas = [
            f"{100 * (ours['macro_f1'] - s['macro_f1']):+.1f}" if ours and s else "-"
            for m, s in found.items()
            if m != candidate
        ]
        lines.append(f"| {row} | {n} | " + " | ".join(cells + deltas) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", required=True, help="the candidate's evaluate --json report")
    parser.add_argument("--name", default="left-out", help="the candidate's name in the table")
    parser.add_argument("--model", help="the candidate's directory (reads its data.exclude)")
    parser.add_argument("--datasets", nargs="*", default=[], help="left-out datasets")
    parser.add_argument("--against", nargs="+", default=[], help="NAME=REPORT of other models")
    args = parser.parse_args()
    datasets = left_out(args.model) if args.model else list(args.datasets)
    if not datasets:
        raise SystemExit("give --model (its training_config.json names them) or --datasets")
    reports = {args.name: read_report(args.report)}
    for item in args.against:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--against {item!r}: expected NAME=REPORT")
        reports[name] = read_report(path)
    print(f"left out: {', '.join(datasets)}")
    print(table(reports, datasets, args.name))


if __name__ == "__main__":
    main()
