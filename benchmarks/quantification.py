"""How close the sentiment shares of a report come to the true shares: raw classify-and-count
against the corrected PCC and ACC estimates, on labeled held-out data.

Usage (from the repository root)::

    .venv/bin/python benchmarks/quantification.py --model default [--data ../shared/data]
        [--langs fa ar en] [--splits test] [--per-dataset] [--limit N] [--json results.json]
        [--labeled-sample N [--shifted K] [--quapy [--app STEPS REPEATS]]] [--classified FILE]

`--data` is the shared corpus directory (`{fa,ar,en}/<dataset>.jsonl`; rows of the held-out
`--splits` whose label is one of the three sentiments) or one labeled file (`text,label[,lang]`).
The model labels every text; `cxnlp.report.summary.summarize` gives the raw, PCC and ACC shares (ACC from
the model's `dev_confusion.json`, never from these labels), printed per language (and per dataset
with `--per-dataset`) next to the true shares, with absolute errors in percentage points. The
target of issue 5: corrected shares within ±3 points of the true ones. `--limit N` labels a random
N rows per language, for a quick run.

`--labeled-sample N` (corpus directory only) measures what a team gains by hand-labeling a sample
of its own channel: for each dataset with a dev split, N random dev rows of that dataset are the
labeled sample (`cxnlp report --gold-col`), and ACC and PACC from its confusion are compared with
the dev-matrix ACC on that dataset's test rows. Dev and test of one dataset share their class mix,
so `--shifted K` also draws K test subsamples per dataset with random class mixes (300 rows each,
mixes from a flat Dirichlet over the labels the dataset has): the sample must then correct a
prevalence it did not see. `--limit` applies per dataset here.

`--quapy` (with `--labeled-sample`) adds every aggregative method of QuaPy that runs on the
model's probabilities (`benchmarks/_quapy_methods.py`: CC, PCC, ACC, PACC, EMQ, EMQ-BCTS, BBSE,
DMy / HDy, EDy, KDEy, DyS, SMM), each fitted on the same labeled sample, and QuaPy's
artificial-prevalence protocol (`--app STEPS REPEATS`: 300-row samples of each test file at every
point of a prevalence grid, e.g. all-negative to all-positive) beside the natural test files; a
Markdown table sums it up. `--classified FILE` keeps the model's labels for a rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cxnlp.labels import LANGS, SENTIMENTS  # noqa: E402
from cxnlp.modeldir import DEV_CONFUSION_FILE, read_dev_confusion  # noqa: E402
from cxnlp.models.store import load, resolve_model  # noqa: E402
from cxnlp.report.summary import summarize  # noqa: E402

TARGET_POINTS = 3.0
METHODS = ("raw", "pcc", "acc", "sample_acc", "sample_pacc")
SHIFTED_ROWS = 300


def load_labeled(data: Path, langs: tuple[str, ...], splits: tuple[str, ...]) -> pd.DataFrame:
    """Held-out rows with a three-way sentiment label: text, label, lang, dataset (and split, for
    the corpus directory)."""
    if data.is_dir():
        from training.data import load_corpus

        frame = load_corpus(data, langs=langs)
        frame = frame[frame["split"].isin(splits)]
    else:
        from training.evaluate import load_eval_frame

        frame = load_eval_frame(data)
        frame = frame[frame["lang"].isin(langs)]
    frame = frame[frame["label"].isin(SENTIMENTS)]
    if frame.empty:
        raise SystemExit(f"no rows of {langs} with splits {splits} and a sentiment label in {data}")
    columns = ["text", "label", "lang", "dataset"] + (["split"] if "split" in frame else [])
    return frame[columns].reset_index(drop=True)


def classify(model, frame: pd.DataFrame, batch: int) -> pd.DataFrame:
    """`frame` as `cxnlp classify` would write it (the dataset's language stands for `lang`)."""
    probabilities = []
    started = time.perf_counter()
    for start in range(0, len(frame), batch):
        part = frame.iloc[start : start + batch]
        probabilities.append(
            model.predict_proba(part["text"].astype(str).tolist(), part["lang"].tolist())
        )
        done = min(start + batch, len(frame))
        rate = done / (time.perf_counter() - started)
        print(f"\r  {done}/{len(frame)} texts, {rate:.0f}/s", end="", file=sys.stderr)
    print(file=sys.stderr)
    p = np.concatenate(probabilities) if probabilities else np.zeros((0, 3))
    out = frame.copy()
    out["sentiment"] = [SENTIMENTS[i] for i in p.argmax(axis=1)]
    for i, label in enumerate(SENTIMENTS):
        out[f"p_{label}"] = p[:, i]
    out["error"] = None
    return out


def cached_classify(
    model_dir: Path, frame: pd.DataFrame, batch: int, path: str | None
) -> pd.DataFrame:
    """`classify(frame)`, read from `path` when it holds the same rows labeled by the same model."""
    if path and Path(path).exists():
        cached = pd.read_parquet(path)
        same_rows = len(cached) == len(frame) and cached["text"].tolist() == frame["text"].tolist()
        if same_rows and cached.attrs.get("model") == str(model_dir):
            print(f"labels of {len(cached)} rows read from {path}", file=sys.stderr)
            return cached
    labeled = classify(load(model_dir), frame, batch)
    if path:
        labeled.attrs["model"] = str(model_dir)
        labeled.to_parquet(path)
    return labeled


def compare(
    name: str,
    segment: dict,
    labels: pd.Series,
    sample: dict | None = None,
    quapy: dict[str, np.ndarray] | None = None,
) -> dict:
    """True shares and each method's shares and absolute errors (points) for one segment;
    `sample` is the same segment summarised with a labeled sample (its ACC and PACC), `quapy`
    the shares each QuaPy method fitted on that sample estimates."""
    true = labels.value_counts(normalize=True).reindex(SENTIMENTS, fill_value=0.0)
    row = {"segment": name, "n": int(segment["n"]), "true": true.to_dict()}
    estimates = dict(segment)
    if sample is not None:
        estimates.update(sample_acc=sample.get("acc"), sample_pacc=sample.get("pacc"))
    for method, shares in (quapy or {}).items():
        estimates[f"quapy {method}"] = {
            "shares": dict(zip(SENTIMENTS, shares.tolist(), strict=True))
        }
    for method in [*METHODS, *(f"quapy {m}" for m in quapy or {})]:
        estimate = estimates.get(method)
        if not estimate:
            continue
        shares = estimate["shares"]
        errors = {s: abs(shares[s] - true[s]) * 100 for s in SENTIMENTS}
        row[method] = {"shares": shares, "abs_error_points": errors, "max": max(errors.values())}
    return row


def print_rows(rows: list[dict]) -> None:
    width = max(len(m) for m in METHODS) + 1
    header = f"{'segment':<44}{'n':>7}  {'':<{width}}" + "".join(f"{s:>10}" for s in SENTIMENTS)
    print(header + f"{'max err':>10}")
    for row in rows:
        print(f"{row['segment'][:43]:<44}{row['n']:>7}  {'true':<{width}}" + _pcts(row["true"]))
        for method in METHODS:
            if method in row:
                r = row[method]
                errors = "".join(f"{r['abs_error_points'][s]:>10.1f}" for s in SENTIMENTS)
                print(f"{'':<53}{method:<{width}}" + _pcts(r["shares"]) + f"{r['max']:>10.1f}")
                print(f"{'':<53}{'|err|':<{width}}" + errors)
    print()


def print_within(title: str, rows: list[dict]) -> None:
    """Per method: how many segments land within the target, and the median worst error."""
    print(title)
    for method in _methods_in(rows):
        worst = [r[method]["max"] for r in rows if method in r]
        within = sum(w <= TARGET_POINTS for w in worst)
        print(
            f"  {method:<24} {within}/{len(worst)} within ±{TARGET_POINTS:g} points; "
            f"median worst-label error {float(np.median(worst)):.1f}"
        )


def _methods_in(rows: list[dict]) -> list[str]:
    names = [k for r in rows for k in r if k in METHODS or k.startswith("quapy ")]
    return list(dict.fromkeys(names))


def print_table(columns: dict[str, list[dict]]) -> None:
    """One Markdown row per method: for each set of segments (`columns`: title -> rows), the
    median worst-label error (points) and how many segments are within the target."""
    names = _methods_in([r for rows in columns.values() for r in rows])
    head = "".join(f" {t}: median worst-label error | within ±{TARGET_POINTS:g} |" for t in columns)
    print("| method |" + head)
    print("|---" * (1 + 2 * len(columns)) + "|")
    for name in names:
        cells = []
        for rows in columns.values():
            worst = [r[name]["max"] for r in rows if name in r]
            within = sum(w <= TARGET_POINTS for w in worst)
            cells += (
                [f"{float(np.median(worst)):.1f}", f"{within}/{len(worst)}"] if worst else ["", ""]
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


def per_dataset_with_sample(
    test: pd.DataFrame,
    dev: pd.DataFrame,
    confusion: dict | None,
    n_sample: int,
    shifted: int,
    seed: int,
    quapy: bool = False,
    app: tuple[int, int] = (0, 0),
) -> tuple[list[dict], list[dict], list[dict], dict[str, str]]:
    """Rows comparing every method per dataset, the labeled sample being `n_sample` random dev
    rows of the same dataset; then the same on `shifted` re-mixed test subsamples per dataset,
    and (with `quapy`) on the samples of QuaPy's artificial-prevalence protocol, `app` =
    (prevalence steps per label, repeats). Also the QuaPy methods that failed, with why."""
    rng = np.random.default_rng(seed)
    natural, remixed, app_rows, failed = [], [], [], {}
    for dataset, part in test.groupby("dataset", sort=True):
        pool = dev[dev["dataset"] == dataset]
        if len(pool) < 30:
            continue
        sample = pool.sample(min(len(pool), n_sample), random_state=seed)
        name = f"{part['lang'].iloc[0]}/{dataset}"
        fitted = None
        if quapy:
            from _quapy_methods import Fitted

            fitted = Fitted(_probabilities(sample), _label_index(sample), seed)
        natural.append(_with_sample(part, name, confusion, sample, fitted))
        present = [s for s in SENTIMENTS if (part["label"] == s).sum() >= 20]
        for k in range(shifted):
            mix = rng.dirichlet(np.ones(len(present)))
            counts = np.round(mix * SHIFTED_ROWS).astype(int)
            drawn = [
                part[part["label"] == label].sample(int(c), replace=True, random_state=rng)
                for label, c in zip(present, counts, strict=True)
                if c
            ]
            remixed.append(
                _with_sample(
                    pd.concat(drawn), f"{name} re-mixed #{k + 1}", confusion, sample, fitted
                )
            )
        if fitted is not None and app[0]:
            from _quapy_methods import app_indices

            indices = app_indices(_label_index(part), SHIFTED_ROWS, *app, seed)
            for k, index in enumerate(indices):
                rows = part.iloc[index]
                app_rows.append(
                    _with_sample(rows, f"{name} APP #{k + 1}", confusion, sample, fitted)
                )
        if fitted is not None:
            failed.update({f"{name} {m}": why for m, why in fitted.failed.items()})
        print(f"  {name}: done", file=sys.stderr)
    return natural, remixed, app_rows, failed


def _probabilities(rows: pd.DataFrame) -> np.ndarray:
    return rows[[f"p_{s}" for s in SENTIMENTS]].to_numpy(dtype=np.float64)


def _label_index(rows: pd.DataFrame) -> np.ndarray:
    return rows["label"].map({s: i for i, s in enumerate(SENTIMENTS)}).to_numpy()


def _with_sample(
    rows: pd.DataFrame, name: str, confusion: dict | None, sample: pd.DataFrame, fitted=None
) -> dict:
    plain = summarize(rows, confusion=confusion)["overall"]
    with_sample = summarize(rows, labeled=sample, gold_col="label")["overall"]
    quapy = fitted.estimate(_probabilities(rows)) if fitted is not None else None
    return compare(name, plain, rows["label"], with_sample, quapy)


def _pcts(shares: dict) -> str:
    return "".join(f"{100 * shares[s]:>9.1f}%" for s in SENTIMENTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="model name under models/ or a path")
    parser.add_argument("--data", default=str(REPO_ROOT / ".." / "shared" / "data"))
    parser.add_argument("--langs", nargs="+", default=list(LANGS), choices=list(LANGS))
    parser.add_argument("--splits", nargs="+", default=["test"], help="held-out splits to use")
    parser.add_argument("--per-dataset", action="store_true", help="also per dataset")
    parser.add_argument("--limit", type=int, default=None, help="random rows per language")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--classified",
        default=None,
        help="a Parquet file keeping the model's labels of the rows drawn: written on the first "
        "run, read back by a later run that draws the same rows (same --data, --limit, --seed)",
    )
    parser.add_argument(
        "--labeled-sample",
        type=int,
        default=0,
        help="rows of each dataset's dev split that stand for a team's hand-labeled sample",
    )
    parser.add_argument(
        "--shifted", type=int, default=0, help="re-mixed test subsamples per dataset"
    )
    parser.add_argument(
        "--quapy",
        action="store_true",
        help="with --labeled-sample: also every aggregative QuaPy method fitted on the sample",
    )
    parser.add_argument(
        "--app",
        type=int,
        nargs=2,
        default=(5, 1),
        metavar=("STEPS", "REPEATS"),
        help="with --quapy: QuaPy's artificial-prevalence protocol on each test file, STEPS "
        "prevalence values per label (5: 0, 25, 50, 75, 100%%), REPEATS samples of 300 rows per "
        "grid point (0 0: off)",
    )
    args = parser.parse_args()

    model_dir = resolve_model(args.model)
    confusion = read_dev_confusion(model_dir)
    if confusion is None:
        print(f"note: {model_dir} has no {DEV_CONFUSION_FILE}; ACC is left out", file=sys.stderr)
    data = Path(args.data)
    if args.labeled_sample and not data.is_dir():
        raise SystemExit("--labeled-sample needs the corpus directory (dev splits per dataset)")
    splits = tuple(args.splits) + (("dev",) if args.labeled_sample else ())
    frame = load_labeled(data, tuple(args.langs), splits)
    if args.labeled_sample:  # only datasets with a dev split to draw the sample from
        dev_rows = frame.loc[frame["split"] == "dev", "dataset"].value_counts()
        frame = frame[frame["dataset"].isin(dev_rows.index[dev_rows >= 30])]
    if args.limit:
        by = ["dataset", "split"] if args.labeled_sample else ["lang"]
        frame = pd.concat(
            [
                g.sample(min(len(g), args.limit), random_state=args.seed)
                for _, g in frame.groupby(by)
            ],
            ignore_index=True,
        )
    print(f"model {model_dir}; {len(frame)} labeled rows from {args.data}", file=sys.stderr)
    labeled = cached_classify(model_dir, frame, args.batch, args.classified)
    results: dict = {"model": str(model_dir), "data": args.data, "splits": args.splits}
    if args.labeled_sample:
        dev = labeled[labeled["split"] == "dev"]
        test = labeled[labeled["split"].isin(args.splits)]
        natural, remixed, app_rows, failed = per_dataset_with_sample(
            test, dev, confusion, args.labeled_sample, args.shifted, args.seed, args.quapy, args.app
        )
        print_rows(natural + remixed)
        print_within(f"test files as they are ({len(natural)} datasets with a dev split):", natural)
        if remixed:
            print_within(f"re-mixed test subsamples ({len(remixed)}):", remixed)
        if app_rows:
            print_within(f"QuaPy APP samples ({len(app_rows)}):", app_rows)
        columns = {f"test files ({len(natural)})": natural}
        if remixed:
            columns[f"re-mixed ({len(remixed)})"] = remixed
        if app_rows:
            columns[f"APP ({len(app_rows)})"] = app_rows
        print()
        print_table(columns)
        for what, why in failed.items():
            print(f"failed: {what}: {why}")
        results.update(
            labeled_sample=args.labeled_sample,
            rows=natural,
            shifted_rows=remixed,
            app_rows=app_rows,
            quapy_failed=failed,
        )
    else:
        group_by = ["dataset"] if args.per_dataset else []
        summary = summarize(labeled, group_by=group_by, confusion=confusion, max_groups=1000)
        rows = [compare("all", summary["overall"], labeled["label"])]
        for lang, segment in summary["by_lang"].items():
            rows.append(compare(lang, segment, labeled.loc[labeled["lang"] == lang, "label"]))
        if args.per_dataset:
            for dataset, segment in summary["by_group"]["dataset"].items():
                labels = labeled.loc[labeled["dataset"] == dataset, "label"]
                rows.append(
                    compare(f"{labeled.loc[labels.index[0], 'lang']}/{dataset}", segment, labels)
                )
        print_rows(rows)
        print_within("languages:", [r for r in rows if r["segment"] in LANGS])
        if args.per_dataset:
            print_within("test files:", [r for r in rows if "/" in r["segment"]])
        results["rows"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
