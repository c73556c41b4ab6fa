"""Training the topic head of a model: `cxnlp train-topics --config training/configs/topics.yaml`.

The head reads the features the model's encoder already computes (`SentimentModel.features`), so
training it needs one encoder pass over the topic corpus and then seconds of MLP training. Its
signal: the mapped topic labels of `training.topic_data` (a missing topic counts as absent only
inside a complete dataset's scope), plus, kept apart and switchable, weak labels from keyword cues
(`training/topic_cues.yaml`) on unlabeled reviews of the domains no mapped dataset covers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.linear_model import LogisticRegression

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.models.base import SentimentModel
from cxnlp.topics.tagger import CustomTopicMatcher, TopicTagger
from cxnlp.topics.taxonomy import TOPICS, load_taxonomy, topic_phrases
from training.data import text_key
from training.topic_data import (
    load_team_sets,
    load_topic_corpus,
    normalize_term,
    split_rows,
    topic_set_keys,
)

logger = logging.getLogger(__name__)

CUES_FILE = Path(__file__).with_name("topic_cues.yaml")


@dataclass
class TopicConfig:
    """What `train_topics` reads from training/configs/topics.yaml."""

    data_dir: str = "../shared/data"
    hidden: int = 256
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    # Weak labels: None (or an empty path) trains on the mapped labels only.
    weak_cues: str | None = str(CUES_FILE)
    weak_positive_weight: float = 1.0
    weak_negative_weight: float = 0.3
    weak_rows_per_dataset: int = 1000
    weak_datasets: dict[str, list[str]] = field(default_factory=dict)
    # Thresholds are tuned on dev for topics with at least this many dev rows carrying them.
    min_dev_positives: int = 10
    # Aspect-less texts (social posts, general tweets): every topic is known absent on their
    # sampled train rows, at `negative_weight`; rows where a cue rule of cxnlp/data/aspect_cues.yaml
    # fires are left out (a tweet may name a delay or an app). Their dev rows join the calibration.
    negative_datasets: dict[str, list[str]] = field(default_factory=dict)
    negative_rows_per_dataset: int = 1000
    negative_weight: float = 1.0
    # Per-language thresholds chosen on a dev mix of domains (training/topic_calibration.py):
    # hand-labeled JSONL files (their `split: dev` rows) and dev rows of negative_datasets.
    calibration_sets: list[str] = field(default_factory=list)
    calibration_negatives_per_dataset: int = 200
    calibration_min_positives: int = 5
    # Languages that get a document gate ("any topic at all?"; training/topic_calibration.py,
    # `fit_gates`): a logistic regression (inverse regularisation `gate_c`) on the head's features
    # of the team sets' train rows and `gate_negatives_per_dataset` train rows of each
    # negative dataset; its floor is chosen on the calibration rows.
    gate_langs: list[str] = field(default_factory=list)
    gate_c: float = 0.01
    gate_negatives_per_dataset: int = 300
    # Per-language polarity weights (training/topic_calibration.py, `fit_polarity_weights`): a
    # language leaves the head's own weight only for one this much more accurate (share of the
    # dev topics found) on at least `polarity_min_pairs` dev topics.
    polarity_min_gain: float = 0.02
    polarity_min_pairs: int = 50
    # The team's own labeled topic sets (globs from the repository root): complete rows that
    # replace any mapped row of the same text.
    team_sets: list[str] = field(default_factory=list)

    def cues_path(self) -> Path | None:
        """`weak_cues` as a path: relative to the working directory, else to the repository."""
        if not self.weak_cues:
            return None
        path = Path(self.weak_cues)
        if path.is_absolute() or path.exists():
            return path
        return Path(__file__).resolve().parent.parent / path

    @classmethod
    def from_yaml(cls, path: str | Path) -> TopicConfig:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {unknown}")
        return cls(**raw)


@dataclass
class TopicTargets:
    """Multi-label targets: `present` (n, K), `weight` (n, K; 0 = unknown), `polarity` (n, K;
    index into SENTIMENTS, -1 = none)."""

    present: np.ndarray
    weight: np.ndarray
    polarity: np.ndarray


def corpus_targets(corpus: pd.DataFrame, topics: tuple[str, ...] = TOPICS) -> TopicTargets:
    """Targets of mapped rows: a topic is known absent only inside a complete dataset's scope."""
    n, k = len(corpus), len(topics)
    present = np.zeros((n, k), np.float32)
    weight = np.zeros((n, k), np.float32)
    polarity = -np.ones((n, k), np.int64)
    index = {name: i for i, name in enumerate(topics)}
    for row, (found, partial, scope) in enumerate(
        zip(corpus["topics"], corpus["partial"], corpus["scope"], strict=True)
    ):
        if not partial:
            weight[row, [index[t] for t in scope if t in index]] = 1.0
        for item in found:
            if item["topic"] not in index:
                continue
            col = index[item["topic"]]
            present[row, col] = weight[row, col] = 1.0
            if item["polarity"] in SENTIMENTS:
                polarity[row, col] = SENTIMENTS.index(item["polarity"])
    return TopicTargets(present, weight, polarity)


def load_cues(path: str | Path) -> dict[str, dict[str, re.Pattern[str]]]:
    """lang -> topic -> compiled cue pattern, from a file like training/topic_cues.yaml."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cues = {}
    for lang, by_topic in (raw.get("cues") or {}).items():
        if lang not in LANGS:
            raise ValueError(f"{path}: unknown language {lang!r}")
        unknown = sorted(set(by_topic) - set(TOPICS))
        if unknown:
            raise ValueError(f"{path}: unknown topic(s) {unknown} under {lang}")
        cues[lang] = {topic: re.compile(pattern) for topic, pattern in by_topic.items()}
    return cues


def _unseen(table: pd.DataFrame, held_out: set[str]) -> pd.DataFrame:
    """The rows with a text that is not blank and not one of `held_out` (text keys)."""
    table = table[table["text"].astype(str).str.strip() != ""]
    return table[~table["text"].map(text_key).isin(held_out)]


def _train_rows(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The sampled frames as training rows: one row a text, split `train`."""
    if not frames:
        return pd.DataFrame(columns=[*columns, "split"])
    rows = pd.concat(frames, ignore_index=True).drop_duplicates("text")
    rows["split"] = "train"
    return rows.reset_index(drop=True)


def weak_rows(
    data_dir: str | Path, datasets: dict[str, list[str]], per_dataset: int, seed: int
) -> pd.DataFrame:
    """Unlabeled review rows for weak labels: each dataset's train split, sampled, never a text of
    any hand-labeled topic set (the multi-domain test half included: 3 of its English texts were
    among the weak rows). All of them are training rows."""
    held_out = topic_set_keys()
    frames = []
    for lang, name, table in split_rows(data_dir, datasets, "train", "weak-label"):
        table = _unseen(table, held_out)
        table = table.sample(min(len(table), per_dataset), random_state=seed)
        frames.append(
            pd.DataFrame(
                {
                    "text": table["text"].astype(str),
                    "label": table["label"].astype(str).str.lower() if "label" in table else "",
                    "lang": lang,
                    "dataset": name,
                }
            )
        )
    return _train_rows(frames, ["text", "label", "lang", "dataset"])


def negative_rows(
    data_dir: str | Path, datasets: dict[str, list[str]], per_dataset: int, seed: int
) -> pd.DataFrame:
    """Sampled train rows of aspect-less datasets, where no aspect cue rule fires: training
    negatives for every topic (never a text of a hand-labeled set)."""
    from cxnlp.text.clauses import cue_topics

    if not datasets:
        return pd.DataFrame(columns=["text", "lang", "dataset", "split"])
    held_out = topic_set_keys()
    frames = []
    for lang, name, table in split_rows(data_dir, datasets, "train", "negative"):
        table = _unseen(table, held_out)
        # A boolean mask, not a list: an empty list would select no columns.
        keep = np.array([not cue_topics(str(t), lang) for t in table["text"]], dtype=bool)
        table = table.loc[keep] if len(table) else table
        if table.empty:
            logger.warning("negative dataset %s has no usable train rows", name)
            continue
        table = table.sample(min(len(table), per_dataset), random_state=seed)
        frames.append(
            pd.DataFrame({"text": table["text"].astype(str), "lang": lang, "dataset": name})
        )
    return _train_rows(frames, ["text", "lang", "dataset"])


def cue_targets(
    rows: pd.DataFrame,
    cues: dict[str, dict[str, re.Pattern[str]]],
    positive_weight: float,
    negative_weight: float,
    topics: tuple[str, ...] = TOPICS,
) -> TopicTargets:
    """Weak targets: a topic whose cue matches is present; one whose cue does not is absent, at
    `negative_weight`; a topic without cues in the row's language is unknown. A present topic
    takes the row's sentiment `label` (where the row has one) as its polarity, as mapped
    datasets without per-aspect polarity do."""
    n, k = len(rows), len(topics)
    present = np.zeros((n, k), np.float32)
    weight = np.zeros((n, k), np.float32)
    polarity = -np.ones((n, k), np.int64)
    labels = rows["label"] if "label" in rows else pd.Series([""] * n)
    for row, (text, lang, label) in enumerate(zip(rows["text"], rows["lang"], labels, strict=True)):
        normalised = normalize_term(text)
        for col, topic in enumerate(topics):
            pattern = cues.get(lang, {}).get(topic)
            if pattern is None:
                continue
            hit = pattern.search(normalised) is not None
            present[row, col] = float(hit)
            weight[row, col] = positive_weight if hit else negative_weight
            if hit and label in SENTIMENTS:
                polarity[row, col] = SENTIMENTS.index(label)
    return TopicTargets(present, weight, polarity)


def fit_head(
    features: np.ndarray,
    targets: TopicTargets,
    langs: np.ndarray,
    config: TopicConfig,
    topics: tuple[str, ...] = TOPICS,
) -> TopicTagger:
    """Train a TopicTagger's net on `features`; every language weighs the same in the loss."""
    torch.manual_seed(config.seed)
    tagger = TopicTagger(topics, features.shape[1], hidden=config.hidden)
    net = tagger.net
    net.mean.copy_(torch.as_tensor(features.mean(0)))
    net.scale.copy_(torch.as_tensor(features.std(0) + 1e-6))
    x = torch.as_tensor(features, dtype=torch.float32)
    present = torch.as_tensor(targets.present)
    weight = torch.as_tensor(targets.weight)
    polarity = torch.as_tensor(targets.polarity)
    counts = pd.Series(langs).value_counts()
    lang_weight = torch.as_tensor(
        pd.Series(langs).map(len(langs) / len(counts) / counts).to_numpy(), dtype=torch.float32
    )
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    net.train()
    for _ in range(config.epochs):
        order = torch.as_tensor(rng.permutation(len(x)))
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            presence_logits, polarity_logits = net(x[batch])
            row_weight = lang_weight[batch]
            presence_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                presence_logits, present[batch], reduction="none"
            )
            loss = ((presence_loss * weight[batch]).sum(1) * row_weight).sum()
            known = polarity[batch] >= 0
            if known.any():
                polarity_loss = torch.nn.functional.cross_entropy(
                    polarity_logits[known], polarity[batch][known], reduction="none"
                )
                loss = loss + (polarity_loss * row_weight[:, None].expand_as(known)[known]).sum()
            optimizer.zero_grad()
            (loss / len(batch)).backward()
            optimizer.step()
    net.eval()
    return tagger


def f1_counts(predicted: np.ndarray, targets: TopicTargets) -> tuple[int, int, int]:
    """True positives, false positives and false negatives over (text, topic) pairs; a
    prediction counts as false only where the topic is known absent (weight > 0)."""
    gold = targets.present == 1
    known = targets.weight > 0
    tp = int((predicted & gold).sum())
    fp = int((predicted & ~gold & known).sum())
    fn = int((~predicted & gold).sum())
    return tp, fp, fn


def tune_thresholds(
    probabilities: np.ndarray, targets: TopicTargets, min_positives: int
) -> np.ndarray:
    """Per topic, the threshold with the best dev F1; 0.5 where dev has too few positives."""
    thresholds = np.full(probabilities.shape[1], 0.5)
    grid = np.round(np.arange(0.1, 0.91, 0.05), 2)
    for col in range(probabilities.shape[1]):
        column = TopicTargets(
            targets.present[:, [col]], targets.weight[:, [col]], targets.polarity[:, [col]]
        )
        if column.present.sum() < min_positives:
            continue
        best = max(
            grid,
            key=lambda t: _f1(*f1_counts(probabilities[:, [col]] >= t, column)),
        )
        thresholds[col] = float(best)
    return thresholds


def tune_polarity_weight(
    tagger: TopicTagger,
    features: np.ndarray,
    sentiments: np.ndarray,
    targets: TopicTargets,
    grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
) -> float:
    """The weight of the text's sentiment in each topic's polarity (the head's own polarity
    weighs 1) with the best polarity accuracy on the dev topics the head finds."""
    presence, _ = tagger.scores(features)
    found = (presence >= tagger.thresholds_) & (targets.present == 1) & (targets.polarity >= 0)
    if not found.any():
        return 0.0
    accuracy = {}
    for weight in grid:
        tagger.polarity_text_weight = weight
        predicted = tagger.polarities(features, sentiments)
        accuracy[weight] = float((predicted[found] == targets.polarity[found]).mean())
    logger.info("polarity accuracy on dev by text-sentiment weight: %s", accuracy)
    return max(grid, key=lambda w: (accuracy[w], -w))


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def fit_custom_matcher(
    model: SentimentModel,
    tagger: TopicTagger,
    background: np.ndarray,
    background_langs: np.ndarray,
    dev_features: np.ndarray,
    dev_langs: np.ndarray,
    dev_targets: TopicTargets,
) -> CustomTopicMatcher:
    """Background statistics per language and the calibration of custom topics, fitted by
    treating each shipped taxonomy topic as if it were a custom one (its definition and cues
    only): a logistic fit of presence on the standardised similarity over the dev (text, topic)
    pairs whose gold is known. The tagging threshold stays at 0.5 (more likely than not): the
    F1-best threshold on dev is lower, but the taxonomy's broad topics are far more frequent there
    than a narrow custom topic is in real feedback, so it would cost custom topics precision."""
    feature_slice = (tagger.n_features, background.shape[1])  # the plain e5 embedding
    matcher = CustomTopicMatcher({}, 1.0, 0.0, feature_slice)
    unit = matcher.unit(background)
    matcher.background["*"] = (unit.mean(0), np.cov(unit, rowvar=False))
    for lang in LANGS:
        rows = background_langs == lang
        if rows.sum() > unit.shape[1]:
            matcher.background[lang] = (unit[rows].mean(0), np.cov(unit[rows], rowvar=False))
    z = np.zeros(dev_targets.present.shape)
    by_name = {topic.name: topic for topic in load_taxonomy()}
    for col, name in enumerate(tagger.topics):
        phrases, langs = topic_phrases(by_name[name])
        vectors = matcher.unit(model.features(phrases, langs))
        z[:, col] = matcher.z_scores(dev_features, vectors, list(dev_langs)).max(1)
    known = dev_targets.weight > 0
    gold = dev_targets.present[known].astype(int)
    calibration = LogisticRegression(C=1.0).fit(z[known].reshape(-1, 1), gold)
    matcher.slope = float(calibration.coef_[0, 0])
    matcher.intercept = float(calibration.intercept_[0])
    probability = matcher.probability(z[known])
    grid = np.round(np.arange(0.05, 0.91, 0.05), 2)
    scores = {
        float(t): _f1(
            int(((probability >= t) & (gold == 1)).sum()),
            int(((probability >= t) & (gold == 0)).sum()),
            int(((probability < t) & (gold == 1)).sum()),
        )
        for t in grid
    }
    logger.info(
        "custom topics: slope %.3f intercept %.3f; dev F1 by threshold %s",
        matcher.slope,
        matcher.intercept,
        {t: round(f, 3) for t, f in scores.items()},
    )
    return matcher


def train_topics(model: SentimentModel, config: TopicConfig) -> tuple[TopicTagger, dict[str, Any]]:
    """Fit a topic head for `model` (not attached or saved) and report what it was trained on."""
    corpus = load_topic_corpus(config.data_dir)
    corpus = corpus[corpus["split"].isin(["train", "dev"])]
    if config.team_sets:
        team = load_team_sets(config.team_sets)
        keys = set(team["text"].map(text_key))
        corpus = pd.concat([corpus[~corpus["text"].map(text_key).isin(keys)], team])
        logger.info("topic head: %d rows of the team's own labeled sets", len(team))
    corpus = corpus.reset_index(drop=True)
    targets = corpus_targets(corpus)
    frames, parts = [corpus[["text", "lang", "dataset", "split"]]], [targets]
    weak = pd.DataFrame(columns=["text", "label", "lang", "dataset", "split"])
    if config.weak_cues:
        weak = weak_rows(
            config.data_dir, config.weak_datasets, config.weak_rows_per_dataset, config.seed
        )
        cues = load_cues(config.cues_path())
        frames.append(weak.drop(columns="label"))
        parts.append(
            cue_targets(weak, cues, config.weak_positive_weight, config.weak_negative_weight)
        )
    negatives = negative_rows(
        config.data_dir, config.negative_datasets, config.negative_rows_per_dataset, config.seed
    )
    if len(negatives):
        frames.append(negatives)
        n = len(negatives)
        parts.append(
            TopicTargets(
                np.zeros((n, len(TOPICS)), np.float32),
                np.full((n, len(TOPICS)), config.negative_weight, np.float32),
                -np.ones((n, len(TOPICS)), np.int64),
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    all_targets = TopicTargets(
        *(np.concatenate(arrays) for arrays in zip(*map(_arrays, parts), strict=True))
    )
    logger.info("topic head: encoding %d texts", len(rows))
    model.enable_similarity()  # the custom-topic calibration needs plain e5 embeddings too
    probabilities, features = model.predict_proba_and_features(
        rows["text"].tolist(), rows["lang"].tolist()
    )
    if features is None:
        raise TypeError(f"a {model.kind!r} model has no encoder features to read topics from")
    head_width = features.shape[1] * 2 // 3  # [top layer, tap layer] | plain e5 embedding
    train = (rows["split"] == "train").to_numpy()
    tagger = fit_head(
        features[train, :head_width],
        _select(all_targets, train),
        rows["lang"][train].to_numpy(),
        config,
    )
    # Thresholds, the polarity blend and the custom-topic calibration use mapped dev rows only:
    # weak labels are training signal, not ground truth. Thresholds use complete rows only: on a
    # partial row a false positive cannot be seen, so recall alone would pull thresholds down.
    mapped = np.arange(len(rows)) < len(corpus)
    dev = (rows["split"] == "dev").to_numpy() & mapped
    extra = len(rows) - len(corpus)
    complete = dev & ~np.concatenate([corpus["partial"].to_numpy(bool), np.ones(extra, bool)])
    presence, _ = tagger.scores(features[complete])
    tagger.thresholds_ = tune_thresholds(
        presence, _select(all_targets, complete), config.min_dev_positives
    )
    tagger.polarity_text_weight = tune_polarity_weight(
        tagger, features[dev], probabilities[dev], _select(all_targets, dev)
    )
    background = ~mapped if len(weak) else train
    lang_array = rows["lang"].to_numpy()
    tagger.matcher = fit_custom_matcher(
        model,
        tagger,
        features[background],
        lang_array[background],
        features[dev],
        lang_array[dev],
        _select(all_targets, dev),
    )
    summary = {
        "training": {
            "mapped_rows": int(train[: len(corpus)].sum()),
            "weak_rows": int(train[len(corpus) : len(corpus) + len(weak)].sum()),
            "negative_rows": len(negatives),
            "dev_rows": int(dev.sum()),
            "config": asdict(config),
        }
    }
    tagger.info = summary
    if config.calibration_sets or config.negative_datasets:
        from training.topic_calibration import recalibrate_topics

        previous, model.topic_tagger = model.topic_tagger, tagger
        try:
            summary["recalibration"] = recalibrate_topics(model, config)
        finally:
            model.topic_tagger = previous
    return tagger, summary


def _arrays(targets: TopicTargets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return targets.present, targets.weight, targets.polarity


def _select(targets: TopicTargets, mask: np.ndarray) -> TopicTargets:
    return TopicTargets(targets.present[mask], targets.weight[mask], targets.polarity[mask])
