"""The adaptation experiment of issue 32: which rows to label, how many, and what `cxnlp adapt` on
them buys on a domain the base never saw, and costs on every language's standard tests.

For each --domain (a dataset of the shared corpus, or a labeled file) and seed, the domain's rows
are split into held-out rows (scored, never chosen) and an unlabeled pool the base classifies.
For each size and strategy, that many pool rows are chosen and, with their gold labels, given to
`training.adapt.adapt`, the code path of `cxnlp adapt` (replay of the base's pool, the gate on
the standard tests, a refused model saved as OUT.refused and scored all the same). Strategies:

    random       a seeded random draw
    uncertainty  the rows with the smallest margin between the base's two likeliest sentiments
    diversity    a greedy core-set over the base's encoder embeddings, uncertainty ignored
    mix          `cxnlp select`: the pool-factor x N most uncertain rows, then the core-set

Printed per run and, at the end, as tables of means over seeds: macro-F1 gain on the domain's
held-out rows, every language's standard-test delta (the gate's rows), refusals, wall-clock of
the whole `adapt` call (gate included) and of its training; and the report's sentiment shares on
the held-out rows against the truth (largest error over the three labels, in points): the base's
raw shares, the base with PACC from the labeled rows (no adaptation), the adapted model's raw
shares and its ACC (from its held-out confusion, as `cxnlp report` uses it).

    python benchmarks/adapt_gain.py --model default --data ../shared/data \\
        --domain pars_absa_test tweeteval_sentiment_val_test --json /tmp/adapt_gain.json
    python benchmarks/adapt_gain.py --domain pars_absa_test --quick      # a small run

A domain in the model's `trained_on` is not unseen: the benchmark then chooses from its train
split and scores its test split, and says so. Results are printed, and written to --json, as each
run ends; --resume skips the runs a --json file already holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxnlp.labels import PROBABILITY_COLUMNS, SENTIMENTS  # noqa: E402
from training.adapt_config import SELECTION_STRATEGIES  # noqa: E402

STRATEGIES = (*SELECTION_STRATEGIES, "diversity")
SHARE_METHODS = ("base raw", "base PACC", "adapted raw", "adapted ACC")


def macro_f1(classified: pd.DataFrame, labels: pd.Series) -> float:
    y = [SENTIMENTS.index(label) for label in labels]
    p = classified[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    return float(f1_score(y, p.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0))


def classify(model, rows: pd.DataFrame) -> pd.DataFrame:
    """`cxnlp classify` output for `rows` (text, lang, ...), their languages as given."""
    from cxnlp.io.frames import classify_frame

    frame = rows.rename(columns={"lang": "given_lang"}).reset_index(drop=True)
    return classify_frame(model, frame, lang_col="given_lang")


def domain_rows(name: str, corpus: pd.DataFrame | None) -> pd.DataFrame:
    """A domain's labeled rows: a dataset of the corpus (every split) or a labeled file."""
    if Path(name).is_file():
        from training.data import read_labeled

        frame = read_labeled(name, skip_unlabeled=True)
        return frame.assign(dataset=Path(name).stem, split="")[
            ["text", "label", "lang", "dataset", "split"]
        ]
    if corpus is None or not (corpus["dataset"] == name).any():
        raise SystemExit(f"--domain {name!r}: not a file, nor a dataset of the corpus")
    return corpus[corpus["dataset"] == name][["text", "label", "lang", "dataset", "split"]]


def split_domain(
    rows: pd.DataFrame, seen: bool, seed: int, eval_rows: int, pool_rows: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(held-out rows, pool). Seen by the base: its test split against its train split. Unseen:
    a seeded draw, stratified by label, of min(eval_rows, 40%) held-out rows; the rest the pool."""
    rows = rows[rows["label"].isin(SENTIMENTS)]
    if seen:
        held = rows[rows["split"].isin(["test", "eval"])]
        pool = rows[rows["split"] == "train"]
    else:
        shuffled = rows.sample(frac=1.0, random_state=seed)
        share = min(eval_rows, int(0.4 * len(rows))) / len(rows)
        quota = shuffled["label"].map((shuffled["label"].value_counts() * share).round())
        is_held = shuffled.groupby("label").cumcount() < quota
        held, pool = shuffled[is_held], shuffled[~is_held]
    if len(held) > eval_rows:
        held = held.sample(eval_rows, random_state=seed)
    pool = pool.sample(min(pool_rows, len(pool)), random_state=seed)
    return held.reset_index(drop=True), pool.reset_index(drop=True).assign(id=lambda f: f.index)


class Chooser:
    """Picks N pool rows by each strategy, with the base's classification and embeddings of the
    pool computed once."""

    def __init__(self, base, pool: pd.DataFrame, seed: int, pool_factor: float) -> None:
        self.base, self.pool, self.seed, self.pool_factor = base, pool, seed, pool_factor
        self.classified = classify(base, pool[["id", "text", "lang"]])
        self._embeddings = None

    def __call__(self, strategy: str, n: int) -> list[int]:
        from training.labeling import core_set, embed_for_diversity, select_for_labeling

        if strategy == "random":
            return self.pool.sample(n, random_state=self.seed + n)["id"].tolist()
        if strategy in ("uncertainty", "mix"):
            chosen = select_for_labeling(
                self.classified,
                n,
                # pool factor 1: the core-set keeps all n most uncertain rows; no model needed.
                model=self.base if strategy == "mix" else None,
                pool_factor=self.pool_factor if strategy == "mix" else 1.0,
                progress=False,
            )
            return chosen["id"].tolist()
        if self._embeddings is None:
            self._embeddings = embed_for_diversity(
                self.base, self.pool["text"].tolist(), self.pool["lang"].tolist()
            )
        return [
            int(self.pool["id"].iloc[i])
            for i in core_set(self._embeddings, np.ones(len(self.pool)), n)
        ]


def share_errors(
    truth: dict[str, float],
    base_eval: pd.DataFrame,
    adapted_eval: pd.DataFrame,
    labeled,
    adapted_dir,
) -> dict[str, dict]:
    """The report's overall shares by each method, and their largest error against `truth`."""
    from cxnlp.modeldir import read_dev_confusion
    from cxnlp.report.quantification import MIN_LABELED_ROWS
    from cxnlp.report.summary import summarize

    # PACC needs a labeled sample of MIN_LABELED_ROWS rows at least, as in `cxnlp report`.
    enough = len(labeled) >= MIN_LABELED_ROWS
    base = summarize(base_eval, labeled=labeled if enough else None, gold_col="label")["overall"]
    adapted = summarize(adapted_eval, confusion=read_dev_confusion(adapted_dir))["overall"]
    found = {
        "base raw": base["raw"],
        "base PACC": base.get("pacc"),
        "adapted raw": adapted["raw"],
        "adapted ACC": adapted.get("acc"),
    }
    out = {}
    for method, numbers in found.items():
        if not numbers or any(numbers["shares"].get(s) is None for s in SENTIMENTS):
            continue
        shares = {s: round(float(numbers["shares"][s]), 4) for s in SENTIMENTS}
        error = max(abs(shares[s] - truth[s]) for s in SENTIMENTS)
        out[method] = {"shares": shares, "max_error_points": round(100 * error, 2)}
    return out


def run_key(entry: dict) -> tuple:
    return (entry["domain"], entry["seed"], entry["size"], entry["strategy"])


def summary_tables(runs: list[dict]) -> str:
    frame = pd.DataFrame(
        [
            {
                "domain": r["domain"],
                "size": r["size"],
                "strategy": r["strategy"],
                "gain": 100 * r["gain"],
                "refused": r["refused"],
                "wall_s": r["wall_seconds"],
                "train_s": r["train_seconds"],
                **{f"std {k}": 100 * v for k, v in r["standard_delta"].items()},
                **{f"err {k}": v["max_error_points"] for k, v in r["shares"].items()},
            }
            for r in runs
        ]
    )
    lines = []
    for domain, part in frame.groupby("domain", sort=False):
        langs = sorted(c for c in part.columns if c.startswith("std ") and c != "std *")
        lines.append(
            f"\n{domain}: macro-F1 gain on its held-out rows and standard-test deltas (points, mean over seeds)"
        )
        head = f"{'size':>5} {'strategy':<12} {'runs':>4} {'gain':>7} {'sd':>5} "
        head += " ".join(f"{c[4:]:>6}" for c in langs)
        head += f" {'refused':>7} {'wall s':>7} {'train s':>7}"
        lines.append(head)
        for (size, strategy), rows in part.groupby(["size", "strategy"], sort=True):
            line = f"{size:>5} {strategy:<12} {len(rows):>4} {rows['gain'].mean():>+7.2f} "
            line += f"{rows['gain'].std(ddof=0):>5.2f} "
            line += " ".join(f"{rows[c].mean():>+6.2f}" for c in langs)
            line += f" {int(rows['refused'].sum()):>7} {rows['wall_s'].mean():>7.0f}"
            line += f" {rows['train_s'].mean():>7.0f}"
            lines.append(line)
        lines.append(f"\n{domain}: largest share error against the truth (points, mean over seeds)")
        methods = [m for m in SHARE_METHODS if f"err {m}" in part.columns]
        lines.append(f"{'size':>5} {'strategy':<12} " + " ".join(f"{m:>12}" for m in methods))
        for (size, strategy), rows in part.groupby(["size", "strategy"], sort=True):
            lines.append(
                f"{size:>5} {strategy:<12} "
                + " ".join(f"{rows[f'err {m}'].mean():>12.2f}" for m in methods)
            )
        means = part.groupby(["size", "strategy"])["gain"].mean()
        for size in sorted(part["size"].unique()):
            at = means.loc[size]
            best = at.idxmax()
            vs = f" vs random {at['random']:+.2f}" if "random" in at.index else ""
            lines.append(f"at {size} rows the best strategy is {best} ({at[best]:+.2f}{vs})")
    return "\n".join(lines)


def main() -> int:
    from training.adapt_cli import adapt_config, add_adapt_arguments
    from training.adapt_config import DEFAULT_MARGIN

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="../shared/data", help="corpus: domains, standard tests")
    parser.add_argument("--domain", nargs="+", required=True, help="dataset names or labeled files")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 300, 500])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds --seed, --seed + 1, ...")
    parser.add_argument("--eval-rows", type=int, default=1000, help="held-out rows per domain")
    parser.add_argument("--pool-rows", type=int, default=3000, help="unlabeled rows to choose from")
    parser.add_argument("--pool-factor", type=float, default=4.0, help="mix: as `cxnlp select`")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="the gate's")
    parser.add_argument(
        "--quick", action="store_true", help="100 rows, 1 seed, random + mix, small tests"
    )
    parser.add_argument("--json", help="write the runs here (rewritten after every run)")
    parser.add_argument("--resume", action="store_true", help="skip the runs --json holds")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory: the label files and adapted models",
    )
    add_adapt_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.strategies = [100], 1, ["random", "mix"]
        args.eval_rows, args.pool_rows, args.test_per_dataset = 300, 600, 30
    logging.basicConfig(level=logging.WARNING)

    from cxnlp.models.store import load, resolve_model
    from training.adapt import adapt
    from training.adapt_gate import sample_test_sets
    from training.data import load_corpus

    model_dir = resolve_model(args.model)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    trained_on = set(config.get("trained_on", []))
    corpus = load_corpus(args.data) if Path(args.data).is_dir() else None
    replay_corpus = None
    if args.replay_ratio > 0:
        same = Path(args.replay_data).resolve() == Path(args.data).resolve()
        replay_corpus = corpus if same else load_corpus(args.replay_data)
    standard = None
    if not args.no_standard_tests and corpus is not None:
        standard = sample_test_sets(args.data, args.test_per_dataset or None, args.seed)
    base = load(model_dir)
    base_cache: dict = {}
    work = Path(tempfile.mkdtemp(prefix="adapt_gain_"))
    seeds = [args.seed + k for k in range(args.seeds)]
    print(
        f"model {model_dir} (name {config.get('name')}); domains {args.domain}; sizes "
        f"{args.sizes}; strategies {args.strategies}; seeds {seeds}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    runs: list[dict] = []
    if args.resume and args.json and Path(args.json).exists():
        runs = json.loads(Path(args.json).read_text(encoding="utf-8"))["runs"]
    done = {run_key(r) for r in runs}

    def save() -> None:
        if args.json:
            payload = {"model": str(model_dir), "name": config.get("name"), "args": vars(args)}
            Path(args.json).write_text(
                json.dumps({**payload, "runs": runs}, indent=2, default=str) + "\n",
                encoding="utf-8",
            )

    for domain in args.domain:
        rows = domain_rows(domain, corpus)
        name = str(rows["dataset"].iloc[0])
        seen = name in trained_on
        if seen:
            print(
                f"WARNING: {name} is in the model's trained_on: not an unseen domain; choosing "
                "from its train split and scoring its test split",
                flush=True,
            )
        domain_standard = None if standard is None else standard[standard["dataset"] != name]
        replay = None if replay_corpus is None else replay_corpus[replay_corpus["dataset"] != name]
        for seed in seeds:
            held, pool = split_domain(rows, seen, seed, args.eval_rows, args.pool_rows)
            if held.empty or len(pool) < max(args.sizes):
                raise SystemExit(
                    f"{name}: {len(held)} held-out rows and {len(pool)} pool rows; need some and "
                    f"at least {max(args.sizes)}"
                )
            truth = held["label"].value_counts(normalize=True)
            truth = {s: float(truth.get(s, 0.0)) for s in SENTIMENTS}
            base_eval = classify(base, held[["text", "lang"]])
            base_f1 = macro_f1(base_eval, held["label"])
            choose = Chooser(base, pool, seed, args.pool_factor)
            for size in args.sizes:
                for strategy in args.strategies:
                    key = (name, seed, size, strategy)
                    if key in done:
                        continue
                    ids = choose(strategy, size)
                    picked = pool.set_index("id").loc[ids].reset_index()
                    data = work / f"{name}_{seed}_{size}_{strategy}.csv"
                    picked[["text", "label", "lang"]].to_csv(data, index=False)
                    recipe = adapt_config(args)
                    recipe.seed = seed
                    load_before = os.getloadavg()[0]
                    started = time.time()
                    result = adapt(
                        model_dir,
                        data,
                        work / data.stem,
                        config=recipe,
                        test_data=domain_standard,
                        replay_data=replay,
                        margin=args.margin,
                        progress=not args.quiet,
                        base_cache=base_cache,
                    )
                    wall = time.time() - started
                    adapted = load(result.path)
                    adapted_eval = classify(adapted, held[["text", "lang"]])
                    labeled = choose.classified.set_index("id").loc[ids].reset_index()
                    labeled["label"] = picked["label"].to_numpy()
                    standard_gate = result.gate.get("standard", {})
                    entry = {
                        "domain": name,
                        "unseen": not seen,
                        "seed": seed,
                        "size": size,
                        "strategy": strategy,
                        "held_out_rows": len(held),
                        "pool_rows": len(pool),
                        "picked_ids": [int(i) for i in ids],
                        "base_macro_f1": round(base_f1, 4),
                        "adapted_macro_f1": round(macro_f1(adapted_eval, held["label"]), 4),
                        "standard_delta": {
                            lang: round(
                                standard_gate["adapted"][lang]["macro_f1"] - s["macro_f1"], 4
                            )
                            for lang, s in standard_gate.get("base", {}).items()
                        },
                        "refused": result.refused,
                        "verdict": result.verdict(),
                        "steps": result.steps,
                        "wall_seconds": round(wall, 1),
                        "train_seconds": result.info.get("transformer", {}).get("seconds", 0.0),
                        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                        "truth_shares": truth,
                        "shares": share_errors(
                            truth, base_eval, adapted_eval, labeled, result.path
                        ),
                    }
                    entry["gain"] = round(entry["adapted_macro_f1"] - entry["base_macro_f1"], 4)
                    runs.append(entry)
                    save()
                    if not args.keep:
                        shutil.rmtree(result.path, ignore_errors=True)
                    deltas = ", ".join(
                        f"{k} {100 * v:+.1f}" for k, v in entry["standard_delta"].items()
                    )
                    errors = ", ".join(
                        f"{k} {v['max_error_points']:.1f}" for k, v in entry["shares"].items()
                    )
                    print(
                        f"{name} seed {seed} {size:>4} {strategy:<11} macro-F1 "
                        f"{entry['base_macro_f1']:.4f} -> {entry['adapted_macro_f1']:.4f} "
                        f"({100 * entry['gain']:+.1f}); standard {deltas or '(not run)'}; "
                        f"{'REFUSED' if result.refused else 'ready'}; {wall:.0f} s "
                        f"({entry['train_seconds']:.0f} s training, load {load_before:.1f}); "
                        f"share errors {errors}",
                        flush=True,
                    )
    print(summary_tables(runs))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
