"""Training a model's learned `mixed` head (`cxnlp.models.mixed.MixedHead`):
`cxnlp train-mixed --model DIR`.

Rows (`gather_rows`): the corpus's rows labeled `mixed` from the train and dev splits only (never
`test`; a text equal, by `text_key`, to a test or eval-only text anywhere in the corpus is left
out), from each dataset with at least `min_mixed` of them (ASTD, ArSAS, HAAD and the SemEval
hotels in Arabic; the SemEval and Yelp ABSA sets in English; ParsiNLU and Pars-ABSA in Persian);
as many not-mixed rows of the same dataset and part ("same_source", so the head cannot learn a
dataset for `mixed`); and `ordinary_share` times as many rows of the language's other datasets
("ordinary": tweets and reviews of every kind, none labeled mixed). A row is in the dev part when
its split is `dev` or its text's hash falls in the first `dev_share` (the datasets without a dev
split); the rest is the train part.

Signals (`training.linear_head.read_signals`, shared with the urgency head): the model's own
pipeline is run once over the rows (`cxnlp.models.pipeline.analyze` with `record=`), which gives
each text the head's inputs and the decision of the current rules; they are cached, numpy only, in
`<cache>/mixed/<fingerprint>.npz` (the fingerprint covers the model's weights and configs, the
pipeline options, the cue rules and the cxnlp version), so a refit reads no encoder.

Fit (`fit_mixed_head`): a logistic regression on the train part, each (language, mixed) group
weighted alike, its L2 strength chosen by 3-fold cross-validation on the train part (average
precision). Each language's threshold is chosen on its balanced dev rows (mixed and same-source):
the highest recall at precision >= `min_precision`, else the best F1; the same choice for the head
OR the language's rule, kept where it does better (`or_rule`). A language with fewer than
`min_dev_mixed` mixed dev rows gets no threshold and keeps the rules. The report gives dev
precision / recall per language for the head and for the rules side by side, and how often each
flags ordinary dev texts.

Not-mixed rows of a train split may be rows the sentiment model was trained on (its mixed rows
never are: `mixed` is not a training label), so its probabilities are surer on them than on unseen
text; dev numbers from hash-drawn train rows can be optimistic for that reason. The untouched test
rows of `benchmarks/mixed_and_agreement.py` are the measurement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import LANGS
from cxnlp.modeldir import MIXED_DIR
from cxnlp.models.mixed import MixedHead
from cxnlp.text.clean import text_key
from training.data import MIXED, dataset_catalog, hash_bucket, load_corpus, read_jsonl
from training.linear_head import (
    DEFAULT_STRENGTHS,
    Progress,
    SignalTable,
    balanced_weights,
    better,
    choose_strength,
    choose_threshold,
    logistic,
    precision_recall,
    train_head,
)

TRAINABLE = ("train", "dev")
KINDS = ("mixed", "same_source", "ordinary")


@dataclass
class MixedConfig:
    """What `train_mixed` reads and how it fits. `per_lang`: at most this many mixed rows per
    language (train and dev parts together)."""

    data_dir: str = "../shared/data"
    langs: tuple[str, ...] = LANGS
    per_lang: int = 1500
    ordinary_share: float = 0.5
    dev_share: float = 0.25
    min_mixed: int = 10
    min_dev_mixed: int = 5
    min_precision: float = 0.8
    seed: int = 0
    batch_size: int = 64
    strengths: tuple[float, ...] = DEFAULT_STRENGTHS


# --- rows ------------------------------------------------------------------------------------


def held_out_keys(corpus: pd.DataFrame, data_dir: str | Path | None = None) -> set[str]:
    """`text_key` of every text the corpus holds out (test splits, eval-only datasets), and of
    every test-split text of a file under `data_dir` that the catalog does not list (the corpus
    reads only the listed ones)."""
    keys = set(corpus.loc[~corpus["split"].isin(TRAINABLE), "text"].map(text_key))
    if data_dir is not None and Path(data_dir).is_dir():
        listed = set(dataset_catalog())
        for path in sorted(Path(data_dir).glob("*/*.jsonl")):
            if path.stem not in listed:
                keys |= {text_key(r["text"]) for r in read_jsonl(path) if r.get("split") == "test"}
    return keys


def check_trainable(rows: pd.DataFrame, held_out: set[str] | None = None) -> None:
    """Refuse rows of a test split, or (given `held_out`) whose text a test split holds."""
    bad = rows[~rows["split"].isin(TRAINABLE)]
    if len(bad):
        raise ValueError(
            f"the mixed head trains and chooses thresholds on train and dev rows only; got "
            f"{len(bad)} row(s) of split(s) {sorted(set(bad['split']))}"
        )
    if held_out:
        leaked = rows["text"].map(text_key).isin(held_out)
        if leaked.any():
            raise ValueError(f"{int(leaked.sum())} row(s) are texts a test split holds")


def _spread(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """About `n` rows of `pool`, as evenly over its datasets as they allow."""
    if n <= 0 or pool.empty:
        return pool.iloc[:0]
    datasets = sorted(set(pool["dataset"]))
    quota = math.ceil(n / len(datasets))
    parts = [
        group.sample(min(quota, len(group)), random_state=seed)
        for _, group in pool.groupby("dataset", sort=True)
    ]
    picked = pd.concat(parts)
    return picked.sample(n, random_state=seed) if len(picked) > n else picked


def gather_rows(config: MixedConfig, corpus: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows the head is fitted and tuned on: text, lang, dataset, split, part (train / dev),
    kind (mixed / same_source / ordinary), mixed (bool). See the module docstring."""
    if corpus is None:
        corpus = load_corpus(config.data_dir, langs=tuple(config.langs))
    held_out = held_out_keys(corpus, config.data_dir)
    catalog = dataset_catalog()
    rows = corpus[corpus["split"].isin(TRAINABLE)]
    rows = rows[~rows["text"].map(text_key).isin(held_out)]
    rows = rows.assign(
        lang=[
            catalog[d].lang if d in catalog else lang
            for d, lang in zip(rows["dataset"], rows["lang"], strict=True)
        ],
        mixed=rows["label"] == MIXED,
        part=[
            "dev" if split == "dev" or hash_bucket(text) < config.dev_share else "train"
            for text, split in zip(rows["text"], rows["split"], strict=True)
        ],
    )
    picked = []
    for lang in config.langs:
        own = rows[rows["lang"] == lang]
        counts = own[own["mixed"]].groupby("dataset").size()
        sources = set(counts[counts >= config.min_mixed].index)
        mixed = own[own["mixed"] & own["dataset"].isin(sources)]
        if len(mixed) > config.per_lang:
            mixed = mixed.sample(config.per_lang, random_state=config.seed)
        picked.append(mixed.assign(kind="mixed"))
        for (dataset, part), group in mixed.groupby(["dataset", "part"], sort=True):
            pool = own[~own["mixed"] & (own["dataset"] == dataset) & (own["part"] == part)]
            n = min(len(group), len(pool))
            picked.append(pool.sample(n, random_state=config.seed).assign(kind="same_source"))
        others = own[~own["mixed"] & ~own["dataset"].isin(sources)]
        for part in TRAINABLE:
            n = round(config.ordinary_share * int((mixed["part"] == part).sum()))
            pool = others[others["part"] == part]
            picked.append(_spread(pool, n, config.seed).assign(kind="ordinary"))
    columns = ["text", "lang", "dataset", "split", "part", "kind", "mixed"]
    picked = [frame for frame in picked if len(frame)]
    out = pd.concat(picked, ignore_index=True)[columns] if picked else pd.DataFrame(columns=columns)
    check_trainable(out, held_out)
    return out.reset_index(drop=True)


def row_counts(rows: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """lang -> part -> kind -> rows."""
    return {
        lang: {
            part: {
                kind: int(
                    ((rows["lang"] == lang) & (rows["part"] == part) & (rows["kind"] == kind)).sum()
                )
                for kind in KINDS
            }
            for part in TRAINABLE
        }
        for lang in sorted(set(rows["lang"]), key=lambda lang: (lang not in LANGS, lang))
    }


# --- fit -------------------------------------------------------------------------------------


def fit_mixed_head(
    table: SignalTable, rows: pd.DataFrame, config: MixedConfig
) -> tuple[MixedHead, dict[str, Any]]:
    """The head fitted on the train part of `rows` (aligned with `table`), each language's
    threshold (and whether to OR it with the rule) chosen on its balanced dev rows; and the
    report: dev precision / recall per language, head and rules side by side."""
    check_trainable(rows)
    rows = rows.reset_index(drop=True)
    n_features = table.features.shape[1]
    x = np.hstack([table.signals, table.features.astype(np.float64)])
    train = (rows["part"] == "train").to_numpy()
    gold = rows["mixed"].to_numpy(bool)
    if len(set(gold[train])) < 2 or min(int(gold[train].sum()), int((~gold[train]).sum())) < 3:
        raise ValueError(
            f"too few rows to fit the mixed head: {int(gold[train].sum())} mixed and "
            f"{int((~gold[train]).sum())} other train rows (at least 3 of each)"
        )
    mean = x[train].mean(0)
    scale = x[train].std(0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    weights = balanced_weights(rows["lang"][train], gold[train])
    strength = choose_strength(z[train], gold[train], weights, config.strengths, config.seed)
    fitted = logistic(strength).fit(z[train], gold[train], sample_weight=weights)
    head = MixedHead(n_features, mean, scale, fitted.coef_[0], float(fitted.intercept_[0]))
    scores = head.probability(table.signals, table.features if n_features else None)
    dev = (rows["part"] == "dev").to_numpy()
    balanced = dev & rows["kind"].isin(["mixed", "same_source"]).to_numpy()
    ordinary = dev & (rows["kind"] == "ordinary").to_numpy()
    per_lang: dict[str, Any] = {}
    for lang in sorted(set(rows["lang"]), key=lambda lang: (lang not in LANGS, lang)):
        own = (rows["lang"] == lang).to_numpy()
        at = balanced & own
        entry: dict[str, Any] = {
            "dev_mixed": int(gold[at].sum()),
            "dev_other": int((~gold[at]).sum()),
            "rules": precision_recall(table.rule[at], gold[at]),
        }
        if entry["dev_mixed"] < config.min_dev_mixed or entry["dev_other"] == 0:
            entry["head"] = None
            entry["note"] = f"fewer than {config.min_dev_mixed} mixed dev rows: the rules decide"
            per_lang[lang] = entry
            continue
        alone = choose_threshold(scores[at], gold[at], config.min_precision)
        either = choose_threshold(scores[at], gold[at], config.min_precision, table.rule[at])
        chosen, or_rule = (either, True) if better(either, alone) else (alone, False)
        head.thresholds[lang] = chosen["threshold"]
        head.or_rule[lang] = or_rule
        entry["head"] = {**chosen, "or_rule": or_rule}
        entry["head_alone"] = alone
        flag = (scores >= chosen["threshold"]) | (table.rule if or_rule else False)
        at_ordinary = ordinary & own
        entry["ordinary_dev"] = int(at_ordinary.sum())
        entry["ordinary_flagged"] = {
            "head": float(flag[at_ordinary].mean()) if at_ordinary.any() else None,
            "rules": float(table.rule[at_ordinary].mean()) if at_ordinary.any() else None,
        }
        per_lang[lang] = entry
    report = {
        "rows": row_counts(rows),
        "dev": per_lang,
        "n_features": n_features,
        "C": strength,
        "min_precision": config.min_precision,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    }
    head.info = {
        "training": {
            "C": strength,
            "rows": {
                lang: sum(sum(p.values()) for p in parts.values())
                for lang, parts in report["rows"].items()
            },
            "data_dir": config.data_dir,
        }
    }
    return head, report


# --- the verb --------------------------------------------------------------------------------


def train_mixed(
    model: str | Path = "default",
    config: MixedConfig | None = None,
    *,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Gather the rows, read their signals (cached), fit the head, choose its thresholds, and
    save it as `mixed/` in the model directory (or in a copy of the model at `out`), with the
    report as `mixed/metrics.json` (`training.linear_head.train_head`). Returns the report."""
    config = config or MixedConfig()

    def gather() -> pd.DataFrame:
        rows = gather_rows(config)
        if progress is not None:
            for lang, parts in row_counts(rows).items():
                progress(f"rows {lang}: " + "; ".join(f"{p} {parts[p]}" for p in TRAINABLE))
        return rows

    return train_head(
        model,
        MIXED_DIR,
        gather,
        lambda table, rows: fit_mixed_head(table, rows, config),
        out=out,
        cache_dir=cache_dir,
        fresh=fresh,
        batch_size=config.batch_size,
        progress=progress,
    )


def format_mixed_report(report: dict[str, Any]) -> str:
    """The report as the lines `cxnlp train-mixed` prints."""
    lines = [f"mixed head for {report['model']} -> {report['saved']}"]
    for lang, parts in report["rows"].items():
        cells = "; ".join(
            f"{part} " + ", ".join(f"{kind} {n}" for kind, n in kinds.items())
            for part, kinds in parts.items()
        )
        lines.append(f"rows {lang}: {cells}")
    lines.append(
        f"{'lang':<5}{'dev':>9}  {'head P':>7}{'head R':>7}  {'rules P':>8}{'rules R':>8}"
        f"  {'threshold':>9}  {'or rule':<7}  ordinary dev texts flagged, head / rules"
    )
    for lang, entry in report["dev"].items():
        rules = entry["rules"]
        size = f"{entry['dev_mixed']}+{entry['dev_other']}"
        if entry["head"] is None:
            lines.append(
                f"{lang:<5}{size:>9}  {'-':>7}{'-':>7}  {rules['precision']:>8.3f}"
                f"{rules['recall']:>8.3f}  {'-':>9}  {'-':<7}  ({entry['note']})"
            )
            continue
        head = entry["head"]
        flagged = entry["ordinary_flagged"]
        share = (
            f"{flagged['head']:.3f} / {flagged['rules']:.3f} of {entry['ordinary_dev']}"
            if flagged["head"] is not None
            else "-"
        )
        lines.append(
            f"{lang:<5}{size:>9}  {head['precision']:>7.3f}{head['recall']:>7.3f}  "
            f"{rules['precision']:>8.3f}{rules['recall']:>8.3f}  {head['threshold']:>9.4f}  "
            f"{str(head['or_rule']):<7}  {share}"
        )
    signals = report["signals"]
    seconds = report["seconds"]
    lines.append(
        f"C {report['C']:g}, {report['n_features']} features; signals {signals['computed']} "
        f"read, {signals['cached']} cached ({signals['cache']})"
    )
    lines.append(
        f"seconds: rows {seconds['rows']}, signals {seconds['signals']}, fit {seconds['fit']}, "
        f"total {seconds['total']}"
    )
    return "\n".join(lines)
