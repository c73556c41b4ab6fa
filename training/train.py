"""`train()`: the one code path behind `cxnlp train`, the tests and the notebooks."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import (
    WEIGHTS_FILE,
    read_config,
    read_dev_confusion,
    write_dev_confusion,
    write_training_config,
)
from cxnlp.models.base import SentimentModel
from cxnlp.models.evaluation import macro_f1_from_confusion
from cxnlp.text.clean import text_key
from cxnlp.text.normalize import normalize
from training.config import Config
from training.data import load_corpus, read_jsonl, read_labeled
from training.recalibrate import confusion_counts
from training.sampling import cap_per_dataset, draw_weights

logger = logging.getLogger(__name__)


def prepare_frames(config: Config, data_file: str | Path | None = None):
    """Train and dev frames with normalised texts and the three sentiments only."""
    if data_file is not None:
        frame = read_labeled(data_file, skip_unlabeled=True)
    else:
        frame = load_corpus(
            config.data.dir,
            langs=tuple(config.data.langs),
            commercial_only=config.data.commercial_only,
            exclude=tuple(config.data.exclude),
        )
    frame = frame[frame["lang"].isin(config.data.langs)]
    train = frame[frame["split"] == "train"]
    hand = train.iloc[:0]
    if data_file is None and config.data.hand_labels:
        # Before the label filter: a hand label may read a pool text whose gold is `mixed`.
        train, hand = hand_labeled(train, config.data.hand_labels, config.data.langs)
    frame = frame[frame["label"].isin(SENTIMENTS)]
    train = train[train["label"].isin(SENTIMENTS)]
    train = cap_per_dataset(
        train, config.data.max_per_dataset, config.train.seed, config.data.cap_overrides
    )
    # Hand-labeled rows escape the cap and are drawn `hand_label_repeat` times as often.
    train = pd.concat([train, *[hand] * config.data.hand_label_repeat])
    dev = frame[frame["split"] == "dev"]
    dev = (
        dev.sample(frac=1.0, random_state=config.train.seed)
        .groupby("lang")
        .head(config.data.dev_per_lang)
    )
    if train.empty:
        raise ValueError(
            "no training rows: the data has no split=train rows with a sentiment label"
        )
    train, dev = train.reset_index(drop=True), dev.reset_index(drop=True)
    for part in (train, dev):
        part["text"] = [
            normalize(t, lang=lang) for t, lang in zip(part["text"], part["lang"], strict=True)
        ]
    logger.info("training rows per language: %s", train["lang"].value_counts().to_dict())
    return train, dev


def hand_labeled(
    train: pd.DataFrame, patterns: list[str], langs: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`train` split into the rows no hand-label file holds and those it does, relabeled by hand
    (split `train`, a sentiment label; a `mixed` reading keeps the gold): see `DataConfig.hand_labels`."""
    hand: dict[str, str] = {}
    for pattern in patterns:
        for lang in langs:
            path = Path(pattern.format(lang=lang))
            if not path.exists():
                continue
            for row in read_jsonl(path):
                if row.get("split") == "train" and row.get("label") in SENTIMENTS:
                    hand[text_key(row["text"])] = row["label"]
    if not hand:
        raise ValueError(f"data.hand_labels {patterns} gave no train-split sentiment rows")
    keys = train["text"].map(text_key)
    matched = keys.isin(hand)
    rows = train[matched].assign(label=keys[matched].map(hand))
    logger.info(
        "hand labels: %d of %d texts matched in train, %d relabeled",
        int(matched.sum()),
        len(hand),
        int((rows["label"] != train.loc[matched, "label"]).sum()),
    )
    return train[~matched], rows


def dev_scores(model_dir: Path) -> dict[str, float]:
    """Macro-F1 per language ("*" for all) on the dev rows of the run that wrote `model_dir`, from
    its dev confusion matrices; empty when it has none."""
    confusion = read_dev_confusion(model_dir) or {}
    return {key: macro_f1_from_confusion(counts) for key, counts in sorted(confusion.items())}


def fit_fast(config: Config, train_frame: pd.DataFrame) -> SentimentModel:
    from cxnlp.models.fast import FastSentimentModel

    model = FastSentimentModel(n_features=config.model.n_features, C=config.model.C)
    weights = draw_weights(train_frame, config.data) * len(train_frame)
    return model.fit(
        train_frame["text"].tolist(),
        train_frame["label"].tolist(),
        langs=train_frame["lang"].tolist(),
        sample_weight=weights,
    )


BLEND_WEIGHTS = tuple(np.round(np.arange(0.0, 0.81, 0.05), 2))


def blend_with_fast(
    transformer: SentimentModel, fast: SentimentModel, dev: pd.DataFrame
) -> SentimentModel:
    """The blend of the two whose fast-tier weight gives the best mean dev macro-F1 over the
    languages (the transformer alone when no dev rows are given)."""
    from scipy.special import log_softmax

    from cxnlp.models.blend import BlendedSentimentModel

    if dev.empty:
        logger.warning("no dev rows to choose a blend weight on: keeping the transformer alone")
        return transformer
    texts = dev["text"].tolist()
    y = np.array([SENTIMENTS.index(label) for label in dev["label"]])
    langs = dev["lang"].to_numpy()
    parts = [log_softmax(m._logits(texts), axis=1) for m in (transformer, fast)]
    scores = {}
    for weight in BLEND_WEIGHTS:
        predicted = ((1 - weight) * parts[0] + weight * parts[1]).argmax(axis=1)
        per_lang = [
            macro_f1_from_confusion(confusion_counts(y[langs == lang], predicted[langs == lang]))
            for lang in set(langs)
        ]
        scores[float(weight)] = float(np.mean(per_lang))
    best = max(scores, key=lambda w: (scores[w], -w))
    logger.info(
        "blend: fast-tier weight %.2f (dev mean macro-F1 %.4f; transformer alone %.4f)",
        best,
        scores[best],
        scores[0.0],
    )
    return BlendedSentimentModel([transformer, fast], [1 - best, best])


def _base_transformer_state(base: Path) -> dict:
    """The fine-tuned weights of a transformer model, or of a blend's transformer member."""
    from safetensors.torch import load_file

    config = read_config(base)
    if config["kind"] == "blend":
        member = next((m for m in config["members"] if m["dir"].endswith("transformer")), None)
        if member is None:
            raise ValueError(f"--base {base} is a blend without a transformer member")
        base = base / member["dir"]
        config = read_config(base)
    if config["kind"] != "transformer":
        raise ValueError(f"--base {base} is a {config['kind']} model; expected transformer")
    from cxnlp.models.transformer import dequantize_state

    return dequantize_state(load_file(str(base / WEIGHTS_FILE)))


def train(
    config: Config,
    out: str | Path,
    *,
    base: str | Path | None = None,
    data_file: str | Path | None = None,
) -> Path:
    """Train a model as `config` says and save it to `out`; return `out`.

    With `base` (a model directory) the run starts from that model's weights and settings and
    trains on `data_file`, a user's labeled file, instead of the shared corpus.
    """
    out = Path(out)
    work_dir = out.with_name(out.name + ".work")
    work_dir.mkdir(parents=True, exist_ok=True)
    train_frame, dev_frame = prepare_frames(config, data_file)
    if config.kind == "fast":
        model = fit_fast(config, train_frame)
    else:
        from training.transformer_trainer import fit_transformer

        init_state = None
        start = base if base is not None else config.model.init_from
        if start is not None:
            from cxnlp.models.store import resolve_model

            init_state = _base_transformer_state(Path(resolve_model(str(start))))
        model = fit_transformer(config, train_frame, work_dir, init_state=init_state)
        if config.model.blend_fast:
            model = blend_with_fast(model, fit_fast(config, train_frame), dev_frame)
    from training.recalibrate import recalibrate

    calibration = recalibrate(model, dev_frame)
    logger.info("calibration temperatures: %s", calibration["temperatures"])
    staging = out.with_name(out.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    model.save(
        staging,
        extra_config={
            "name": config.name,
            "trained_on": sorted(train_frame["dataset"].unique().tolist()),
            "train_rows": int(len(train_frame)),
        },
    )
    if config.model.topics_from is not None:
        from cxnlp.modeldir import topics_dir
        from cxnlp.models.store import resolve_model

        source = topics_dir(Path(resolve_model(config.model.topics_from)))
        shutil.copytree(source, topics_dir(staging))
    write_dev_confusion(staging, calibration["confusion"])
    write_training_config(staging, config.to_dict())
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    shutil.rmtree(work_dir, ignore_errors=True)
    return out


def recalibrate_saved(
    model: str, out: str, *, biases: bool = True, lang_weights: bool = True
) -> dict[str, Any]:
    """`recalibrate` a saved model on the dev rows of its own training configuration and write
    the result as a copy at `out` (config and dev confusion; the weights are the same files)."""
    from cxnlp.modeldir import read_training_config, write_config
    from cxnlp.models.store import load, resolve_model
    from training.recalibrate import recalibrate

    source = Path(resolve_model(model))
    saved = read_training_config(source)
    if saved is None:
        raise ValueError(f"{source} has no training configuration to take its dev rows from")
    _, dev = prepare_frames(Config.from_dict(saved))
    loaded = load(str(source))
    report = recalibrate(loaded, dev, biases=biases, lang_weights=lang_weights)
    target = Path(out)
    if target.resolve() != source.resolve():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
    config = read_config(target)
    for key in ("temperatures", "biases", "lang_weights"):
        config.pop(key, None)
    config.update(loaded.calibration_config())
    if getattr(loaded, "lang_weights", None):
        config["lang_weights"] = loaded.lang_weights
    write_config(target, config)
    write_dev_confusion(target, report["confusion"])
    return report
