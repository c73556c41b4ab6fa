"""Rows -> gain of `cxnlp adapt`: adapt the shipped model with N rows of one pool dataset's train
split, score base and adapted on that dataset's test split and on the other languages' pooled
test rows, and time the adaptation; then 300 rows chosen by `cxnlp select` against 300 random.

    python benchmarks/adapt_gain.py --model default --data ../shared/data \
        --datasets digikala_zhpinkman omcca_jeeran semeval2013_2016_task4a_en \
        --rows 500 200 1000 --select-dataset digikala_zhpinkman --json /tmp/adapt_gain.json

Without --datasets, the weakest 3-class dataset of each language (by the model's metrics.json,
among those with at least 1,200 train rows) is taken. Results are printed (and saved) as each run
ends, so a run cut short still leaves the rows it finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxnlp.labels import SENTIMENTS  # noqa: E402


def macro_f1(probabilities: np.ndarray, labels: pd.Series) -> float:
    y = [SENTIMENTS.index(label) for label in labels]
    return float(
        f1_score(y, probabilities.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0)
    )


def weakest(model_dir: Path, corpus: pd.DataFrame) -> list[str]:
    metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    train = corpus[corpus["split"] == "train"]
    chosen = []
    for lang in ("fa", "ar", "en"):
        candidates = []
        for name, scores in metrics["by_dataset"].items():
            rows = train[train["dataset"] == name]
            test = corpus[(corpus["dataset"] == name) & (corpus["split"] == "test")]
            if rows.empty or rows["lang"].iloc[0] != lang or len(rows) < 1200 or test.empty:
                continue
            if set(test["label"]) >= set(SENTIMENTS):  # 3-class: macro-F1 means the same
                candidates.append((scores["macro_f1"], name))
        if candidates:
            chosen.append(min(candidates)[1])
    return chosen


class Scorer:
    """Test rows of one dataset and of the other languages, with the base's scores cached."""

    def __init__(self, corpus: pd.DataFrame, test_limit: int, other_per_lang: int, seed: int):
        self.test = corpus[corpus["split"] == "test"].reset_index(drop=True)
        self.test_limit, self.other_per_lang, self.seed = test_limit, other_per_lang, seed
        self.base_cache: dict[str, float] = {}

    def frames(self, dataset: str) -> dict[str, pd.DataFrame]:
        own = self.test[self.test["dataset"] == dataset]
        if len(own) > self.test_limit:
            own = own.sample(self.test_limit, random_state=self.seed)
        lang = own["lang"].iloc[0]
        parts = {dataset: own}
        for other in ("fa", "ar", "en"):
            if other == lang:
                continue
            pool = self.test[self.test["lang"] == other]
            parts[f"{other} pooled"] = pool.sample(
                min(self.other_per_lang, len(pool)), random_state=self.seed
            )
        return parts

    def score(self, model, dataset: str, key: str | None = None) -> dict[str, float]:
        out = {}
        for name, frame in self.frames(dataset).items():
            cache_key = f"{key}|{name}" if key else None
            if cache_key and cache_key in self.base_cache:
                out[name] = self.base_cache[cache_key]
                continue
            p = model.predict_proba(frame["text"].tolist(), frame["lang"].tolist())
            out[name] = macro_f1(p, frame["label"])
            if cache_key:
                self.base_cache[cache_key] = out[name]
        return out


def run_one(args, base, scorer, dataset, rows: pd.DataFrame, tag: str, work: Path) -> dict:
    from cxnlp.models.store import load
    from training.adapt import adapt

    data = work / f"{dataset}_{tag}.csv"
    rows[["text", "label", "lang"]].to_csv(data, index=False)
    started, cpu_started = time.time(), time.process_time()
    result = adapt(args.model, data, work / f"{dataset}_{tag}", test_data=None, progress=False)
    seconds, cpu_seconds = time.time() - started, time.process_time() - cpu_started
    adapted = load(result.path)
    base_scores = scorer.score(base, dataset, key="base")
    new_scores = scorer.score(adapted, dataset)
    holdout = result.gate.get("holdout", {})
    return {
        "dataset": dataset,
        "rows": len(rows),
        "how": tag,
        "steps": result.steps,
        "adapt_seconds": round(seconds, 1),
        # CPU time of all threads: on a machine shared with other jobs, wall time says little.
        "adapt_cpu_seconds": round(cpu_seconds, 1),
        "base": base_scores,
        "adapted": new_scores,
        "gain": {k: round(new_scores[k] - base_scores[k], 4) for k in base_scores},
        "holdout_gain": round(
            holdout["adapted"]["*"]["macro_f1"] - holdout["base"]["*"]["macro_f1"], 4
        )
        if holdout
        else None,
        "topic_agreement": holdout.get("topic_agreement"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--rows", nargs="+", type=int, default=[500, 200, 1000])
    parser.add_argument("--select-dataset", help="dataset for select-vs-random (default: first)")
    parser.add_argument("--select-n", type=int, default=300)
    parser.add_argument("--select-pool", type=int, default=2000, help="train rows to select from")
    parser.add_argument("--no-select", action="store_true")
    parser.add_argument("--select-first", action="store_true", help="run select-vs-random first")
    parser.add_argument("--test-limit", type=int, default=1500, help="test rows per dataset")
    parser.add_argument("--other-per-lang", type=int, default=500)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", help="write the results here (rewritten after every run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from cxnlp.io.batch import classify_frame
    from cxnlp.models.store import load, resolve_model
    from training.data import load_corpus
    from training.labeling import select_for_labeling

    model_dir = resolve_model(args.model)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    corpus = load_corpus(args.data)
    corpus = corpus[corpus["label"].isin(SENTIMENTS)]
    datasets = args.datasets or weakest(model_dir, corpus)
    print(f"model {model_dir} (name {config.get('name')}); datasets {datasets}", flush=True)
    base = load(model_dir)
    scorer = Scorer(corpus, args.test_limit, args.other_per_lang, args.seed)
    results: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="adapt_gain_"))

    def report(entry: dict) -> None:
        results.append(entry)
        own = entry["dataset"]
        others = ", ".join(f"{k} {v:+.4f}" for k, v in entry["gain"].items() if k != own)
        print(
            f"{own:<28} {entry['how']:<7} {entry['rows']:>5} rows  base {entry['base'][own]:.4f}"
            f" -> {entry['adapted'][own]:.4f} ({entry['gain'][own]:+.4f}); others {others}; "
            f"held-out {entry['holdout_gain']:+.4f}; {entry['steps']} steps, "
            f"{entry['adapt_seconds']:.0f} s ({entry.get('adapt_cpu_seconds', 0):.0f} CPU s)",
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {"model": str(model_dir), "name": config.get("name"), "runs": results}, indent=2
                )
                + "\n",
                encoding="utf-8",
            )

    def select_vs_random() -> None:
        dataset = args.select_dataset or datasets[0]
        pool = corpus[(corpus["dataset"] == dataset) & (corpus["split"] == "train")]
        pool = pool.sample(min(args.select_pool, len(pool)), random_state=args.seed)
        pool = pool.reset_index(drop=True).assign(id=lambda f: range(len(f)))
        classified = classify_frame(base, pool[["id", "text", "lang"]], lang_col="lang")
        chosen = select_for_labeling(classified, args.select_n, model=base, progress=False)
        picked = pool.set_index("id").loc[chosen["id"].tolist()].reset_index()
        report(run_one(args, base, scorer, dataset, picked, "select", work))
        randomly = pool.sample(args.select_n, random_state=args.seed + 1)
        report(run_one(args, base, scorer, dataset, randomly, "random", work))

    if args.select_first and not args.no_select:
        select_vs_random()
    for n in args.rows:
        for dataset in datasets:
            train = corpus[(corpus["dataset"] == dataset) & (corpus["split"] == "train")]
            rows = train.sample(min(n, len(train)), random_state=args.seed)
            report(run_one(args, base, scorer, dataset, rows, "random", work))
    if not args.select_first and not args.no_select:
        select_vs_random()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
