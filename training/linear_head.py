"""What fitting a learned head of `cxnlp.models.linear_head.LinearHead` needs, whichever head it
is (`training/mixed_head.py`, `training/urgency_head.py`): the pipeline's per-text signals read
once and cached, a logistic regression with its strength chosen by cross-validation, and a
threshold chosen for a precision floor.

Signals (`read_signals`): the model's own pipeline is run once over the rows
(`cxnlp.models.pipeline.analyze` with `record=`), which gives each text the `mixed` signals
(`cxnlp.models.mixed.SIGNALS`: the document's and its clauses' sentiment, topics, language), the
document's pooled features and the decision of the `mixed` rules; they are cached, numpy only, in
`<cache>/<kind>/<fingerprint>.npz` (the fingerprint covers the model's weights and configs, its
learned heads aside, the pipeline options, the aspect cue rules and the cxnlp version), so a refit
reads no encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxnlp.modeldir import CONFIG_FILE, METRICS_FILE, MIXED_DIR, URGENCY_DIR, WEIGHTS_FILE
from cxnlp.models.base import SentimentModel
from cxnlp.models.mixed import SIGNALS, MixedSignals
from cxnlp.models.pipeline import AspectOptions, analyze
from cxnlp.text.clauses import load_cue_rules

Progress = Callable[[str], None]
# The model directory's learned heads: they read the signals, they do not change them.
HEAD_DIRS = (MIXED_DIR, URGENCY_DIR)
DEFAULT_STRENGTHS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


# --- signals ---------------------------------------------------------------------------------


@dataclass
class SignalTable:
    """Per row: the head's signals (`SIGNALS`), the document's features ((n, 0) for a model
    without an encoder) and the rules' decision; `computed` rows read now, `cached` from the
    cache."""

    signals: np.ndarray
    features: np.ndarray
    rule: np.ndarray
    computed: int = 0
    cached: int = 0


def model_fingerprint(model_dir: str | Path, options: AspectOptions) -> str:
    """What the signals depend on, hashed: every config and weights file of the model directory
    (its learned heads, `mixed/` and `urgency/`, aside), the pipeline options, the cue rules, the signal layout and the
    cxnlp version."""
    from cxnlp import __version__

    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in HEAD_DIRS or path.name not in (CONFIG_FILE, WEIGHTS_FILE):
            continue
        if not path.is_file():
            continue
        digest.update(relative.as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    cues = sorted(
        (lang, r.topic, r.pattern.pattern, r.replaces, r.polarity)
        for lang, rules in load_cue_rules(options.cue_file).items()
        for r in rules
    )
    settings = {k: v for k, v in asdict(options).items() if k not in ("mixed_head", "urgency_head")}
    extra = [__version__, list(SIGNALS), settings, cues]
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def signal_cache_path(
    model_dir: str | Path,
    options: AspectOptions,
    cache_dir: str | Path | None = None,
    kind: str = MIXED_DIR,
) -> Path:
    """`<cache_dir>/<kind>/<fingerprint>.npz` (`kind`: the head the rows are read for); the
    cache directory defaults to cxnlp's own ($CXNLP_CACHE_DIR or ~/.cache/cxnlp)."""
    from cxnlp.backbone.build import default_cache_dir

    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / kind / f"{model_fingerprint(model_dir, options)}.npz"


def _row_key(text: str, lang: str) -> str:
    return hashlib.sha1(f"{lang}\t{text}".encode()).hexdigest()


def _read_cache(path: Path | None) -> dict[str, np.ndarray]:
    if path is None or not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in ("keys", "signals", "features", "rule")}


def _write_cache(path: Path, keys: list[str], table: dict[str, list[np.ndarray]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(
        partial,
        keys=np.array(keys, dtype="<U40"),
        signals=np.vstack(table["signals"]) if keys else np.zeros((0, len(SIGNALS))),
        features=np.vstack(table["features"]).astype(np.float32) if keys else np.zeros((0, 0)),
        rule=np.array(table["rule"], dtype=bool),
    )
    os.replace(partial, path)


def record_signals(model: SentimentModel, texts: list[str], langs: list[str]) -> list[MixedSignals]:
    """What the pipeline reads of each text: one `analyze` pass, recorded."""
    recorded: list[MixedSignals] = []
    analyze(model, texts, langs, model.aspect_options, record=recorded)
    return recorded


def read_signals(
    model: SentimentModel,
    rows: Any,
    cache: Path | None = None,
    *,
    fresh: bool = False,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> SignalTable:
    """The signals of `rows` (text, lang), read from `cache` where it has them and by the model
    otherwise (shortest texts first, `batch_size` at a time); new ones are added to `cache`."""
    stored = {} if fresh else _read_cache(cache)
    keys = [str(k) for k in stored.get("keys", [])]
    index = {key: i for i, key in enumerate(keys)}
    table: dict[str, list[Any]] = {
        "signals": list(stored.get("signals", [])),
        "features": list(stored.get("features", [])),
        "rule": [bool(x) for x in stored.get("rule", [])],
    }
    wanted = [_row_key(t, lang) for t, lang in zip(rows["text"], rows["lang"], strict=True)]
    missing = sorted(
        {
            key: (t, lang)
            for key, t, lang in zip(wanted, rows["text"], rows["lang"], strict=True)
            if key not in index
        }.items(),
        key=lambda item: len(item[1][0]),
    )
    started = time.perf_counter()
    for start in range(0, len(missing), batch_size):
        batch = missing[start : start + batch_size]
        recorded = record_signals(
            model, [t for _, (t, _) in batch], [lang for _, (_, lang) in batch]
        )
        for (key, _), signal in zip(batch, recorded, strict=True):
            index[key] = len(keys)
            keys.append(key)
            table["signals"].append(signal.signals)
            features = signal.features
            table["features"].append(
                np.zeros(0, np.float32) if features is None else np.asarray(features, np.float32)
            )
            table["rule"].append(bool(signal.rule))
        done = min(start + batch_size, len(missing))
        if progress is not None:
            progress(
                f"signals: {done}/{len(missing)} texts read ({time.perf_counter() - started:.0f} s)"
            )
        if cache is not None and (done == len(missing) or (start // batch_size) % 20 == 19):
            _write_cache(cache, keys, table)

    at = [index[key] for key in wanted]
    widths = {len(table["features"][i]) for i in at}
    if len(widths) > 1:
        raise ValueError(f"the cached features have different widths {sorted(widths)}; use --fresh")
    width = widths.pop() if widths else 0
    return SignalTable(
        signals=np.array([table["signals"][i] for i in at]).reshape(len(at), len(SIGNALS)),
        features=np.array([table["features"][i] for i in at], dtype=np.float32).reshape(
            len(at), width
        ),
        rule=np.array([table["rule"][i] for i in at], dtype=bool),
        computed=len(missing),
        cached=len(rows) - len(missing),
    )


# --- fit -------------------------------------------------------------------------------------


def precision_recall(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    predicted, gold = np.asarray(predicted, bool), np.asarray(gold, bool)
    tp = int((predicted & gold).sum())
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(gold.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": int(predicted.sum())}


def choose_threshold(
    scores: np.ndarray,
    gold: np.ndarray,
    min_precision: float = 0.8,
    forced: np.ndarray | None = None,
) -> dict[str, Any]:
    """The threshold on `scores` with the highest recall at precision >= `min_precision` (ties:
    the higher precision), else the best F1; `forced` rows are predicted mixed whatever their
    score (the rule, for head OR rule). The threshold returned lies halfway between the lowest
    score it flags and the next one down, so that a score a hair lower (another text, weights
    stored in float32) falls the same way. Returns threshold, precision, recall, f1, flagged,
    meets.

    >>> choose_threshold(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 1, 0, 1]))["threshold"]
    0.55
    """
    scores, gold = np.asarray(scores, float), np.asarray(gold, bool)
    forced = np.zeros(len(scores), bool) if forced is None else np.asarray(forced, bool)
    candidates = [1.01, *np.unique(scores)[::-1].tolist()]  # 1.01: the head flags nothing
    best: dict[str, Any] | None = None
    best_key: tuple = ()
    for k, threshold in enumerate(candidates):
        predicted = (scores >= threshold) | forced
        result = precision_recall(predicted, gold)
        meets = result["flagged"] > 0 and result["precision"] >= min_precision
        key = (
            (1, result["recall"], result["precision"], threshold)
            if meets
            else (0, result["f1"], result["precision"], threshold)
        )
        if best is None or key > best_key:
            below = candidates[k + 1] if k + 1 < len(candidates) else threshold - 1e-6
            halfway = threshold if k == 0 else (threshold + below) / 2
            best, best_key = {"threshold": float(halfway), **result, "meets": meets}, key
    assert best is not None
    return best


def better(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether threshold choice `a` beats `b` by the rule of `choose_threshold`."""

    def key(r: dict[str, Any]) -> tuple:
        return (1, r["recall"], r["precision"]) if r["meets"] else (0, r["f1"], r["precision"])

    return key(a) > key(b)


def balanced_weights(langs: Any, gold: Any) -> np.ndarray:
    """Each (language, label) group the same total weight; mean weight 1.

    >>> balanced_weights(["en", "en", "en", "fa"], [True, False, False, True]).tolist()
    [1.3333333333333333, 0.6666666666666666, 0.6666666666666666, 1.3333333333333333]
    """
    groups = [(str(lang), bool(g)) for lang, g in zip(langs, gold, strict=True)]
    sizes: dict[tuple[str, bool], int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    return np.array([len(groups) / (len(sizes) * sizes[g]) for g in groups])


def logistic(strength: float) -> Any:
    """An L2 logistic regression of strength `strength` (sklearn's C)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=strength, max_iter=5000)


def choose_strength(
    z: np.ndarray,
    gold: np.ndarray,
    weights: np.ndarray,
    strengths: tuple[float, ...] = DEFAULT_STRENGTHS,
    seed: int = 0,
) -> float:
    """The C of `strengths` with the best mean average precision over 3 stratified folds of the
    rows (ties: the smaller C)."""
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(z, gold.astype(int)))
    best, best_score = strengths[0], -1.0
    for strength in strengths:
        scores = []
        for fit_at, score_at in folds:
            model = logistic(strength).fit(z[fit_at], gold[fit_at], sample_weight=weights[fit_at])
            scores.append(
                average_precision_score(gold[score_at], model.decision_function(z[score_at]))
            )
        if float(np.mean(scores)) > best_score + 1e-9:
            best, best_score = strength, float(np.mean(scores))
    return float(best)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of `x` (1 where a column is constant)."""
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale < 1e-9, 1.0, scale)
    return mean, scale


@dataclass
class Projection:
    """Features standardised, then projected onto their first principal components (of the rows
    it was made from): `project(f) = ((f - mean) / scale - center) @ components.T`. Fitting a
    logistic regression on a few components instead of every feature is a reduced-rank
    constraint on its weights; `fold_linear` turns the result back into weights on the features.

    >>> f = np.random.default_rng(0).normal(size=(20, 5))
    >>> Projection.of(f, 2).project(f).shape
    (20, 2)
    """

    mean: np.ndarray
    scale: np.ndarray
    center: np.ndarray
    components: np.ndarray  # (k, d), orthonormal rows

    @classmethod
    def of(cls, features: np.ndarray, k: int) -> Projection:
        mean, scale = standardiser(features)
        z = (features - mean) / scale
        center = z.mean(0)
        _, _, vt = np.linalg.svd(z - center, full_matrices=False)
        return cls(mean, scale, center, vt[: max(0, min(k, len(vt)))])

    def first(self, k: int) -> Projection:
        """The same projection onto its first `k` components only."""
        return Projection(self.mean, self.scale, self.center, self.components[:k])

    def project(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale - self.center) @ self.components.T


def fit_reduced(
    signals: np.ndarray,
    features: np.ndarray,
    gold: np.ndarray,
    weights: np.ndarray,
    strength: float,
    projection: Projection,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A logistic regression on the standardised signals and the projected features, returned as
    the `mean, scale, weights, bias` of a `cxnlp.models.linear_head.LinearHead` over the signals
    and the raw features (the projection folded in, so the head needs nothing else)."""
    x = np.hstack([signals, projection.project(features)])
    mean, scale = standardiser(x)
    model = logistic(strength).fit((x - mean) / scale, gold, sample_weight=weights)
    return fold_linear(
        mean, scale, model.coef_[0], float(model.intercept_[0]), signals.shape[1], projection
    )


def fold_linear(
    mean: np.ndarray,
    scale: np.ndarray,
    coef: np.ndarray,
    intercept: float,
    n_signals: int,
    projection: Projection,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Weights on [signals, projected features] (standardised by `mean`, `scale`) as weights on
    [signals, raw features] standardised by the projection's own mean and scale: the same
    decision function."""
    per_component = coef[n_signals:] / scale[n_signals:]
    feature_weights = projection.components.T @ per_component
    bias = (
        intercept
        - float(per_component @ mean[n_signals:])
        - float(per_component @ (projection.components @ projection.center))
    )
    return (
        np.concatenate([mean[:n_signals], projection.mean]),
        np.concatenate([scale[:n_signals], projection.scale]),
        np.concatenate([coef[:n_signals], feature_weights]),
        bias,
    )


def train_head(
    model: str | Path,
    kind: str,
    gather: Callable[[], Any],
    fit: Callable[[SignalTable, Any], tuple[Any, dict[str, Any]]],
    *,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fresh: bool = False,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """What a head's training verb does (`kind`: `mixed` or `urgency`, the head's directory in a
    model and its cache's): load the model, `gather()` the rows, read their signals (cached),
    `fit(table, rows)` the head and its report, save the head as `<kind>/` in the model directory
    (or the whole model, head included, at `out`) with the report as `<kind>/metrics.json`.
    Returns the report, with where it was saved, the signals read and cached, and the seconds."""
    from cxnlp.models.store import load, resolve_model

    clock = Timer()
    model_dir = resolve_model(model)
    loaded = load(model_dir)
    rows = gather()
    gathered = clock()
    cache = signal_cache_path(model_dir, loaded.aspect_options, cache_dir, kind)
    table = read_signals(loaded, rows, cache, fresh=fresh, batch_size=batch_size, progress=progress)
    signals_done = clock()
    head, report = fit(table, rows)
    destination = Path(out) if out else model_dir
    setattr(loaded, f"{kind}_head", head)
    if out:
        loaded.save(destination)
    else:
        head.save(destination / kind)
    report["model"] = str(model_dir)
    report["saved"] = str(destination / kind)
    report["signals"] = {"computed": table.computed, "cached": table.cached, "cache": str(cache)}
    report["seconds"] = {
        "rows": gathered,
        "signals": round(signals_done - gathered, 1),
        "fit": round(clock() - signals_done, 1),
        "total": clock(),
    }
    (destination / kind / METRICS_FILE).write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return report


@dataclass
class Timer:
    """Seconds since it was made, to a tenth."""

    started: float = field(default_factory=time.perf_counter)

    def __call__(self) -> float:
        return round(time.perf_counter() - self.started, 1)
